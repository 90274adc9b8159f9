"""Path convergence: the barrier after k steps of one long optimization equals the
barrier find_path returns with steps=k; the minimax reference equals its own run."""

import numpy as np
import pytest

import losstopo
from losstopo import MLP, Landscape
from losstopo.convergence import path_convergence


@pytest.fixture(scope="module")
def setup():
    net = MLP([5, 6, 3], activation="tanh")
    X, y = losstopo.datasets.synthetic(120, 5, 3, seed=1, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64")
    theta = net.init(4, seed=2, dtype="float64")
    return ls, theta


def test_each_budget_is_the_path_find_path_returns(setup):
    ls, theta = setup
    kw = dict(n_points=9, n_modes=3, lr=0.05)
    A, B = theta[:2], theta[2:]
    res = path_convergence(ls, A, B, steps=(4, 1, 2), **kw)
    assert res["steps"].tolist() == [1, 2, 4]
    for r in range(2):
        for i, k in enumerate(res["steps"]):
            f = losstopo.find_path(ls, A[r], B[r], steps=int(k), progress=False, **kw)
            assert res["barrier"][r, i] == f.barrier
            assert res["barrier_refined"][r, i] == f.barrier_refined
            assert res["straight_barrier"][r] == f.straight_barrier
        m = losstopo.find_path(ls, A[r], B[r], steps=4, objective="minimax", progress=False,
                               **kw)
        assert res["reference"][r] == m.barrier_refined
    # More steps never raise the best path's summed energy; the barrier is finite.
    assert np.isfinite(res["barrier"]).all()
    no_ref = path_convergence(ls, A, B, steps=(1, 2), reference=False, **kw)
    assert np.isnan(no_ref["reference"]).all()


def test_bad_input(setup):
    ls, theta = setup
    with pytest.raises(ValueError, match="steps"):
        path_convergence(ls, theta[:1], theta[1:2], steps=(0, 5))
    with pytest.raises(ValueError, match="Adam"):
        path_convergence(ls, theta[:1], theta[1:2], optimizer="lbfgs")
    with pytest.raises(TypeError, match="unknown"):
        path_convergence(ls, theta[:1], theta[1:2], stepz=3)
    with pytest.raises(ValueError, match="NaN"):
        path_convergence(ls, theta[:1], np.full((1, theta.shape[1]), np.nan))
