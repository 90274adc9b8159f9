"""Adding a stage is one module and one registry line: a toy stage registered here is
run by the runner in its place, offered by the CLI with its own setting, projected by
the estimate, listed among the study's files and given its section in the report."""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from fixture_report import bound_part

from losstopo import cli
from losstopo.study import Study, estimate, make_config, stages, study_files
from losstopo.study.files import StudyFile
from losstopo.study.results import Results
from losstopo.study.settings import PRESET_NAMES, Setting
from losstopo.study.stages.base import Stage

FIXTURE = Path(__file__).parent / "fixtures" / "study"


class CensusFile(StudyFile):
    name, command = "census.npz", "census"


@dataclass
class CensusResults(Results):
    census: Optional[dict] = None


def census_section(config, results):
    c = results.get("census")
    if not c:
        return []
    return ["## Census (a toy stage)", "",
            " ".join(f"{k}: {v}" for k, v in sorted(c.items())), ""]


class CensusStage(Stage):
    """Counts each set's weights by magnitude in ``census_bins`` bins."""

    name = "census"
    command_help = "a toy stage: the sets' weights by magnitude"
    requires = ("train",)
    asked_by = "census_bins"
    settings = (Setting("census_bins", "opt_int", {p: None for p in PRESET_NAMES},
                        minimum=1, flag="census-bins", stage="census", later=None,
                        help="bins of the weights' census (0 or none: no census)"),)
    results = CensusResults
    report_sections = ((65, census_section),)
    runs = 0

    def produces(self):
        return [CensusFile.name]

    def run(self, study):
        CensusStage.runs += 1
        sets = study.sets()
        bins = study.config["census_bins"]
        counts = {name.replace("-", "_"): np.histogram(np.abs(v), bins)[0]
                  for name, v in sets.items()}
        CensusFile().write(study.folder, counts)
        return CensusResults(census={k: int(v[0]) for k, v in counts.items()})

    def estimate(self, config, cal, schedule):
        return [("census", "weights' census", 1.5 if config.get("census_bins") else 0.0)]


@pytest.fixture
def census():
    stage = CensusStage()
    CensusStage.runs = 0
    stages.register(stage, before="plot")
    try:
        yield stage
    finally:
        stages.unregister("census")


def test_a_registered_stage_is_picked_up_everywhere(tmp_path, census):
    # the runner's order and the study's files
    assert stages.stage_names() == ("train", "embed", "paths", "converge", "align",
                                    "certify", "map", "curvature", "census", "verdicts",
                                    "plot")
    assert "census.npz" in study_files()
    # the CLI: a command of its own and its setting's flag
    parser = cli.build_parser()
    args = parser.parse_args(["census", "--out", "x", "--census-bins", "3"])
    assert args.census_bins == 3
    with pytest.raises(SystemExit):  # it belongs to the census, not to configuring
        parser.parse_args(["census", "--out", "x", "--runs", "3"])
    # an old study (the fixture, written before the stage existed) takes it later
    out = tmp_path / "study"
    shutil.copytree(FIXTURE, out)
    before = bound_part((FIXTURE / "report.md").read_text())
    assert cli.main(["reproduce", "--out", str(out), "--quiet"] + _fixture_flags()) == 0
    assert CensusStage.runs == 0  # not asked for: the old study's report is unchanged
    assert bound_part((out / "report.md").read_text()) == before
    assert cli.main(["census", "--out", str(out), "--census-bins", "4", "--quiet"]) == 0
    assert CensusStage.runs == 1
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["census_bins"] == 4 and "census" in m["stages"]
    assert "census.npz" in m["files"] and set(np.load(out / "census.npz")) == {
        "SGD_train", "SGD_test", "LBFGS_train", "LBFGS_test", "seal"}
    assert m["bindings"]["census.npz"]["role"] == "census.npz"  # bound like any other
    # the report: its section in its rank's place (after kernel PCA's, before the toy's)
    assert cli.main(["plot", "--out", str(out), "--quiet"]) == 0
    report = (out / "report.md").read_text()
    section = "\n".join(census_section(m["config"], m["results"]))
    assert "## Census (a toy stage)" in report
    assert report.index("## Kernel PCA against the RBF bandwidth") < report.index(
        "## Census") < report.index("## Fig. 3")
    assert bound_part(report.replace(section + "\n", "")) == before
    # resumed: done already, not run again; a setting kept out of the hash
    assert cli.main(["reproduce", "--out", str(out), "--quiet"] + _fixture_flags()) == 0
    assert CensusStage.runs == 1
    with Study(out, quiet=True) as s:
        assert s.done("census")
    # the estimate: its row and its seconds in the total
    cal = dict(sgd_epoch_per_run=2.0, lbfgs_iter_per_run=0.5, path_step=1.0,
               path_measure=10.0, n_train=1000, n_test=250, calibration_runs=4)
    c = make_config(data="synthetic", runs=4, keep=3, pairs=2, census_bins=5)
    proj = estimate.project(c, cal)
    assert proj["census"] == 1.5
    assert proj["total"] == pytest.approx(sum(v for k, v in proj.items() if k != "total"))
    assert "| weights' census |" in estimate.report(c, cal)


def test_unregistered_the_stage_leaves_no_trace(census):
    stages.unregister("census")
    try:
        assert "census" not in stages.stage_names()
        assert "census_bins" not in make_config(data="synthetic")
        assert "census" not in cli.build_parser().format_help()
    finally:
        stages.register(census, before="plot")


def test_a_stage_must_declare_its_settings_properly():
    bad = CensusStage()
    bad.name = "bad"
    bad.settings = (Setting("bad_x", "int", {p: 1 for p in PRESET_NAMES}),)  # no stage
    with pytest.raises(ValueError, match="bad_x"):
        stages.register(bad)
    assert "bad" not in stages.stage_names()
    with pytest.raises(ValueError, match="exists already"):
        stages.register(stages.get("embed"))


def _fixture_flags():
    from test_study_fixture import FLAGS

    return [f for f in FLAGS if f != "--quiet"]


def test_a_finished_study_takes_new_pair_counts_for_its_later_stages(tmp_path):
    """converge_pairs and align_pairs belong to their stages: a finished study takes a
    new value (that stage alone runs again, its old files gone) and one given by no
    flag keeps the study's value, whatever the preset says now."""
    import json

    from test_study_fixture import FIXTURE, FLAGS

    out = tmp_path / "study"
    shutil.copytree(FIXTURE, out)
    aligned = out / "paths_SGD-train_train_aligned.npz"
    trained = (out / "sets.npz").read_bytes()
    assert cli.main(["paths", "--out", str(out), "--align-pairs", "0", "--quiet"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert "align" not in m["stages"] and "alignment" not in m["results"]
    assert not aligned.exists() and m["config"]["align_pairs"] == 0
    assert cli.main(["plot", "--out", str(out), "--quiet"]) == 0
    assert "## Permutation alignment" not in (out / "report.md").read_text()
    # the same study under reproduce's flags without --align-pairs: the study's 0 holds
    flags = [f for i, f in enumerate(FLAGS) if f != "--align-pairs"
             and FLAGS[i - 1] != "--align-pairs"]
    assert cli.main(["reproduce", "--out", str(out)] + flags) == 0
    assert not aligned.exists()
    # back to one aligned pair: the alignment is found again, bit for bit
    assert cli.main(["reproduce", "--out", str(out), "--align-pairs", "1"] + flags) == 0
    assert aligned.exists()
    assert bound_part((out / "report.md").read_text()) == bound_part(
        (FIXTURE / "report.md").read_text())
    assert (out / "sets.npz").read_bytes() == trained  # nothing else ran again
    m = json.loads((out / "manifest.json").read_text())
    fixture = json.loads((FIXTURE / "manifest.json").read_text())
    assert m["config_hash"] == fixture["config_hash"]
    assert m["stages"]["train"] == fixture["stages"]["train"]
