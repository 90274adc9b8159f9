"""The settings table: every preset's configuration hashes as it did before the table
existed (hashes recorded from the code that wrote PRESETS by hand), and the tables the
study and the CLI use are derived from it."""

import pytest

from losstopo import study
from losstopo.cli import build_parser
from losstopo.study import settings

# config_hash of make_config(network, preset, data=...) before the settings table; the
# paper preset's since its aligned pairs went from 300 per set to 40 (the stages beyond
# the paper add at most a quarter to its work; a paper study begun with 300 resumes with
# its 300, align_pairs being the align stage's own setting); LeNet's and the LSTM's
# quick preset's since it aligns one pair per set (their alignment came later).
HASHES = {
    ("fcp", "quick", "synthetic"): "0b8f6319eddb3879", ("fcp", "quick", "mnist"): "8f245705fd1480a9",
    ("fcp", "medium", "synthetic"): "2dffaf668f25be29", ("fcp", "medium", "mnist"): "5a6be3e50897f227",
    ("fcp", "paper", "synthetic"): "6552d132efc1ca71", ("fcp", "paper", "mnist"): "402fa1caf65f07fb",
    ("autoencoder", "quick", "synthetic"): "57f1842ff183456e",
    ("autoencoder", "quick", "mnist"): "7ffd5734140fdbd9",
    ("autoencoder", "medium", "synthetic"): "e49e90e6f60a607e",
    ("autoencoder", "medium", "mnist"): "2df7b97ab8e7868f",
    ("autoencoder", "paper", "synthetic"): "7214b15182a378a8",
    ("autoencoder", "paper", "mnist"): "6bf64f8ae2a4ef04",
    ("lenet", "quick", "synthetic"): "c4bcf33c3eca72d3", ("lenet", "quick", "mnist"): "4ed26db928e05af4",
    ("lenet", "medium", "synthetic"): "9a470587c68b335a", ("lenet", "medium", "mnist"): "569df847ae6904aa",
    ("lenet", "paper", "synthetic"): "60715b7ba46b5236", ("lenet", "paper", "mnist"): "31ca3435d1122dc2",
    ("lstm", "quick", "synthetic"): "3c1a7d651082c43e", ("lstm", "quick", "mnist"): "fe3e538c794bdaf4",
    ("lstm", "medium", "synthetic"): "65726426c5aac6bd", ("lstm", "medium", "mnist"): "eb6aa5aa2f4737b2",
    ("lstm", "paper", "synthetic"): "3a5957960e8a46ed", ("lstm", "paper", "mnist"): "0bca26391949b336",
}


@pytest.mark.parametrize("key", sorted(HASHES))
def test_preset_hashes_unchanged(key):
    net, preset, data = key
    assert study.study_hash(study.make_config(net, preset, data=data)) == HASHES[key]


def test_every_setting_is_in_the_table():
    cfg = study.make_config("fcp", "quick")
    assert list(cfg) == [s.name for s in settings.SETTINGS]  # the manifest's key order
    for kind, names in settings.KINDS.items():
        for name in names:
            assert settings.BY_NAME[name].kind == kind


def test_stage_settings_stay_out_of_the_hash():
    cfg = study.make_config("fcp", "quick")
    h, key = study.study_hash(cfg), study.study_key(cfg)
    for name in settings.STAGE_SETTINGS:
        changed = dict(cfg, **{name: 7})
        assert study.study_key(changed) == key  # the same study
        # in the recorded hash only where they were before they became stage settings
        assert (study.study_hash(changed) == h) == (not settings.BY_NAME[name].hashed)
    assert {n for n in settings.STAGE_SETTINGS if settings.BY_NAME[n].hashed} == {
        "converge_pairs", "align_pairs"}
    assert study.study_hash(dict(cfg, pairs=cfg["pairs"] + 1)) != h
    assert study.study_key(dict(cfg, pairs=cfg["pairs"] + 1)) != key


def test_cli_flags_come_from_the_table():
    parser = build_parser()
    reproduce = parser._subparsers._group_actions[0].choices["reproduce"]
    dests = {a.dest: a for a in reproduce._actions}
    for flag, name, help_ in settings.STUDY_FLAGS + settings.STAGE_FLAGS:
        action = dests[flag.replace("-", "_")]
        assert action.option_strings == [f"--{flag}"] and action.help == help_
    assert tuple(dests["network"].choices) == settings.NETWORKS
    assert tuple(dests["preset"].choices) == settings.PRESET_NAMES
    # --epochs sets sgd_epochs: the table's flag, read back by the CLI.
    args = parser.parse_args(["reproduce", "--out", "x", "--epochs", "3", "--iters", "4"])
    from losstopo.cli import study_overrides

    over = study_overrides(args)
    assert over["sgd_epochs"] == 3 and over["lbfgs_iters"] == 4


def test_a_paper_study_begun_with_300_aligned_pairs_resumes_with_them(tmp_path):
    from losstopo.study import Study

    tiny = dict(data="synthetic", runs=3, keep=2, n_train=300, n_test=100)
    old = study.make_config("fcp", "paper", align_pairs=300, **tiny)
    with Study(tmp_path / "s", old, quiet=True) as s:
        begun = s.manifest["config_hash"]
    assert begun == study.study_hash(old)
    with Study(tmp_path / "s", study.make_config("fcp", "paper", **tiny), quiet=True) as s:
        assert s.config["align_pairs"] == 300 and s.manifest["config_hash"] == begun
    with Study(tmp_path / "s", study.make_config("fcp", "paper", **tiny), quiet=True,
               settings=dict(align_pairs=40)) as s:  # asked for: the align stage's anew
        assert s.config["align_pairs"] == 40
        assert s.manifest["config_hash"] == study.study_hash(s.config) != begun
    with pytest.raises(study.StudyError, match="another configuration"):
        Study(tmp_path / "s", study.make_config("fcp", "paper", **dict(tiny, runs=4)),
              quiet=True)


@pytest.mark.parametrize("flag,name", [(f, n) for f, n, _ in settings.STUDY_FLAGS
                                       + settings.STAGE_FLAGS])
def test_cli_bounds_come_from_the_table(flag, name, capsys):
    from losstopo import cli

    low = settings.minimum(name)
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--out", "nowhere", f"--{flag}", str(low - 1)])
    err = capsys.readouterr().err
    assert f"--{flag} must be " in err
    assert ("non-negative" in err) == (low == 0) and ("positive" in err) == (low == 1)
