"""The engine seam: compiled engines are Objectives with capabilities; a Python-defined
objective drives training and minimize like the native engine (same numbers)."""

import numpy as np
import pytest

import losstopo
from losstopo import MLP, Landscape
from losstopo._native import core

NET = MLP([6, 5, 4, 3], activation="tanh")


def landscape(n=90, seed=0):
    X, y = losstopo.datasets.synthetic(n, 6, 3, seed=seed, dtype="float64")
    return Landscape(NET, X, y, dtype="float64"), X, y


class PythonObjective:
    """A landscape written in Python (here forwarding to the engine): no capabilities."""

    def __init__(self, ls):
        self.ls = ls
        self.num_params, self.num_samples = ls.num_params, ls.num_samples
        self.classifier, self.dtype = True, ls.dtype
        self.calls = 0

    def loss(self, theta, samples=None):
        self.calls += 1
        return self.ls.loss(theta, samples)

    def loss_and_grad(self, theta, samples=None):
        self.calls += 1
        return self.ls.loss_and_grad(theta, samples)

    def accuracy(self, theta, samples=None):
        return self.ls.accuracy(theta, samples)

    def evaluate_each(self, theta, samples):
        self.calls += 1
        return self.ls.evaluate_each(theta, samples)


def test_engines_are_objectives_with_capabilities():
    ls, _, _ = landscape()
    eng = ls.engine
    assert isinstance(eng, core.ObjectiveF64) and isinstance(eng, core.LandscapeF64)
    assert eng.offers_lines and eng.offers_combinations
    assert eng.num_params == NET.num_params and eng.classifier
    # the capabilities, called through the base class, agree with plain evaluations
    rng = np.random.default_rng(0)
    x, d = rng.standard_normal((2, NET.num_params)) * 0.3, rng.standard_normal((2, NET.num_params))
    u = np.array([0.1, 0.5, -0.2])
    lines = np.array([0, 1, 1])
    np.testing.assert_allclose(eng.line_values(x, d, lines, u), ls.loss(x[lines] - u[:, None] * d[lines]),
                               rtol=1e-12)
    V = rng.standard_normal((3, NET.num_params)) * 0.3
    index = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.int32)
    coef = np.array([[0.5, 0.2, 0.3], [1.0, -0.5, 0.1]])
    points = np.einsum("pk,pkd->pd", coef, V[index])
    np.testing.assert_allclose(eng.evaluate_combination(V, index, coef), ls.loss(points),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="index"):
        eng.evaluate_combination(V, index + 5, coef)


@pytest.mark.parametrize("method", ["sgd", "lbfgs"])
def test_training_through_a_python_objective_equals_native(method):
    ls, X, y = landscape()
    py = PythonObjective(ls)
    theta0 = NET.init(3, seed=2, dtype="float64")
    kw = dict(method=method, runs=3, epochs=4, theta0=theta0, dtype="float64", progress=False,
              batch_size=16, lr=0.05)
    native = losstopo.train(NET, ls, **kw)
    other = losstopo.train(NET, py, **kw)
    assert py.calls > 0
    if method == "sgd":  # the same engine calls: bitwise
        np.testing.assert_array_equal(other.theta_final, native.theta_final)
        np.testing.assert_array_equal(other.train_loss, native.train_loss)
    else:  # native trials come from prepared lines: the same to rounding
        np.testing.assert_allclose(other.theta_final, native.theta_final, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(other.train_loss, native.train_loss, rtol=1e-9)


def test_minimize_through_a_callable_equals_native():
    ls, _, _ = landscape()
    x0 = NET.init(2, seed=3, dtype="float64")
    native = losstopo.minimize(ls, x0, max_iter=8)
    other = losstopo.minimize(lambda X: ls.loss_and_grad(X), x0, max_iter=8)
    np.testing.assert_allclose(other.x, native.x, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(other.nit, native.nit)


def test_settings_are_validated_by_the_core():
    p = core.LBFGSParams(history=0)
    with pytest.raises(ValueError, match="history: must be at least 1, got 0"):
        p.validate()
    with pytest.raises(ValueError, match="unknown setting 'histroy'"):
        core.LBFGSParams(histroy=3)
    with pytest.raises(ValueError, match="line_search: expected one of"):
        core.LBFGSParams(line_search="newton")
    with pytest.raises(ValueError, match="momentum"):
        core.SGDParams(momentum=1.0).validate()
    with pytest.raises(ValueError, match="n_points: must be at least 3"):
        core.PathParams(n_points=2).validate()
    q = core.PathParams(objective="minimax", n_modes=3)
    q.validate()
    assert q.objective == "minimax" and q.n_modes == 3
    with pytest.raises(ValueError, match="golden_max_evals"):
        losstopo.minimize(lambda X: (X.sum(1), np.ones_like(X)), np.zeros(3),
                          options=dict(golden_max_evals=0))


def test_typed_stubs_name_every_public_member_of_the_core():
    import ast
    import os

    path = os.path.join(os.path.dirname(losstopo.__file__), "_core.pyi")
    with open(path) as f:
        tree = ast.parse(f.read())
    names = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    names |= {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
              for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
              if isinstance(t, ast.Name)}
    public = {n for n in dir(core) if not n.startswith("_")}
    assert public <= names, f"regenerate _core.pyi: missing {sorted(public - names)}"
