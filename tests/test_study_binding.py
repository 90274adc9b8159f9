"""Every study file is bound to its study: the manifest records each file's role, the
study's key and the sha256 of its bytes, and the files the study writes itself are
sealed with the same. A file edited, truncated, swapped with another of the study's or
brought from another study is refused by name (one line, `losstopo: error:`), never
used."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from losstopo import cli
from losstopo._io import atomic_savez, load_sealed
from losstopo.study import Study, StudyError
from losstopo.study.files import (CurvatureFile, EmbeddingFile, EnsembleFile, PathsFile,
                                  SetsFile)
from losstopo.study.layout import METHODS, SETS, path_files

FIXTURE = Path(__file__).parent / "fixtures" / "study"
NPZ = sorted(p.name for p in FIXTURE.glob("*.npz"))


def bound_copy(dst: Path) -> Path:
    """The fixture study copied and opened once (which binds its files as found)."""
    shutil.copytree(FIXTURE, dst)
    with Study(dst, quiet=True):
        pass
    return dst


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    return bound_copy(tmp_path_factory.mktemp("bound") / "study")


@pytest.fixture
def study(original, tmp_path):
    out = tmp_path / "study"
    shutil.copytree(original, out)
    return out


def read_all(out: Path) -> None:
    """Reads every study file as the stages do."""
    with Study(out, quiet=True) as s:
        f = s.folder
        sets = s.sets()
        for m in METHODS:
            EnsembleFile(m).read(f)
        for name, lname, _ in path_files():
            PathsFile(name, lname).read(f)
        for name in SETS:
            PathsFile(name, aligned=True).read(f)
        EmbeddingFile().read(f, sets)
        EmbeddingFile(aligned=True).read(f, sets)
        CurvatureFile().read(f)
        f.verify("convergence.npz", "paths")


def refused(out: Path, capsys, name: str) -> str:
    """`losstopo plot` on ``out`` stops with one line naming ``name``."""
    assert cli.main(["plot", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("losstopo: error: ") and "Traceback" not in err, err
    assert name in err and err.count("\n") == 1, err
    return err


def test_the_bound_study_reads_and_plots(study, capsys):
    m = json.loads((study / "manifest.json").read_text())
    assert set(NPZ) <= set(m["bindings"])
    read_all(study)
    assert cli.main(["plot", "--out", str(study), "--quiet"]) == 0
    m = json.loads((study / "manifest.json").read_text())
    for fig in ("figures/fig2_loss_curves.png", "report.md"):  # outputs are recorded too
        assert m["bindings"][fig]["sha256"]


def test_swapped_ensembles_are_refused(study, capsys):
    a, b = study / "ensemble_sgd.npz", study / "ensemble_lbfgs.npz"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    refused(study, capsys, "ensemble_sgd.npz")


def test_swapped_paths_files_are_refused(study, capsys):
    a, b = study / "paths_SGD-train_train.npz", study / "paths_LBFGS-train_train.npz"
    da = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(da)
    err = refused(study, capsys, "paths_SGD-train_train.npz")
    assert "not the file this study wrote" in err


@pytest.mark.parametrize("how", ["seal kept", "sealed again"])
@pytest.mark.parametrize("edit", ["barrier 42", "done with NaN"])
def test_edited_paths_file_is_refused(study, capsys, how, edit):
    p = study / "paths_SGD-test_test.npz"
    d = np.load(p)
    arrays = (dict(barrier=np.full_like(d["barrier"], 42.0)) if edit == "barrier 42" else
              dict(barrier=np.full_like(d["barrier"], np.nan), done=np.ones_like(d["done"])))
    d = dict(d)
    if how == "seal kept":  # the fixture's files predate seals: its old key kept
        np.savez(p, **dict(d, **arrays))
    else:  # sealed as barrier_matrix seals its files, with the file's own key
        meta = json.loads(str(d.pop("meta")))
        atomic_savez(p, dict(d, **arrays), seal=dict(kind="barrier_matrix", **meta))
        assert load_sealed(p, "barrier_matrix")[1]["config_hash"] == meta["config_hash"]
    refused(study, capsys, "paths_SGD-test_test.npz")
    with pytest.raises(StudyError, match="paths_SGD-test_test.npz"):
        read_all(study)


def test_a_file_of_another_study_is_refused(study, tmp_path, capsys):
    """sets.npz and embedding.npz written by another study (sealed for its key)."""
    other = bound_copy(tmp_path / "other")
    with Study(other, quiet=True) as s:
        s.folder.study = "0123456789abcdef"  # as another configuration's study would
        sets = s.sets()
        SetsFile().write(s.folder, {k: v[::-1] for k, v in sets.items()})
        emb = EmbeddingFile().read(s.folder, sets)
        EmbeddingFile().write(s.folder, {k: v * 2 for k, v in emb.items()})
    for name in ("sets.npz", "embedding.npz"):
        out = tmp_path / name
        shutil.copytree(study, out)
        shutil.copy(other / name, out / name)
        err = refused(out, capsys, name)
        assert "written by another study" in err


def test_edited_curvature_and_truncated_files_are_refused(study, capsys):
    p = study / "curvature.npz"
    d = dict(np.load(p))
    key = next(k for k in d if k.endswith("__top"))
    d[key] = d[key] * 10
    np.savez(p, **d)
    refused(study, capsys, "curvature.npz")
    shutil.copy(FIXTURE / "curvature.npz", p)
    s = study / "sets.npz"
    s.write_bytes(s.read_bytes()[:100])
    refused(study, capsys, "sets.npz")


def test_an_unrecorded_file_is_refused(study, capsys):
    """A file the manifest has no record of (brought in, or left by a write that did not
    finish) is not read as the study's."""
    m = json.loads((study / "manifest.json").read_text())
    del m["bindings"]["ensemble_lbfgs.npz"]
    (study / "manifest.json").write_text(json.dumps(m))
    err = refused(study, capsys, "ensemble_lbfgs.npz")
    assert "not recorded" in err


MUTATIONS = ("truncate", "flip a byte", "swap", "append")


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(NPZ), mutation=st.sampled_from(MUTATIONS),
       where=st.floats(0, 1), other=st.sampled_from(NPZ))
def test_any_change_to_any_file_is_refused_or_harmless(original, tmp_path_factory, name,
                                                       mutation, where, other):
    out = tmp_path_factory.mktemp("m") / "study"
    shutil.copytree(original, out)
    p = out / name
    data = p.read_bytes()
    if mutation == "truncate":
        new = data[:int(where * (len(data) - 1))]
    elif mutation == "flip a byte":
        i = int(where * (len(data) - 1))
        new = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
    elif mutation == "append":
        new = data + b"\0"
    else:
        new = (out / other).read_bytes()
    p.write_bytes(new)
    if new == data:  # nothing changed (a file swapped with itself): read as before
        read_all(out)
        return
    with pytest.raises(StudyError, match=name.replace(".", r"\.")):
        read_all(out)
