"""The projected time of a study (losstopo reproduce --estimate)."""

import pytest

from losstopo import cli
from losstopo.study import estimate
from losstopo.study import make_config

CAL = dict(sgd_epoch_per_run=2.0, lbfgs_iter_per_run=0.5, path_step=1.0, path_measure=10.0,
           n_train=1000, n_test=250, calibration_runs=4)


def test_projection_arithmetic():
    c = make_config(data="synthetic", runs=8, keep=5, sgd_epochs=3, lbfgs_iters=10, pairs=8,
                    path_steps=5, converge_pairs=1, align_pairs=5, certify_pairs=0, map_pairs=0)
    one = estimate.project(c, CAL, 1)
    assert one["sgd"] == pytest.approx(8 * 3 * 2.0)
    assert one["lbfgs"] == pytest.approx(8 * 10 * 0.5)
    # 4 training-landscape files at full cost, 2 test-landscape files at a quarter
    pair = 5 * 1.0 + 10.0
    assert one["paths"] == pytest.approx(8 * pair * (4 + 2 * 0.25))
    # convergence (1 pair per set): 2 x 400 full steps and 6 measures
    assert one["converge"] == pytest.approx(4 * 1 * (2 * 400 * 1.0 + 6 * 10.0))
    assert estimate.project(dict(c, converge_pairs=None), CAL, 1)["converge"] == 0
    # alignment (5 pairs per set) on the training landscape
    assert one["align"] == pytest.approx(4 * 5 * pair)
    assert estimate.project(dict(c, align_pairs=0), CAL, 1)["align"] == 0
    assert one["total"] == pytest.approx(one["sgd"] + one["lbfgs"] + one["paths"]
                                         + one["converge"] + one["align"])
    # certified barriers (2 pairs per file): 100 curve iterations at 1.5 path steps
    # each and two measurements per pair, the test landscape at a quarter; the
    # convergence stage then makes no minimax run (the certify stage covers its pair)
    cert = estimate.project(dict(c, certify_pairs=2), CAL, 1)
    assert cert["certify"] == pytest.approx(2 * (4 * (150 + 20) + 2 * 0.25 * (150 + 20)))
    assert cert["converge"] == pytest.approx(4 * 1 * (400 * 1.0 + 6 * 10.0))
    assert one["certify"] == 0
    # the map: 6 pairs per view, raw and aligned (an MLP), one after another
    assert estimate.project(dict(c, map_pairs=6), CAL, 2)["map"] == pytest.approx(2 * 6 * pair)
    # its own path settings: 20 steps on 250 of the 1000 samples, measured on all
    own = estimate.project(dict(c, map_pairs=6, map_batch=250, map_steps=20), CAL, 2)["map"]
    assert own == pytest.approx(2 * 6 * (20 * 1.0 * 250 / 1000 + 10.0))
    # with a step timed on 100 samples too: 0.1 s fixed and 0.9 ms per sample
    timed = dict(CAL, path_step_small=0.19, path_step_small_samples=100)
    own = estimate.project(dict(c, map_pairs=6, map_batch=250, map_steps=20), timed, 2)["map"]
    assert own == pytest.approx(2 * 6 * (20 * (0.1 + 0.0009 * 250) + 10.0))
    # the test landscape's 250 samples: a step of 0.1 + 0.225 s, a measure of 2.5 s
    assert estimate.project(c, timed, 1)["paths"] == pytest.approx(
        8 * (4 * pair + 2 * (5 * (0.1 + 0.0009 * 250) + 2.5)))
    assert one["map"] == 0
    two = estimate.project(c, CAL, 2)  # 2 chunks of 4 pairs per file, in one round
    assert two["paths"] == pytest.approx(one["paths"] / 2)
    assert two["sgd"] == one["sgd"]  # one training group: no spread
    grouped = estimate.project(dict(c, train_group=2), CAL, 4)
    assert grouped["sgd"] == pytest.approx(one["sgd"] / 4)
    assert grouped["lbfgs"] == pytest.approx(one["lbfgs"] / 4)
    # a smaller last chunk costs less; pairs beyond those of `keep` solutions are not run
    assert estimate.project(dict(c, pairs=5), CAL, 1)["paths"] == pytest.approx(
        5 * pair * (4 + 2 * 0.25))
    assert estimate.project(dict(c, pairs=99), CAL, 1)["paths"] == pytest.approx(
        10 * pair * (4 + 2 * 0.25))
    # stochastic steps: the step's cost follows the samples drawn (all 250 test samples
    # are fewer than 500), the measurement all samples
    sto = estimate.project(dict(c, path_batch=500), CAL, 1)["paths"]
    assert sto == pytest.approx(8 * ((5 * 1.0 + 10.0) * 4 + 2 * (5 * 0.5 + 10.0 * 0.25)))
    # curvature: per set, 20 Lanczos steps at every solution and 32 probes each; slices
    assert one["curvature"] == 0  # not calibrated
    cal = dict(CAL, hvp_per_point=0.1, hvp_shared=0.01, slice_point=0.001)
    cur = estimate.project(dict(c, curvature_solutions=3, slice_grid=10), cal, 1)
    assert cur["curvature"] == pytest.approx(4 * 3 * (20 * 0.1 + 32 * 0.01) + 3 * 100 * 0.001)
    assert estimate.project(dict(c, curvature_solutions=0), cal, 1)["curvature"] == 0


def test_estimate_from_the_command_line(capsys, tmp_path):
    out = tmp_path / "never"
    args = ["reproduce", "--out", str(out), "--estimate", "--quiet", "--data", "synthetic",
            "--n-train", "400", "--n-test", "100", "--runs", "3", "--keep", "2", "--pairs",
            "2", "--path-steps", "3"]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "| total |" in text and "64 workers" in text and "path step" in text
    assert "| path convergence |" in text and "| curvature |" in text
    assert not out.exists()  # nothing written


def test_the_maps_minima_follow_its_setting_within_its_budget():
    from losstopo.study.stages.map import minima_per_set, pass_size

    c = dict(keep=48, map_pairs=128, map_minima=48)
    assert minima_per_set(c) == 48 and pass_size(c) == 9  # a tree of 95, 33 connect
    assert minima_per_set(dict(c, map_pairs=20)) == 10  # no more than its tree spans
    assert minima_per_set(dict(c, keep=5)) == 5
    assert minima_per_set(dict(c, map_minima=None, map_pairs=24)) == 6  # N/4
    assert minima_per_set(dict(c, map_minima=None, map_pairs=6)) == 2
    medium = make_config(preset="medium")
    assert minima_per_set(medium) == medium["keep"] == 48
