"""FourierPathFinder on analytic and network landscapes."""

import numpy as np
import pytest
import scipy.optimize as so

import losstopo
from losstopo import MLP, FourierPath, Landscape, barrier_matrix, find_path
from losstopo._native import core
from losstopo.analytic import muller_brown, toy_gaussians

TOY = toy_gaussians()
NOTEBOOK = dict(objective="sum_squares", n_modes=15, n_points=101, lr=0.01, steps=300)


def toy_saddle():
    """The saddle between the toy's wells, found independently (root of the gradient)."""
    r = so.root(lambda x: TOY(x[None])[1][0], np.array([0.0, -0.15]))
    assert r.success
    return r.x, float(TOY.energy(r.x[None])[0])


def test_toy_straight_line_barrier():
    r = find_path(TOY, *TOY.endpoints, n_points=100, steps=0, progress=False)
    assert r.straight_barrier == pytest.approx(1.102, abs=5e-4)
    assert r.barrier == pytest.approx(r.straight_barrier)


@pytest.mark.parametrize("lam", [10, 100, 1000])
def test_toy_paper_barriers(lam):
    r = find_path(TOY, *TOY.endpoints, lam=lam, progress=False, **NOTEBOOK)
    assert r.barrier <= 0.66 and r.barrier_refined <= 0.66
    # the saddle bounds every continuous path from below
    assert r.barrier_refined >= toy_saddle()[1] - 1e-9
    # the paper's sum objective with the paper's Adam settings improves on the line too
    s = find_path(TOY, *TOY.endpoints, n_points=100, lam=lam, progress=False)
    assert s.barrier < 0.9 * s.straight_barrier


@pytest.mark.parametrize("lam", [10, 100, 1000])
def test_minimax_reaches_the_saddle(lam):
    saddle = toy_saddle()[1]
    assert saddle == pytest.approx(0.624, abs=1e-3)
    r = find_path(TOY, *TOY.endpoints, n_points=100, lam=lam, lr=0.01, steps=300,
                  objective="minimax", progress=False)
    assert saddle - 1e-9 <= r.barrier_refined <= 1.01 * saddle


def test_muller_brown_minimax_finds_the_highest_saddle():
    mb = muller_brown(scale=0.01)
    saddle = mb.energy(mb.saddles[:1])[0]  # the higher of the two saddles on the way
    r = find_path(mb, *mb.endpoints, n_points=100, lam=1.0, lr=0.01, steps=2000,
                  objective="minimax", progress=False)
    assert r.barrier_refined == pytest.approx(saddle, abs=0.01)
    assert r.straight_barrier > saddle + 0.4


def test_endpoints_are_exact_and_path_io(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(7), rng.standard_normal(7)
    p = FourierPath(a, b, rng.standard_normal((4, 7)))
    np.testing.assert_array_equal(p.at(0.0), a)
    np.testing.assert_allclose(p.at(1.0), b, atol=1e-14)
    assert p.at([0.2, 0.5]).shape == (2, 7)
    assert FourierPath(a, b).length() == pytest.approx(np.linalg.norm(b - a))
    p.save(tmp_path / "p.npz")
    q = FourierPath.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(q.coeffs, p.coeffs)
    r = find_path(TOY, *TOY.endpoints, steps=20, progress=False)
    np.testing.assert_array_equal(r.path.at(0.0), TOY.endpoints[0])
    assert r.losses[0] == pytest.approx(TOY.energy(TOY.endpoints[0][None])[0])


def test_core_points_match_the_python_path():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((1, 5)), rng.standard_normal((1, 5))
    pb = core.PathBatchF64(TOY if False else (lambda X: (np.zeros(len(X)), np.zeros_like(X))),
                           a, b, core.PathParams(n_modes=3, n_points=9))
    C = rng.standard_normal((1, 3, 5))
    t = np.linspace(0, 1, 13)
    np.testing.assert_allclose(pb.points(C, t)[0], FourierPath(a[0], b[0], C[0]).at(t),
                               rtol=1e-13, atol=1e-14)


# The path objective's gradients (every curve family and objective, on a callable and
# on the native engine): tests/test_curves.py.


def test_huge_lambda_keeps_the_straight_line():
    a, b = TOY.endpoints
    t = np.linspace(0, 1, 201)
    line = FourierPath(a, b).at(t)

    def deviation(r):
        return np.abs(r.path.at(t) - line).max()

    free = find_path(TOY, a, b, lam=10.0, progress=False)
    stiff = find_path(TOY, a, b, lam=1e7, progress=False)
    # Adam moves every coefficient by about lr (1e-3) per step whatever the gradient's
    # size, so the stiff path oscillates about the line within about n_modes * lr
    assert deviation(stiff) < 0.011 and deviation(free) > 5 * deviation(stiff)
    exact = find_path(TOY, a, b, lam=1e7, optimizer="lbfgs", steps=50, progress=False)
    assert deviation(exact) < 1e-4
    assert exact.barrier == pytest.approx(exact.straight_barrier, abs=1e-3)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_native_equals_callable_on_an_mlp(optimizer):
    net = MLP([6, 5, 3], activation="tanh")
    X, y = losstopo.datasets.synthetic(80, 6, 3, seed=1, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64")
    a, b = net.init(2, seed=4, dtype="float64")
    kw = dict(n_modes=3, n_points=10, lam=1e-3, steps=15, lr=0.01, optimizer=optimizer,
              progress=False)
    native = find_path(ls, a, b, **kw)
    call = find_path(lambda W: ls.loss_and_grad(W), a, b, **kw)
    # the native path computes the first layer from the basis vectors: same numbers up
    # to rounding
    np.testing.assert_allclose(native.path.coeffs, call.path.coeffs, rtol=1e-7, atol=1e-10)
    assert native.barrier == pytest.approx(call.barrier, rel=1e-10)
    assert native.error_barrier is not None and call.error_barrier is None
    assert native.barrier <= native.straight_barrier + 1e-12
    ev = native.evaluate(Landscape(net, X[:30], y[:30], dtype="float64"))
    assert ev.losses.shape == native.losses.shape and ev.error_barrier is not None


def test_barrier_matrix_resumes(tmp_path, monkeypatch):
    net = MLP([4, 3, 2], activation="relu")
    X, y = losstopo.datasets.synthetic(40, 4, 2, seed=0, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64")
    thetas = net.init(5, dtype="float64")
    kw = dict(pairs=6, seed=1, n_points=8, n_modes=2, steps=5, progress=False, chunk=2)
    full = barrier_matrix(ls, thetas, **kw)
    assert full["done"].all() and len(full["pairs"]) == 6
    assert np.isfinite(full["barrier"]).all()
    out = tmp_path / "pairs.npz"
    from losstopo import paths

    real = paths._find_paths
    chunks = []

    def dying(landscape, A, *args, **kwargs):
        if len(chunks) == 1:
            raise KeyboardInterrupt
        chunks.append(len(A))
        return real(landscape, A, *args, **kwargs)

    monkeypatch.setattr(paths, "_find_paths", dying)
    with pytest.raises(KeyboardInterrupt):
        barrier_matrix(ls, thetas, out=out, **kw)
    partial = losstopo._io.load_npz(out)
    assert partial["done"].sum() == 2  # the finished chunk was saved
    chunks.clear()

    def counting(landscape, A, *args, **kwargs):
        chunks.append(len(A))
        return real(landscape, A, *args, **kwargs)

    monkeypatch.setattr(paths, "_find_paths", counting)
    again = barrier_matrix(ls, thetas, out=out, **kw)
    assert chunks == [2, 2]  # only the unfinished pairs
    for key in ("barrier", "barrier_rel", "length", "straight_barrier", "barrier_refined"):
        np.testing.assert_array_equal(again[key], full[key])
    with pytest.raises(ValueError, match="different configuration"):
        barrier_matrix(ls, thetas, out=out, **dict(kw, seed=2))


def test_barrier_matrix_file_is_keyed_by_the_landscape(tmp_path):
    net = MLP([4, 3, 2], activation="relu")
    X, y = losstopo.datasets.synthetic(60, 4, 2, seed=0, dtype="float64")
    thetas = net.init(3, dtype="float64")
    kw = dict(pairs=2, n_points=6, n_modes=2, steps=2, progress=False)
    out = tmp_path / "pairs.npz"
    barrier_matrix(Landscape(net, X[:40], y[:40], dtype="float64"), thetas, out=out, **kw)
    again = barrier_matrix(Landscape(net, X[:40], y[:40], dtype="float64"), thetas, out=out,
                           **kw)  # the same landscape resumes (nothing left to do)
    assert again["done"].all()
    for other in (Landscape(net, X[20:], y[20:], dtype="float64"),  # other data
                  Landscape(net, X[:40], y[:40], dtype="float32")):  # other dtype
        with pytest.raises(ValueError, match="different configuration"):
            barrier_matrix(other, thetas, out=out, **kw)
    with pytest.raises(ValueError, match="different configuration"):  # other settings
        barrier_matrix(Landscape(net, X[:40], y[:40], dtype="float64"), thetas, out=out,
                       **dict(kw, lam=0.5))
    # an edited file (metadata intact) is refused, not read out of bounds
    import edits
    from losstopo._io import atomic_savez, load_npz

    for key, edit in (("done", lambda a: a[:1]), ("pairs", lambda a: a[::-1]),
                      ("losses", lambda a: a[:, :2]), ("barrier", lambda a: a * 0 + 42)):
        d = load_npz(out)
        edits.careless(out, **{key: edit(d[key])})  # refused by its seal
        with pytest.raises(ValueError, match="edited after it was written"):
            barrier_matrix(Landscape(net, X[:40], y[:40], dtype="float64"), thetas, out=out,
                           **kw)
        if key != "barrier":  # sealed again: refused by barrier_matrix's own checks
            atomic_savez(out, d)
            edits.resealed(out, **{key: edit(d[key])})
            with pytest.raises(ValueError, match=f"array '{key}'"):
                barrier_matrix(Landscape(net, X[:40], y[:40], dtype="float64"), thetas,
                               out=out, **kw)
        atomic_savez(out, d)


@pytest.mark.parametrize("objective", ["sum", "minimax"])
def test_batched_pairs_equal_single_paths(objective):
    """Pairs optimized together in one PathBatch give each pair's own numbers."""
    net = MLP([6, 5, 4, 3], activation="tanh")
    X, y = losstopo.datasets.synthetic(70, 6, 3, seed=3, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64")
    thetas = net.init(4, seed=2, dtype="float64")
    kw = dict(pairs=5, seed=0, n_points=9, n_modes=3, steps=6, lr=0.01, objective=objective,
              progress=False)
    one = barrier_matrix(ls, thetas, chunk=1, **kw)
    many = barrier_matrix(ls, thetas, chunk=5, **kw)
    for key in ("barrier", "barrier_refined", "straight_barrier", "length", "losses"):
        np.testing.assert_array_equal(many[key], one[key])
    fp = {k: v for k, v in kw.items() if k not in ("pairs", "seed")}
    for j, (i1, i2) in enumerate(many["pairs"]):
        r = find_path(ls, thetas[i1], thetas[i2], **fp)
        assert r.barrier == many["barrier"][j]
        assert r.barrier_refined == many["barrier_refined"][j]


def test_core_measure_matches_a_dense_reference():
    """The refined maxima (at most 5 engine calls per path) against a dense scan."""
    net = MLP([5, 6, 3], activation="softplus")
    X, y = losstopo.datasets.synthetic(50, 5, 3, seed=4, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64")
    a, b = net.init(2, seed=6, dtype="float64")
    rng = np.random.default_rng(0)
    C = 0.3 * rng.standard_normal((1, 4, net.num_params))
    pb = core.PathBatchF64(ls.engine, a[None], b[None], core.PathParams(n_modes=4, n_points=15))
    m = pb.measure(C)
    assert m["calls"] <= 5
    path = FourierPath(a, b, C[0])
    t = np.linspace(0, 1, 20001)
    for coeffs, key in ((C[0], ""), (np.zeros_like(C[0]), "straight_")):
        E = ls.loss(FourierPath(a, b, coeffs).at(t))
        k = int(np.argmax(E))
        assert m[key + "e_max"][0] >= E[k] - 1e-12
        assert m[key + "e_max"][0] == pytest.approx(E[k], rel=1e-7)
        assert m[key + "t_max"][0] == pytest.approx(t[k], abs=2e-4)
    np.testing.assert_allclose(m["energies"][0], ls.loss(path.at(pb.t)), rtol=1e-12)
    np.testing.assert_allclose(m["errors"][0], 1 - ls.accuracy(path.at(pb.t)))
    straight = FourierPath(a, b, np.zeros_like(C[0]))
    np.testing.assert_allclose(m["straight"][0], ls.loss(straight.at(pb.t)), rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(objective="max"), ValueError, "objective"),
        (dict(optimizer="sgd"), ValueError, "optimizer"),
        (dict(n_points=2), ValueError, "n_points"),
        (dict(n_modes=-1), ValueError, "n_modes"),
        (dict(lam=-1.0), ValueError, "lam"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(temperature=0.0), ValueError, "temperature"),
        (dict(a=np.zeros(3)), ValueError, "b"),
        (dict(a=np.array([np.nan, 0.0])), ValueError, "a"),
        (dict(landscape=5), TypeError, "landscape"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    args = dict(landscape=TOY, a=TOY.endpoints[0], b=TOY.endpoints[1], steps=2, progress=False)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        find_path(**args)


def test_barrier_matrix_bad_pairs():
    th = np.zeros((3, 2))
    for pairs in ([[0, 0]], [[0, 5]], [[0.5, 1]], 0):
        with pytest.raises(ValueError, match="pairs"):
            barrier_matrix(TOY, th, pairs=pairs, progress=False)


@pytest.mark.parametrize("objective", ["sum", "sum_squares", "minimax"])
@pytest.mark.parametrize("bias", [True, False])
def test_native_combination_equals_generic_evaluation(objective, bias):
    rng = np.random.default_rng(7)
    net = MLP([7, 6, 4, 3], activation="softplus", bias=bias)
    X, y = losstopo.datasets.synthetic(90, 7, 3, seed=2, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64", chunk=25)
    th = net.init(4, seed=5, dtype="float64")
    params = core.PathParams(n_modes=3, n_points=11, lam=0.2, objective=objective,
                             temperature=0.1)
    fast = core.PathBatchF64(ls.engine, th[:2], th[2:], params)
    slow = core.PathBatchF64(ls.engine, th[:2], th[2:], params)
    slow.use_generic_evaluation()
    assert fast.uses_combinations and not slow.uses_combinations
    C = 0.2 * rng.standard_normal((2, 3, net.num_params))
    v1, g1, e1 = fast.objective(C)
    v2, g2, e2 = slow.objective(C)
    np.testing.assert_allclose(e1, e2, rtol=1e-12)
    np.testing.assert_allclose(v1, v2, rtol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-13)


# ------------------------------------ held basis vectors (a path's endpoints, hold_basis)
def held_case(dtype):
    net = MLP([7, 6, 4, 3], activation="softplus", bias=True)
    X, y = losstopo.datasets.synthetic(90, 7, 3, seed=2, dtype=dtype)
    return net, Landscape(net, X, y, dtype=dtype, chunk=25)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_held_basis_vectors_give_the_same_combinations(dtype):
    net, ls = held_case(dtype)
    eng = ls.engine
    rng = np.random.default_rng(3)
    V = net.init(4, seed=5, dtype=dtype)
    index = rng.integers(0, 4, (5, 3)).astype(np.int32)
    coef = rng.standard_normal((5, 3)).astype(dtype)
    samples = np.array([3, 80, 4, 4, 51, 89, 0])

    def both():
        return (eng.evaluate_combination(V, index, coef),
                eng.evaluate_combination(V, index, coef, samples=samples))

    free = both()
    eng.hold_basis(V[[0, 2]])  # held columns between columns computed per call
    eng.hold_basis(V[[2]])
    assert eng.held_basis == 2
    held = both()
    tol = 1e-12 if dtype == "float64" else 2e-6
    for a, b in zip(held, free):
        np.testing.assert_allclose(a, b, rtol=tol)
    eng.release_basis(V[[0, 2]])
    assert eng.held_basis == 1  # V[2] was held twice
    eng.release_basis(V[[2, 1]])  # V[1] is not held: nothing to release
    assert eng.held_basis == 0
    for a, b in zip(both(), free):
        np.testing.assert_array_equal(a, b)
    eng.line_cache_bytes = 0  # past the budget a vector is not held; the same results
    eng.hold_basis(V)
    assert eng.held_basis == 0
    for a, b in zip(both(), free):
        np.testing.assert_array_equal(a, b)


def test_hold_basis_bad_input():
    net, ls = held_case("float64")
    V = net.init(2, seed=1, dtype="float64")
    for bad in (V[:, :-1], V[0], V[:0]):
        with pytest.raises(ValueError, match="V"):
            ls.engine.hold_basis(bad)
        with pytest.raises(ValueError, match="V"):
            ls.engine.release_basis(bad)
    assert ls.engine.held_basis == 0


def test_path_steps_hold_their_endpoints_and_release_them():
    net, ls = held_case("float64")
    th = net.init(4, seed=5, dtype="float64")
    params = core.PathParams(n_modes=3, n_points=9, lam=0.1, steps=6)
    seen = []

    def run(on_step=None):
        pb = core.PathBatchF64(ls.engine, th[:2], th[2:], params)
        if on_step is None:
            pb.optimize(lambda s: seen.append(ls.engine.held_basis) or True)
        else:
            pb.optimize(on_step)
        return np.asarray(pb.coeffs)

    held = run()
    assert seen and set(seen) == {4} and ls.engine.held_basis == 0
    ls.engine.line_cache_bytes = 0  # nothing held: every step computes all products
    seen.clear()
    free = run()
    assert set(seen) == {0}
    np.testing.assert_allclose(held, free, rtol=1e-9, atol=1e-12)
    ls.engine.line_cache_bytes = 1 << 30
    run(lambda s: s < 2)  # interrupted: released all the same
    assert ls.engine.held_basis == 0

    def fail(s):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(fail)
    assert ls.engine.held_basis == 0
