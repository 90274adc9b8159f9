"""Line searches, L-BFGS and batched minimize, against known minima and scipy."""

import numpy as np
import pytest
import scipy.optimize as so

import losstopo
from losstopo import MLP, Landscape, line_search, minimize


def rosen(x):
    return so.rosen(x), so.rosen_der(x)


def rosen_batch(X):
    return np.array([so.rosen(x) for x in X]), np.array([so.rosen_der(x) for x in X])


def parabola(c, lo=1.0):
    return lambda u: ((u - c) ** 2 + lo, 2 * (u - c))


# ---------------------------------------------------------------- golden section
def test_golden_expands_and_brackets_within_budget():
    phi = parabola(3.0)
    step, value, trials = line_search(phi, *phi(0.0), scale=5.0)
    assert trials[:3] == pytest.approx([1.0, 4.0, 8.0])  # 0.2|r|, 0.8|r|, then doubling
    assert len(trials) == 6  # the paper's budget
    assert 1.0 < step < 8.0 and value < 10.0
    assert value == pytest.approx(min(phi(u)[0] for u in trials))


def test_golden_converges_with_a_larger_budget():
    phi = parabola(3.0)
    step, value, trials = line_search(phi, *phi(0.0), scale=5.0,
                                      options=dict(golden_max_evals=100, golden_ftol=0.0))
    assert step == pytest.approx(3.0, abs=1e-4)
    assert 6 < len(trials) < 100


def test_golden_shrinks_toward_zero_when_the_first_try_rises():
    phi = parabola(0.01, lo=0.0)
    step, value, trials = line_search(phi, *phi(0.0), scale=1.0)
    assert trials[0] == pytest.approx(0.2)
    ratios = np.array(trials[1:]) / np.array(trials[:-1])
    assert ratios[0] == pytest.approx(0.6180339887, rel=1e-9)
    assert 0 < step < 0.02 and value < phi(0.0)[0]


def test_golden_never_accepts_an_uphill_step():
    phi = lambda u: (1.0 + u, 1.0)  # noqa: E731 - rises everywhere
    step, value, trials = line_search(phi, 1.0, -1.0, scale=1.0)
    assert step == 0.0 and value == 1.0 and len(trials) == 6


def test_golden_stops_on_the_bracket_tolerance():
    phi = parabola(3.0)
    _, _, trials = line_search(phi, *phi(0.0), scale=5.0,
                               options=dict(golden_max_evals=100, golden_xtol=1.0,
                                            golden_ftol=0.0))
    assert len(trials) < 10


def test_strong_wolfe_conditions_hold():
    f = lambda u: (np.cos(u) + 0.1 * u * u, -np.sin(u) + 0.2 * u)  # noqa: E731
    f0, g0 = f(0.0)
    phi = lambda u: f(u + 0.5)  # noqa: E731
    f0, g0 = phi(0.0)
    step, value, trials = line_search(phi, f0, g0, scale=1.0, kind="strong_wolfe")
    fs, gs = phi(step)
    assert fs <= f0 + 1e-4 * step * g0
    assert abs(gs) <= 0.9 * abs(g0)
    assert value == pytest.approx(fs)


# ------------------------------------------------------------------------ L-BFGS
@pytest.mark.parametrize("dim", [2, 100])
@pytest.mark.parametrize("ls", ["golden", "strong_wolfe"])
def test_rosenbrock_against_scipy(dim, ls):
    x0 = np.full(dim, 1.0)
    x0[::2] = -1.2
    ref = so.minimize(rosen, x0, jac=True, method="L-BFGS-B", options=dict(maxiter=5000))
    res = minimize(rosen, x0, line_search=ls, max_iter=5000, gtol=1e-6)
    assert res.success, res.message
    assert res.fun < 1e-8 and ref.fun < 1e-6
    np.testing.assert_allclose(res.x, 1.0, atol=1e-3)
    assert res.nfev >= res.nit and res.njev >= 1
    if ls == "strong_wolfe":  # a standard line search: comparable cost to scipy's
        assert res.nit <= 2 * ref.nit and res.nfev <= 2 * ref.nfev
    else:  # the paper's search spends up to 6 values and one gradient per iteration
        assert res.nit <= 3 * max(ref.nit, 100)
        assert res.nfev <= 7 * res.nit + 1


@pytest.mark.parametrize("ls", ["golden", "strong_wolfe"])
def test_quadratic(ls):
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    A = Q @ np.diag(np.logspace(0, 2, 30)) @ Q.T
    b = rng.standard_normal(30)
    fun = lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b)  # noqa: E731
    res = minimize(fun, np.zeros(30), line_search=ls, gtol=1e-8, max_iter=2000)
    ref = so.minimize(fun, np.zeros(30), jac=True, method="L-BFGS-B",
                      options=dict(gtol=1e-8, ftol=0))
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-6, atol=1e-8)
    assert res.fun == pytest.approx(ref.fun, rel=1e-10)
    if ls == "strong_wolfe":
        assert res.nit <= 2 * ref.nit


def test_batch_equals_one_at_a_time():
    X0 = np.random.default_rng(1).uniform(-2, 2, (6, 5))
    batch = minimize(rosen_batch, X0, line_search="golden", max_iter=300)
    assert batch.x.shape == (6, 5) and batch.fun.shape == (6,) and len(batch.message) == 6
    for r in range(6):
        one = minimize(rosen, X0[r], line_search="golden", max_iter=300)
        np.testing.assert_array_equal(one.x, batch.x[r])
        assert one.nit == batch.nit[r] and one.nfev == batch.nfev[r]


def test_finished_problems_leave_the_batch():
    calls = []

    def fun(X):
        calls.append(len(X))
        return rosen_batch(X)

    X0 = np.array([[1.0, 1.0], [-1.2, 1.0]])  # the first starts at the minimum
    res = minimize(fun, X0, line_search="strong_wolfe")
    assert res.nit[0] == 0 and res.nit[1] > 5 and res.success.all()
    assert calls[0] == 2 and max(calls[1:]) == 1


def test_native_landscape_equals_callable():
    net = MLP([6, 5, 3], activation="tanh")
    X, y = losstopo.datasets.synthetic(80, 6, 3, seed=0, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64")
    theta0 = net.init(3, seed=0, dtype="float64")
    for search in ("golden", "strong_wolfe"):
        a = minimize(ls, theta0, max_iter=20, line_search=search)
        b = minimize(lambda T: ls.loss_and_grad(T), theta0, max_iter=20, line_search=search)
        if search == "strong_wolfe":  # the very same evaluations
            np.testing.assert_array_equal(a.x, b.x)
        else:  # the native golden search evaluates its trials from prepared lines
            np.testing.assert_allclose(a.x, b.x, rtol=1e-8, atol=1e-10)
            np.testing.assert_array_equal(a.nfev, b.nfev)
        assert (a.fun < ls.loss(theta0)).all()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_carried_lines_equal_fresh_lines_to_rounding(dtype):
    """Golden lines that continue the last line (first-layer product A_x - u A_d carried)
    follow the path of lines prepared afresh every iteration, to rounding."""
    from losstopo._native import core
    from losstopo.optimize import lbfgs_options, lbfgs_params

    net = MLP([12, 9, 7, 4], activation="softplus")
    X, y = losstopo.datasets.synthetic(300, 12, 4, seed=1, dtype=dtype)
    ls = Landscape(net, X, y, dtype=dtype, chunk=64)
    theta0 = net.init(4, seed=2, dtype=dtype)
    run = core.minimize_lbfgs_f32 if dtype == "float32" else core.minimize_lbfgs_f64
    # float32 trajectories part by rounding that each iteration amplifies (about 10x
    # per two iterations here, whichever way the loss is rounded): 6 iterations keep
    # the parting far inside the tolerance, 12 would not
    iters = 12 if dtype == "float64" else 6
    out = {}
    for carry in (0, 1, 5):
        p = lbfgs_params(lbfgs_options("golden", 10, iters, 0.0, 0.0, None))
        p.carry_lines = carry
        out[carry] = run(ls.engine, theta0, p, None)
    # carry_lines = 1: every line afresh, bitwise today's iterations
    np.testing.assert_array_equal(out[1]["x"], out[0]["x"])
    assert not np.array_equal(out[5]["x"], out[0]["x"])  # the carried products did run
    tol = 1e-9 if dtype == "float64" else 1e-3
    np.testing.assert_allclose(out[5]["x"], out[0]["x"], rtol=tol, atol=tol)
    np.testing.assert_allclose(out[5]["fun"], out[0]["fun"], rtol=tol)
    np.testing.assert_array_equal(out[5]["nit"], out[0]["nit"])
    with pytest.raises(ValueError, match="carry_lines"):
        p.carry_lines = -1
        p.validate()


def test_float32_problem_stays_float32():
    res = minimize(rosen, np.array([-1.2, 1.0], dtype=np.float32), max_iter=5)
    assert res.x.dtype == np.float32


def test_callback_can_stop():
    seen = []
    res = minimize(rosen, np.array([-1.2, 1.0]), callback=lambda x: seen.append(x.copy()) or
                   len(seen) >= 3)
    assert len(seen) == 3 and res.nit == 3 and not res.success
    assert "stopped" in res.message


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(line_search="armijo"), ValueError, "line_search"),
        (dict(method="bfgs"), ValueError, "method"),
        (dict(history=0), ValueError, "history"),
        (dict(max_iter=-1), ValueError, "max_iter"),
        (dict(gtol=np.nan), ValueError, "gtol"),
        (dict(options=dict(golden_budget=3)), ValueError, "options"),
        (dict(x0=np.array([np.nan, 1.0])), ValueError, "x0"),
        (dict(x0=np.zeros((0, 2))), ValueError, "x0"),
        (dict(x0=np.array(["a", "b"])), TypeError, "x0"),
        (dict(fun=3), TypeError, "fun"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    args = dict(fun=rosen, x0=np.array([-1.2, 1.0]))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        minimize(**args)


def test_bad_function_outputs_raise_not_crash():
    with pytest.raises(ValueError, match="grads"):
        minimize(lambda x: (1.0, np.zeros(3)), np.zeros(2))
    with pytest.raises(ValueError, match="tuple"):
        minimize(lambda x: 1.0, np.zeros(2))
    with pytest.raises(ValueError, match="values"):
        minimize(lambda X: (np.zeros(5), np.zeros((5, 2))), np.zeros((2, 2)))

    def boom(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        minimize(boom, np.zeros(2))


def test_nonfinite_values_stop_the_problem():
    res = minimize(lambda x: (np.nan, np.ones_like(x)), np.zeros(2))
    assert not res.success and "non-finite" in res.message
