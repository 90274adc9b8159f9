"""A study written by an earlier release resumes under this code: no stage runs again,
its files keep their bytes, and the report it renders again is byte-identical."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from fixture_report import bound_part

from losstopo import cli
from losstopo.study import Study

FIXTURE = Path(__file__).parent / "fixtures" / "study"
# The flags the fixture was made with (fixtures/README.md).
FLAGS = ["--data", "synthetic", "--n-train", "200", "--n-test", "100", "--runs", "2",
         "--keep", "2", "--epochs", "2", "--iters", "3", "--pairs", "1", "--path-steps", "2",
         "--converge-pairs", "1", "--align-pairs", "1", "--curvature-solutions", "2",
         "--slice-grid", "4", "--quiet"]


def _digests(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*.npz"))}


@pytest.fixture
def study(tmp_path):
    out = tmp_path / "study"
    shutil.copytree(FIXTURE, out)
    return out


def _stages(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())["stages"]


def test_the_fixture_resumes_with_nothing_redone(study):
    before, stages = _digests(study), _stages(study)
    with Study(study, quiet=True) as s:  # the configuration from its manifest
        s.run()
    after = _stages(study)
    # Every computing stage kept its time of finishing; only the verdicts, the
    # figures and the report are made again (they always are).
    again = ("verdicts", "plot")
    assert {k: v for k, v in after.items() if k not in again} == {
        k: v for k, v in stages.items() if k not in again}
    assert _digests(study) == before
    assert bound_part((study / "report.md").read_text()) == bound_part(
        (FIXTURE / "report.md").read_text())
    assert (study / "figures" / "fig2_loss_curves.png").exists()


def test_the_fixture_resumes_from_the_command_line(study):
    """``reproduce`` with the flags that made it: the same configuration hash, so the
    study resumes instead of being refused."""
    before = _digests(study)
    assert cli.main(["reproduce", "--out", str(study)] + FLAGS) == 0
    assert _digests(study) == before
    assert bound_part((study / "report.md").read_text()) == bound_part(
        (FIXTURE / "report.md").read_text())
