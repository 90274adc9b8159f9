"""The settings table: every preset's configuration hashes as it did before the table
existed (hashes recorded from the code that wrote PRESETS by hand), and the tables the
study and the CLI use are derived from it."""

import pytest

from losstopo import study
from losstopo.cli import build_parser
from losstopo.study import settings

# config_hash of make_config(network, preset, data=...) before the settings table.
HASHES = {
    ("fcp", "quick", "synthetic"): "0b8f6319eddb3879", ("fcp", "quick", "mnist"): "8f245705fd1480a9",
    ("fcp", "medium", "synthetic"): "2dffaf668f25be29", ("fcp", "medium", "mnist"): "5a6be3e50897f227",
    ("fcp", "paper", "synthetic"): "bc76ca11aab1f643", ("fcp", "paper", "mnist"): "85d51fdce5668cba",
    ("autoencoder", "quick", "synthetic"): "57f1842ff183456e",
    ("autoencoder", "quick", "mnist"): "7ffd5734140fdbd9",
    ("autoencoder", "medium", "synthetic"): "e49e90e6f60a607e",
    ("autoencoder", "medium", "mnist"): "2df7b97ab8e7868f",
    ("autoencoder", "paper", "synthetic"): "ab14368c587b6ee3",
    ("autoencoder", "paper", "mnist"): "ec4ffc111dba371d",
    ("lenet", "quick", "synthetic"): "dc8ed5dc6547581c", ("lenet", "quick", "mnist"): "131fddc8fcb8ffb3",
    ("lenet", "medium", "synthetic"): "9a470587c68b335a", ("lenet", "medium", "mnist"): "569df847ae6904aa",
    ("lenet", "paper", "synthetic"): "e10603420845baf9", ("lenet", "paper", "mnist"): "4e3b0bb80b4397fe",
    ("lstm", "quick", "synthetic"): "cb6452aa9f9e87a9", ("lstm", "quick", "mnist"): "5d938e98ba0764a6",
    ("lstm", "medium", "synthetic"): "65726426c5aac6bd", ("lstm", "medium", "mnist"): "eb6aa5aa2f4737b2",
    ("lstm", "paper", "synthetic"): "955a290793e733d8", ("lstm", "paper", "mnist"): "0d812ed2413c8275",
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
    h = study.study_hash(cfg)
    for name in settings.STAGE_SETTINGS:
        assert study.study_hash(dict(cfg, **{name: 7})) == h
    assert study.study_hash(dict(cfg, pairs=cfg["pairs"] + 1)) != h


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
