"""Property-based tests: arbitrary shapes, dtypes, non-finite values and integer
extremes thrown at the public API. Each call either works or raises one of the
documented Python exceptions (ValueError, TypeError); none may crash the interpreter
or hang."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import losstopo
from losstopo import MLP, Ensemble, KernelPCA, Landscape, barrier_matrix, find_path, minimize

NET = MLP([3, 4, 2], activation="tanh")
RNG = np.random.default_rng(0)
X = RNG.random((12, 3))
Y = np.arange(12) % 2
LS = Landscape(NET, X, Y, dtype="float64")
EXPECTED = (ValueError, TypeError)
FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.bool_, np.complex128,
                          np.uint8, np.float16])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
ints = st.one_of(st.integers(-2**70, 2**70), st.sampled_from([0, -1, 1, 2**31, 2**63]))


def arrays(dtype=dtypes, shape=shapes):
    return dtype.flatmap(lambda d: hnp.arrays(d, shape, elements=None)) if not isinstance(
        dtype, type) else hnp.arrays(dtype, shape)


def works_or_raises(fn):
    try:
        fn()
    except EXPECTED:
        pass


@FAST
@given(theta=arrays())
def test_landscape_evaluation(theta):
    works_or_raises(lambda: LS.loss_and_grad(theta))
    works_or_raises(lambda: LS.accuracy(theta))


@FAST
@given(Xb=arrays(), yb=arrays(), threads=st.one_of(st.none(), ints), chunk=st.one_of(st.none(), ints))
def test_landscape_construction(Xb, yb, threads, chunk):
    works_or_raises(lambda: Landscape(NET, Xb, yb, threads=threads, chunk=chunk))


@FAST
@given(samples=arrays(st.sampled_from([np.int64, np.int32, np.float64, np.uint64])))
def test_landscape_samples(samples):
    works_or_raises(lambda: LS.loss(np.zeros(NET.num_params), samples=samples))


@FAST
@given(x0=arrays(st.sampled_from([np.float64, np.float32, np.int64, np.complex128])),
       max_iter=ints, history=ints, gtol=floats)
def test_minimize(x0, max_iter, history, gtol):
    def fun(x):
        return float(np.sum(x * x)), 2 * x

    works_or_raises(lambda: minimize(fun, x0, max_iter=min(max_iter, 5) if isinstance(
        max_iter, int) and max_iter > 0 else max_iter, history=history, gtol=gtol))


@FAST
@given(epochs=ints, batch_size=ints, lr=floats, seed=ints, runs=ints)
def test_train(epochs, batch_size, lr, seed, runs):
    # bounded work: what passes the checks runs at most 2 epochs of at most 3 runs
    ep = min(epochs, 2) if isinstance(epochs, int) and epochs >= 0 else epochs
    rr = min(runs, 3) if isinstance(runs, int) and runs >= 1 else runs
    works_or_raises(lambda: losstopo.train(NET, (X, Y), epochs=ep, batch_size=batch_size,
                                           lr=lr, seed=seed, runs=rr, progress=False))


@FAST
@given(a=arrays(st.sampled_from([np.float64, np.float32, np.int64, np.complex128])),
       n_points=ints, n_modes=ints, lam=floats, init_scale=floats)
def test_find_path(a, n_points, n_modes, lam, init_scale):
    npts = min(n_points, 8) if isinstance(n_points, int) and n_points >= 3 else n_points
    nm = min(n_modes, 3) if isinstance(n_modes, int) and n_modes >= 0 else n_modes
    b = np.zeros(NET.num_params)
    works_or_raises(lambda: find_path(LS, a, b, n_points=npts, n_modes=nm, lam=lam, steps=1,
                                      init_scale=init_scale, progress=False))


@FAST
@given(thetas=arrays(st.sampled_from([np.float64, np.float32, np.int64])),
       pairs=st.one_of(ints, arrays(st.sampled_from([np.int64, np.float64]))))
def test_barrier_matrix(thetas, pairs):
    pp = min(pairs, 2) if isinstance(pairs, int) and pairs >= 1 else pairs
    if isinstance(pp, np.ndarray) and pp.size > 4:
        pp = pp.reshape(-1)[:4]
    works_or_raises(lambda: barrier_matrix(LS, thetas, pairs=pp, n_points=4, n_modes=1,
                                           steps=1, progress=False))


@FAST
@given(Xk=arrays(), n_components=ints, gamma=st.one_of(st.none(), floats))
def test_kernel_pca(Xk, n_components, gamma):
    works_or_raises(lambda: KernelPCA(n_components, gamma=gamma).fit_transform(Xk))


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["theta_final", "theta_best_train", "epoch_best_train", "status",
                             "train_loss", "run_ids"]),
       value=arrays(st.sampled_from([np.float64, np.int64, np.int8, np.complex128])))
def test_ensemble_load(tmp_path_factory, name, value):
    import edits

    folder = tmp_path_factory.mktemp("ens")
    p = folder / "ens.npz"
    _ENSEMBLE.save(p)
    edits.resealed(p, **{name: value})  # sealed again: the arrays' own checks hold
    try:
        Ensemble.load(p)
    except ValueError:
        pass


_ENSEMBLE = losstopo.train(NET, (X, Y), (X, Y), runs=2, epochs=2, progress=False)

