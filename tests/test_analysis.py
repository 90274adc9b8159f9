"""Kernel PCA, geometry of solution sets, and figures."""

import numpy as np
import pytest

import losstopo
from losstopo import KernelPCA
from losstopo.geometry import (GAMMA_D, bandwidth_sweep, centroid_distances, pairwise_distances,
                               separation, set_geometry, weight_stats)


def two_clouds(seed=0, n=12, d=30):
    rng = np.random.default_rng(seed)
    A = rng.normal(0.0, 1.0, (n, d))
    B = rng.normal(0.0, 2.5, (n, d)) + 0.5
    return A, B


def direct_kpca(X, gamma, k):
    """Straight from the definition, in float64."""
    n = len(X)
    K = np.exp(-gamma * ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    one = np.full((n, n), 1.0 / n)
    Kc = K - one @ K - K @ one + one @ K @ one
    vals, vecs = np.linalg.eigh(Kc)
    vals, vecs = vals[::-1][:k], vecs[:, ::-1][:, :k]
    return vals, vecs * np.sqrt(vals)


@pytest.mark.parametrize("kernel", ["rbf", "linear", "poly", "sigmoid"])
def test_kpca_against_direct_numpy_and_fitted_attributes(kernel):
    A, B = two_clouds()
    X = np.concatenate([A, B])
    kp = KernelPCA(3, kernel=kernel)
    Z = kp.fit_transform(X)
    assert Z.shape == (24, 3) and kp.eigenvalues_.shape == (3,)
    assert kp.eigenvectors_.shape == (24, 3) and kp.gamma_ == pytest.approx(1 / 30)
    np.testing.assert_allclose(kp.transform(X), Z, rtol=1e-7, atol=1e-9)
    if kernel == "rbf":
        vals, ref = direct_kpca(X, 1 / 30, 3)
        np.testing.assert_allclose(kp.eigenvalues_, vals, rtol=1e-9)
        np.testing.assert_allclose(np.abs(Z), np.abs(ref), rtol=1e-6, atol=1e-9)
    if kernel == "linear":  # ordinary PCA
        Xc = X - X.mean(0)
        s = np.linalg.svd(Xc, compute_uv=False)
        np.testing.assert_allclose(kp.eigenvalues_, s[:3] ** 2, rtol=1e-9)


@pytest.mark.parametrize("kernel", ["rbf", "linear", "poly", "sigmoid"])
def test_kpca_against_scikit_learn(kernel):
    skd = pytest.importorskip("sklearn.decomposition", reason="scikit-learn not installed")
    A, B = two_clouds(1)
    X = np.concatenate([A, B])
    ours = KernelPCA(2, kernel=kernel).fit(X)
    ref = skd.KernelPCA(2, kernel=kernel, gamma=1 / 30).fit(X)
    np.testing.assert_allclose(ours.eigenvalues_, ref.eigenvalues_, rtol=1e-7)
    new = np.random.default_rng(5).normal(size=(4, 30))
    np.testing.assert_allclose(np.abs(ours.transform(new)), np.abs(ref.transform(new)),
                               rtol=1e-6, atol=1e-9)


def test_kpca_out_of_sample_path_points_lie_between_endpoints():
    A, B = two_clouds(2)
    X = np.concatenate([A, B])
    kp = KernelPCA(2, kernel="linear").fit(X)
    mid = kp.transform(0.5 * (X[:1] + X[1:2]))
    ends = kp.transform(X[:2])
    np.testing.assert_allclose(mid[0], ends.mean(0), atol=1e-9)  # linear: exact midpoint


def test_kpca_bad_input():
    with pytest.raises(ValueError, match="kernel"):
        KernelPCA(kernel="cosine").fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="n_components"):
        KernelPCA(5).fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        KernelPCA().fit(np.full((3, 2), np.nan))
    with pytest.raises(RuntimeError, match="fit"):
        KernelPCA().transform(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="X"):
        KernelPCA().fit(np.zeros((3, 2))).transform(np.zeros((3, 4)))


def test_geometry():
    A, B = two_clouds(3)
    da, db = centroid_distances(A, B)
    c = np.concatenate([A, B]).mean(0)
    np.testing.assert_allclose(da, np.linalg.norm(A - c, axis=1))
    assert np.median(db) > np.median(da)  # the wider cloud lies farther out
    m, s = weight_stats(A)
    assert m == pytest.approx(A.mean()) and s == pytest.approx(A.std())
    D = pairwise_distances(A, B)
    assert D[2, 3] == pytest.approx(np.linalg.norm(A[2] - B[3]))
    assert np.allclose(np.diag(pairwise_distances(A)), 0, atol=1e-6)
    sep = separation(np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]]))
    assert sep["auc"] == 1.0 and sep["fisher"] > 1
    mixed = separation(np.array([[0.0], [2.0]]), np.array([[1.0], [3.0]]))
    assert mixed["auc"] == 0.75


def test_bandwidth_sweep_and_set_geometry():
    rng = np.random.default_rng(3)
    A = rng.normal(0.0, 0.1, (12, 40))
    B = rng.normal(0.0, 0.1, (10, 40)) + 0.05
    sweep = bandwidth_sweep(A, B)
    assert [r["gamma_d"] for r in sweep] == list(GAMMA_D)
    for r in sweep:  # each entry is kernel PCA at that bandwidth, measured directly
        E = KernelPCA(2, kernel="rbf", gamma=r["gamma_d"] / 40).fit_transform(
            np.concatenate([A, B]))
        ref = separation(E[:12], E[12:])
        assert r["auc"] == pytest.approx(ref["auc"]) and r["fisher"] == pytest.approx(ref["fisher"])
        assert 0.5 <= r["auc"] <= 1.0
    g = set_geometry(A)
    d = [np.linalg.norm(A[i] - A[j]) for i in range(12) for j in range(i + 1, 12)]
    assert g["dist_median"] == pytest.approx(np.median(d))
    assert g["dist_rms_per_param"] == pytest.approx(np.sqrt(np.mean(np.square(d)) / 40))
    assert g["norm_median"] == pytest.approx(np.median(np.linalg.norm(A, axis=1)))
    with pytest.raises(ValueError, match="lengths"):
        bandwidth_sweep(A, B[:, :5])


def test_every_figure_function_returns_a_figure(tmp_path):
    from losstopo import plots

    X, y = losstopo.datasets.synthetic(60, 6, 3, seed=0)
    net = losstopo.MLP([6, 4, 3])
    ens = losstopo.train(net, (X, y), (X, y), runs=2, epochs=3, progress=False)
    toy = losstopo.analytic.toy_gaussians()
    r = losstopo.find_path(toy, *toy.endpoints, steps=5, progress=False)
    A, B = two_clouds(4)
    figs = [
        plots.plot_loss_curves({"SGD": ens, "LBFGS": ens}),
        plots.plot_landscape_paths(toy, {"found": r}),
        plots.plot_barrier_histograms({"SGD-train": [0.1, 0.2, 0.3], "LBFGS-train": [0.5, 0.9]}),
        plots.plot_distance_histograms({"SGD-train": [1.0, 2.0], "LBFGS-train": [3.0, 4.0]}),
        plots.plot_embedding({"a": A[:, :2], "b": B[:, :2]}, paths={"p": A[:3, :2]}),
        plots.plot_loss_profiles({"found": r, "line": (r.t, r.straight["losses"])}),
        plots.plot_bandwidth({"a + b": bandwidth_sweep(A, B)}),
    ]
    for i, fig in enumerate(figs):
        assert fig.axes and any(ax.has_data() for ax in fig.axes)
        png, pdf = plots.save_figure(fig, tmp_path / f"f{i}")
        assert png.endswith(".png") and (tmp_path / f"f{i}.png").stat().st_size > 1000
        assert (tmp_path / f"f{i}.pdf").stat().st_size > 500
