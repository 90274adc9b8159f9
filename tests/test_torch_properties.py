"""Property-based tests of TorchLandscape (skipped without torch): arbitrary inputs,
labels, sample lists and parameter vectors. The adapter accepts exactly what the
native engine accepts for the same network and data, and where both work they give
the same numbers; neither crashes, and the user's module never changes."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import losstopo
from losstopo import MLP, Landscape

torch = pytest.importorskip("torch", reason="PyTorch not installed (optional extra)")
from losstopo.torch_adapter import TorchLandscape  # noqa: E402

NET = MLP([3, 4, 2], activation="tanh", bias=True)
torch.manual_seed(0)
MODULE = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
STATE = {k: v.clone() for k, v in MODULE.state_dict().items()}
RNG = np.random.default_rng(0)
X = RNG.random((12, 3))
Y = np.arange(12) % 2
TL = TorchLandscape(MODULE, X, Y, dtype="float64")
LS = Landscape(NET, X, Y, dtype="float64")
EXPECTED = (ValueError, TypeError)
FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.bool_, np.complex128,
                          np.uint8, np.float16])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=13)


def arrays(dtype=dtypes, shape=shapes):
    return dtype.flatmap(lambda d: hnp.arrays(d, shape, elements=None))


def outcome(fn):
    """("ok", value) or ("refused", exception type); anything else propagates."""
    try:
        return "ok", fn()
    except EXPECTED as e:
        return "refused", type(e)


def agree(a, b):
    assert a[0] == b[0], (a, b)
    if a[0] == "ok":
        for u, v in zip(np.atleast_1d(a[1]) if not isinstance(a[1], tuple) else a[1],
                        np.atleast_1d(b[1]) if not isinstance(b[1], tuple) else b[1]):
            np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


@FAST
@given(Xb=arrays(), yb=arrays())
def test_construction_accepts_what_the_engine_accepts(Xb, yb):
    t = outcome(lambda: TorchLandscape(MODULE, Xb, yb, dtype="float64").num_samples)
    n = outcome(lambda: Landscape(NET, Xb, yb, dtype="float64").num_samples)
    agree(t, n)
    for k, v in MODULE.state_dict().items():
        assert torch.equal(v, STATE[k])


@FAST
@given(samples=arrays(st.sampled_from([np.int64, np.int32, np.float64, np.uint64, np.bool_,
                                       np.int8])))
def test_samples_are_checked_as_the_engine_checks_them(samples):
    theta = NET.init(1, seed=1, dtype="float64")[0]
    agree(outcome(lambda: TL.loss(theta, samples=samples)),
          outcome(lambda: LS.loss(theta, samples=samples)))


@FAST
@given(theta=arrays(st.sampled_from([np.float64, np.float32, np.int64, np.complex128,
                                     np.bool_]),
                    hnp.array_shapes(min_dims=1, max_dims=2, min_side=0,
                                     max_side=NET.num_params + 1)))
def test_parameter_vectors_are_checked_as_the_engine_checks_them(theta):
    t = outcome(lambda: TL.loss_and_grad(theta))
    n = outcome(lambda: LS.loss_and_grad(theta))
    assert t[0] == n[0], (theta.dtype, theta.shape, t, n)
    if t[0] == "ok" and np.isfinite(n[1][0]).all():
        agree(t, n)


@FAST
@given(theta=hnp.arrays(np.float64, (2, NET.num_params),
                        elements=st.floats(-3, 3, allow_nan=False)),
       chunk=st.integers(1, 20), memory_mb=st.floats(0.001, 64))
def test_numbers_do_not_depend_on_how_calls_are_cut(theta, chunk, memory_mb):
    tl = TorchLandscape(MODULE, X, Y, dtype="float64", chunk=chunk, memory_mb=memory_mb)
    agree(("ok", tl.loss_and_grad(theta)), ("ok", LS.loss_and_grad(theta)))
