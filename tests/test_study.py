"""The command-line study end to end on tiny synthetic data."""

import json
import os

import numpy as np
import pytest

import losstopo

from losstopo import cli
from losstopo.study import Study, StudyError, make_config

TINY = ["--data", "synthetic", "--n-train", "300", "--n-test", "100", "--runs", "3",
        "--keep", "2", "--epochs", "2", "--iters", "3", "--pairs", "1", "--path-steps", "2",
        "--converge-pairs", "0", "--align-pairs", "0", "--curvature-solutions", "0",
        "--certify-pairs", "0", "--map-pairs", "0", "--quiet"]


def test_cli_study_every_stage_and_file(tmp_path):
    out = tmp_path / "study"
    tiny = TINY.copy()
    tiny[tiny.index("--align-pairs") + 1] = "1"
    tiny[tiny.index("--curvature-solutions") + 1] = "2"
    tiny[tiny.index("--certify-pairs") + 1] = "1"
    tiny[tiny.index("--map-pairs") + 1] = "6"
    assert cli.main(["reproduce", "--out", str(out), "--slice-grid", "6"] + tiny) == 0
    names = set(os.listdir(out))
    for f in ("manifest.json", "log.txt", "report.md", "ensemble_sgd.npz", "ensemble_lbfgs.npz",
              "sets.npz", "embedding.npz", "paths_SGD-train_train.npz",
              "paths_LBFGS-test_test.npz"):
        assert f in names, f
    figs = set(os.listdir(out / "figures"))
    for stem in ("fig2_loss_curves", "fig3_toy_paths", "fig3_toy_lambdas", "fig4_barriers_train",
                 "fig4_barriers_train_minus_max", "fig4_barriers_test_minus_mean",
                 "fig6_kpca_bandwidth", "fig4_barriers_test", "fig5_distances_train",
                 "loss_profiles_train", "sharpness_top", "sharpness_trace", "hessian_density",
                 "slice_SGD", "slice_LBFGS", "slice_plane", "slice_surface_SGD"):
        assert f"{stem}.png" in figs and f"{stem}.pdf" in figs, stem
    assert any(f.startswith("fig6_kpca") for f in figs)
    report = (out / "report.md").read_text()
    for section in ("Table I", "Table S1", "Barriers", "Kernel PCA", "claims",
                    "against the RBF bandwidth", "What drives the separation",
                    "median H - mean endpoint", "training landscape; H - max endpoint)",
                    "Fig. 3: paths on the 2-D toy landscape"):
        assert section in report
    assert "**not tested**" not in report  # every stage ran: every claim is checked
    claims = [ln for ln in report.splitlines() if ln.startswith("- **")]
    # 28 claims; sharpness, alignment, certified barriers and the map again in their
    # sections
    assert len(claims) == 36
    assert {ln.split("**")[1] for ln in claims} <= {"held", "contradicted", "inconclusive"}
    for ln in claims:  # each with its interval, or why it has none
        assert ("95% interval [" in ln or "deterministic" in ln or "Inconclusive: " in ln), ln
    assert "Holm's correction runs over the" in report
    assert "## Permutation alignment" in report and "after permutation alignment" in report
    assert "## Curvature" in report and "L-BFGS minima are sharper than SGD minima" in report
    assert "## Certified barriers" in report
    m = json.loads((out / "manifest.json").read_text())
    cur = m["results"]["curvature"]
    d = np.load(out / "curvature.npz")
    sets = np.load(out / "sets.npz")
    with Study(out, quiet=True) as study:
        ls = study.landscapes()[0]
    for name, v in cur.items():
        key = name.replace("-", "_")
        assert v["solutions"] == 2 and d[f"{key}__top"].shape == (2,)
    # The study's top eigenvalue is ARPACK's (an independent Lanczos) at the same point.
    theta = sets["LBFGS_train"][0].astype(np.float64)
    ref = losstopo.curvature.top_eigenvalues(ls, theta, tol=1e-6, method="arpack")[0][0]
    assert d["LBFGS_train__top"][0] == pytest.approx(ref, rel=2e-3)
    assert d["slice__plane__loss"].shape == (6, 6)
    al = m["results"]["alignment"]
    assert set(al) == {"SGD-train", "SGD-test", "LBFGS-train", "LBFGS-test"}
    for name, v in al.items():
        d = np.load(out / f"paths_{name}_train_aligned.npz")
        plain = np.load(out / f"paths_{name}_train.npz")
        assert d["pairs"].tolist() == plain["pairs"][:1].tolist()  # the same pair
        assert v["median"] == pytest.approx(float(np.median(d["barrier"])))
        assert v["distance_after"] <= v["distance_before"]
    assert set(m["results"]["aligned_separation"]) == {
        f"{a}|{b}|rbf" for a, b in (("LBFGS-train", "SGD-train"), ("LBFGS-test", "SGD-test"),
                                    ("LBFGS-train", "SGD-test"))}
    m = json.loads((out / "manifest.json").read_text())
    for v in m["results"]["barriers"].values():  # the three levels, in their order
        assert v["median"] >= v["median_mean"] >= v["median_rel"] >= 0
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["stages"]) >= {"train", "embed", "paths", "plot"}


@pytest.mark.parametrize("preset", ["quick", "medium"])
def test_rerun_redoes_nothing_and_resumes_pairs(tmp_path, monkeypatch, preset):
    out = tmp_path / "s"
    tiny = TINY + ["--preset", preset]
    assert cli.main(["train", "--out", str(out)] + tiny) == 0
    m = json.loads((out / "manifest.json").read_text())
    if preset == "medium":  # the paper's path settings and set size, at tiny data
        assert m["config"]["preset"] == "medium" and m["config"]["keep"] == 2
        assert (m["config"]["n_points"], m["config"]["n_modes"], m["config"]["lam"]) == (
            50, 10, 1e-4)
    assert cli.main(["embed", "--out", str(out), "--quiet"]) == 0
    from losstopo import paths as paths_mod

    real = paths_mod._find_paths
    calls = []

    def dying(*a, **k):
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(paths_mod, "_find_paths", dying)
    assert cli.main(["paths", "--out", str(out), "--quiet"]) == 130  # interrupted
    monkeypatch.setattr(paths_mod, "_find_paths", real)
    # the figures of an unfinished study: its paths file under way is drawn, not refused
    assert cli.main(["plot", "--out", str(out), "--quiet"]) == 0
    before = {f: os.path.getmtime(out / f) for f in ("ensemble_sgd.npz", "sets.npz",
                                                      "embedding.npz")}
    counted = []
    def counting(landscape, *a, **k):  # the network's paths, not the toy figure's
        if isinstance(landscape, losstopo.Landscape):
            counted.append(1)
        return real(landscape, *a, **k)

    monkeypatch.setattr(paths_mod, "_find_paths", counting)

    import losstopo.study.stages.train as train_stage

    trained = []
    monkeypatch.setattr(train_stage, "train", lambda *a, **k: trained.append(1))
    assert cli.main(["reproduce", "--out", str(out)] + tiny) == 0
    assert trained == []  # training was not redone
    assert len(counted) == 6 - 1 - 0  # 6 chunks of one pair (4 sets + 2 test), 1 finished
    for f, t in before.items():
        assert os.path.getmtime(out / f) == t, f
    calls_again = len(counted)
    assert cli.main(["reproduce", "--out", str(out)] + tiny) == 0
    assert len(counted) == calls_again  # nothing left to do


def test_changed_configuration_is_refused_unless_forced(tmp_path):
    out = tmp_path / "s"
    assert cli.main(["train", "--out", str(out)] + TINY) == 0
    changed = TINY.copy()
    changed[changed.index("--runs") + 1] = "4"
    assert cli.main(["train", "--out", str(out)] + changed) == 2
    with pytest.raises(StudyError, match="runs"):
        Study(out, make_config(data="synthetic", runs=4, keep=2, n_train=300, n_test=100,
                               sgd_epochs=2, lbfgs_iters=3, pairs=1, path_steps=2), quiet=True)
    assert cli.main(["train", "--out", str(out), "--force"] + changed) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["runs"] == 4


def test_stochastic_path_steps_in_the_study(tmp_path, monkeypatch):
    out = tmp_path / "s"
    from losstopo import paths as paths_mod

    real = paths_mod.make_path_batch
    seen = []

    def recording(landscape, A, B, params, seed=0):
        if isinstance(landscape, losstopo.Landscape):
            seen.append((landscape.num_samples, params.get("batch_size")))
        return real(landscape, A, B, params, seed)

    monkeypatch.setattr(paths_mod, "make_path_batch", recording)
    assert cli.main(["reproduce", "--out", str(out), "--path-batch", "100"] + TINY) == 0
    # 100 of the 300 training samples per step; the 100 test samples are all of them
    assert (300, 100) in seen and (100, None) in seen
    assert not [s for s in seen if s[0] == 300 and s[1] is None]
    assert "100 samples drawn per step" in (out / "report.md").read_text()
    with pytest.raises(SystemExit):  # argparse: must be a positive integer
        cli.main(["train", "--out", str(out), "--path-batch", "0"] + TINY)


def test_a_study_written_before_the_later_settings_resumes(tmp_path):
    """A manifest without the later settings (an older release's) still matches."""
    from losstopo._io import config_hash

    out = tmp_path / "s"
    assert cli.main(["train", "--out", str(out)] + TINY) == 0
    m = json.loads((out / "manifest.json").read_text())
    for later, default in (("path_batch", None), ("train_group", None), ("curve", "fourier")):
        assert m["config"].pop(later) == default
    for stage_setting in ("curvature_solutions", "slice_grid", "certify_pairs", "map_pairs",
                          "map_minima", "map_batch", "map_steps"):
        m["config"].pop(stage_setting)
    assert m["config_hash"] == config_hash(m["config"])  # the hash an older release wrote
    (out / "manifest.json").write_text(json.dumps(m))
    assert cli.main(["train", "--out", str(out)] + TINY) == 0
    assert cli.main(["train", "--out", str(out), "--path-batch", "50"] + TINY) == 2  # changed


def test_study_errors(tmp_path):
    with pytest.raises(StudyError, match="no study"):
        Study(tmp_path / "empty")
    with pytest.raises(StudyError, match="keep"):
        make_config(runs=3, keep=5)
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(StudyError, match="PyTorch"):
            make_config("lenet")
    else:
        assert make_config("lenet")["network"] == "lenet"
    assert cli.main(["plot", "--out", str(tmp_path / "nothing"), "--quiet"]) == 2


def test_autoencoder_study(tmp_path):
    out = tmp_path / "ae"
    args = ["reproduce", "--out", str(out), "--network", "autoencoder"] + TINY
    assert cli.main(args) == 0
    report = (out / "report.md").read_text()
    assert "autoencoder" in report and "Table I" in report
    with np.load(out / "ensemble_lbfgs.npz") as d:
        assert np.isnan(d["train_acc"]).all()  # no accuracy for a regression network


@pytest.mark.parametrize("name", ["lstm", "lenet"])
def test_torch_network_study_end_to_end(tmp_path, name):
    pytest.importorskip("torch", reason="PyTorch not installed (optional extra)")
    out = tmp_path / name
    tiny = TINY.copy()
    tiny[tiny.index("--n-train") + 1] = "120"
    tiny[tiny.index("--n-test") + 1] = "40"
    tiny[tiny.index("--align-pairs") + 1] = "1"
    assert cli.main(["reproduce", "--out", str(out), "--network", name] + tiny) == 0
    report = (out / "report.md").read_text()
    assert name in report and "Barriers" in report
    # the align stage: permutations derived from the module, one pair per set
    assert "## Permutation alignment" in report
    al = np.load(out / "paths_SGD-train_train_aligned.npz")
    assert al["done"].all() and (al["distance_after"] <= al["distance_before"]).all()
    # every claim of the paper is checked (ours beyond it need stages these networks skip)
    assert "**not tested**" not in report.split("Beyond the paper:")[0]
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["network"] == name and set(m["stages"]) >= {"train", "paths", "align",
                                                                     "plot"}


def test_convergence_stage(tmp_path, monkeypatch):
    from losstopo import convergence

    monkeypatch.setattr(convergence, "STEPS", (1, 2, 4))
    out = tmp_path / "c"
    args = [a for a in TINY]
    args[args.index("--converge-pairs") + 1] = "1"
    assert cli.main(["reproduce", "--out", str(out)] + args) == 0
    m = json.loads((out / "manifest.json").read_text())
    conv = m["results"]["convergence"]
    assert set(conv) == {"SGD-train", "SGD-test", "LBFGS-train", "LBFGS-test"}
    d = np.load(out / "convergence.npz")
    for name, v in conv.items():
        key = name.replace("-", "_")
        assert v["steps"] == [1, 2, 4] and v["pairs"] == 1
        np.testing.assert_allclose(v["median"], np.median(d[f"{key}__barrier_refined"], axis=0))
        # The pair is the first of the set's paths stage, and its barrier after the
        # paths stage's 2 steps is the one the paths stage recorded.
        paths = np.load(out / f"paths_{name}_train.npz")
        assert d[f"{key}__pairs"].tolist() == paths["pairs"][:1].tolist()
        assert d[f"{key}__barrier"][0, 1] == paths["barrier"][0]
    report = (out / "report.md").read_text()
    assert "## Path convergence" in report and "minimax reference" in report
    assert (out / "figures" / "path_convergence.png").exists()
    # The stage is done: a rerun does not repeat it.
    monkeypatch.setattr(convergence, "path_convergence", None)
    assert cli.main(["paths", "--out", str(out), "--quiet"]) == 0


def test_study_with_another_curve_family(tmp_path):
    out = tmp_path / "bezier"
    assert cli.main(["reproduce", "--out", str(out), "--curve", "bezier"] + TINY) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["curve"] == "bezier"
    assert "bezier curves with 10 coefficient vectors" in (out / "report.md").read_text()
    d = np.load(out / "paths_SGD-train_train.npz")
    assert np.isfinite(d["barrier"]).all()
    # the paper's curve stays out of the configuration's hash: a fourier study's hash
    # is the one it had before the setting existed
    from losstopo.study import study_hash

    c = make_config(data="synthetic")
    assert study_hash(c) == study_hash({k: v for k, v in c.items() if k != "curve"})
    with pytest.raises(StudyError, match="curve"):
        make_config(data="synthetic", curve="spline")


def test_curvature_stage_joins_a_finished_study(tmp_path, monkeypatch):
    """The curvature stage's settings stay out of the configuration's hash: a finished
    study takes the stage later, and a changed setting reruns that stage alone."""
    out = tmp_path / "s"
    assert cli.main(["reproduce", "--out", str(out)] + TINY) == 0
    m0 = json.loads((out / "manifest.json").read_text())
    assert "curvature" not in m0["stages"] and "curvature" not in m0["results"]
    args = ["curvature", "--out", str(out), "--curvature-solutions", "1", "--slice-grid", "3",
            "--quiet"]
    assert cli.main(args) == 0
    m1 = json.loads((out / "manifest.json").read_text())
    assert m1["config_hash"] == m0["config_hash"]
    assert m1["config"]["curvature_solutions"] == 1 and m1["config"]["slice_grid"] == 3
    assert {k: m1["stages"][k] for k in m0["stages"]} == m0["stages"]  # nothing else reran
    assert all(v["solutions"] == 1 for v in m1["results"]["curvature"].values())
    # Run again unchanged: nothing to do; with another grid: the stage again.
    calls = []
    real = losstopo.slices.slice2d
    monkeypatch.setattr(losstopo.slices, "slice2d",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    assert cli.main(args) == 0 and calls == []
    assert cli.main(args[:-2] + ["4", "--quiet"]) == 0 and len(calls) == 3
    assert cli.main(["plot", "--out", str(out), "--quiet"]) == 0
    assert "## Curvature" in (out / "report.md").read_text()
    assert (out / "figures" / "slice_plane.png").exists()
    # Resuming with the preset's command line keeps the study's own stage settings.
    i = TINY.index("--curvature-solutions")
    assert cli.main(["reproduce", "--out", str(out)] + TINY[:i] + TINY[i + 2:]) == 0
    assert len(calls) == 3
    # Turned off: the stage's results leave the manifest and the report.
    assert cli.main(["curvature", "--out", str(out), "--curvature-solutions", "0",
                     "--quiet"]) == 0
    m2 = json.loads((out / "manifest.json").read_text())
    assert not {"curvature", "hessian_density", "slices"} & set(m2["results"])
    assert cli.main(["plot", "--out", str(out), "--quiet"]) == 0
    assert "## Curvature" not in (out / "report.md").read_text()
    with pytest.raises(SystemExit):
        cli.main(["curvature", "--out", str(out), "--slice-grid", "1", "--quiet"])


def test_certify_stage_joins_a_finished_study(tmp_path, monkeypatch):
    """The certify stage: the first pairs of each path file refined and certified, a
    status per pair, its report section and claims; its setting stays out of the
    hash, so a finished study takes it later and nothing else runs again; the
    convergence section and figure take its barriers as their reference."""
    from losstopo import convergence
    from losstopo.saddles import STATUSES

    monkeypatch.setattr(convergence, "STEPS", (1, 2, 4))
    out = tmp_path / "s"
    args = list(TINY)
    args[args.index("--converge-pairs") + 1] = "1"
    assert cli.main(["reproduce", "--out", str(out)] + args) == 0
    m0 = json.loads((out / "manifest.json").read_text())
    assert "certify" not in m0["stages"]
    assert cli.main(["paths", "--out", str(out), "--certify-pairs", "1", "--quiet"]) == 0
    m1 = json.loads((out / "manifest.json").read_text())
    assert m1["config_hash"] == m0["config_hash"]
    assert {k: m1["stages"][k] for k in ("train", "embed", "paths")} == {
        k: m0["stages"][k] for k in ("train", "embed", "paths")}
    cert = m1["results"]["certified"]
    assert set(cert) == {"SGD-train@train", "SGD-test@train", "SGD-test@test",
                         "LBFGS-train@train", "LBFGS-test@train", "LBFGS-test@test"}
    for key, v in cert.items():
        name, lname = key.split("@")
        d = np.load(out / f"certified_{name}_{lname}.npz")
        plain = np.load(out / f"paths_{name}_{lname}.npz")
        assert d["pairs"].tolist() == plain["pairs"][:1].tolist()  # the same pair
        assert sum(v["counts"].values()) == v["pairs"] == 1
        status = str(d["cert_status"][0])
        assert status in STATUSES and v["counts"][status] == 1
        if status == "bound only":
            assert d["cert_reason"][0]
        # refined from the straight line: never above it
        assert d["cert_barrier"][0] <= d["straight_barrier"][0] + 1e-6
        assert v["median_paper"] == pytest.approx(float(plain["barrier"][0]))
    assert cli.main(["plot", "--out", str(out), "--quiet"]) == 0
    report = (out / "report.md").read_text()
    assert "## Certified barriers" in report
    assert "on refined paths (train sets, training landscape" in report
    assert "**not tested**: SGD barriers are lower than L-BFGS barriers on refined" \
        not in report
    conv = report[report.index("## Path convergence"):]
    assert "refined (certify stage)" in conv and "the fixed budgets are bounds" in conv
    # a new study whose certify stage covers the convergence pairs makes no minimax run
    calls = []
    real = convergence.path_convergence
    monkeypatch.setattr(convergence, "path_convergence",
                        lambda *a, **k: calls.append(k["reference"]) or real(*a, **k))
    out2 = tmp_path / "s2"
    args[args.index("--certify-pairs") + 1] = "1"
    assert cli.main(["reproduce", "--out", str(out2)] + args) == 0
    assert calls and not any(calls)
    m2 = json.loads((out2 / "manifest.json").read_text())
    assert all(np.isnan(v["reference"]) for v in m2["results"]["convergence"].values())
    conv = (out2 / "report.md").read_text().split("## Path convergence")[1]
    assert "minimax reference" not in conv.split("##")[0]
    assert "refined (certify stage)" in conv


def test_map_stage_draws_the_network_of_minima(tmp_path):
    """The map stage: the first solutions of both training sets as one network of
    minima (raw and aligned), its files bound to the study, its figure and section;
    asking for a bigger map runs that stage again and nothing else."""
    from losstopo.topography import MinimaNetwork

    out = tmp_path / "s"
    tiny = TINY.copy()
    tiny[tiny.index("--map-pairs") + 1] = "6"
    assert cli.main(["reproduce", "--out", str(out)] + tiny) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert "map" in m["stages"]
    for view in ("raw", "aligned"):
        net = MinimaNetwork.load(out / f"map_{view}.npz")
        assert net.n == 4 and sorted(set(net.labels)) == ["LBFGS-train", "SGD-train"]
        assert 3 <= len(net.edges) <= 6 and np.isfinite(net.join_levels()).all()
        r = m["results"]["map"][view]
        assert r["minima_per_set"] == 2 and r["history"][0]["edges"] == 3
        assert f"map_{view}.npz" in m["bindings"] and f"map_{view}_pass0.npz" in m["bindings"]
        # the join levels the report states are the network's own
        for name, s in r["summary"]["sets"].items():
            idx = np.flatnonzero(net.labels == name)
            assert s["join_level"] == pytest.approx(net.join_levels()[np.ix_(idx, idx)].max())
    # the verdicts read the map: one claim per view, on the within-set join levels
    joined = [r for r in m["results"]["claims"] if r["key"] == "map"]
    assert [("raw" in r["claim"], "aligned" in r["claim"]) for r in joined] == [
        (True, False), (False, True)]
    assert all(r["comparison"]["n_pairs"] == [1, 1] for r in joined)
    text = (out / "report.md").read_text()
    assert "## The map of minima (not in the paper)" in text and "Settling (raw)" in text
    assert (out / "figures" / "disconnectivity.png").exists()
    trained = (out / "ensemble_sgd.npz").stat().st_mtime_ns
    assert cli.main(["paths", "--out", str(out), "--map-pairs", "8", "--quiet"]) == 0
    assert (out / "ensemble_sgd.npz").stat().st_mtime_ns == trained
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["map_pairs"] == 8
    assert len(MinimaNetwork.load(out / "map_raw.npz").edges) >= 4
