"""The study's folder: --force removes only the study's files, no write leaves the
folder or follows a link, one run at a time, a resumed report reads like an
uninterrupted one, and expected failures are one-line errors (no traceback)."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import losstopo.study as study_mod
import losstopo.study.stages.train as train_stage
from losstopo import cli
from losstopo._io import Folder, UnsafePathError
from losstopo.study import Study, StudyError, make_config, study_files
from losstopo.study.files import EmbeddingFile

from test_study import TINY

CFG = dict(data="synthetic", runs=3, keep=2, n_train=300, n_test=100, sgd_epochs=2,
           lbfgs_iters=3, pairs=1, path_steps=2)


def cfg(**kw):
    return make_config(**dict(CFG, **kw))


def expect_cli_error(capsys, argv, *needles):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("losstopo: error: "), err
    for n in needles:
        assert n in err, (n, err)
    return err


# ------------------------------------------------------------------ 1. --force
def test_force_removes_only_the_files_the_manifest_lists(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    mine = {"notes.txt": "x", "data.npz": "x", "readme.md": "x", "results.json": "x",
            "draft.tmp": "x", "figures/mine.png": "x"}
    with Study(out, cfg(), quiet=True) as s:
        s.folder.write("report.md", "text", "old report")
        s.folder.write("figures/fig2_loss_curves.png", "bytes", b"png")
        assert {"manifest.json", "log.txt", "report.md",
                "figures/fig2_loss_curves.png"} <= set(s.manifest["files"])
    for name, text in mine.items():
        (out / name).write_text(text)
    # A manifest naming files outside the folder or not the study's: never removed.
    m = json.loads((out / "manifest.json").read_text())
    m["files"] += ["../victim.txt", "notes.txt", str(victim)]
    (out / "manifest.json").write_text(json.dumps(m))
    with Study(out, cfg(runs=4), force=True, quiet=True) as s:
        assert s.config["runs"] == 4
    assert victim.read_text() == "keep me"
    for name, text in mine.items():
        assert (out / name).read_text() == text, name
    assert not (out / "report.md").exists()
    assert not (out / "figures" / "fig2_loss_curves.png").exists()
    assert (out / "figures").is_dir()  # it holds a file of the user's


def test_force_removes_the_figures_folder_only_when_it_held_only_ours(tmp_path):
    out = tmp_path / "s"
    with Study(out, cfg(), quiet=True) as s:
        s.folder.write("figures/fig3_toy_paths.pdf", "bytes", b"pdf")
    with Study(out, cfg(runs=4), force=True, quiet=True):
        pass
    assert not (out / "figures").exists()
    assert sorted(os.listdir(out)) == [".lock", "log.txt", "manifest.json"]


# ------------------------------------------------- 2. no write leaves the folder
def test_folder_refuses_escapes_and_links(tmp_path):
    f = Folder(tmp_path / "f")
    outside = tmp_path / "outside"
    outside.mkdir()
    for bad in ("../x.txt", "/etc/x", "a/../../x", "", "./x"):
        with pytest.raises(UnsafePathError):
            f.write_text(bad, "x")
    os.symlink(outside, tmp_path / "f" / "figures")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        f.write_bytes("figures/a.png", b"x")
    os.symlink(outside / "t.txt", tmp_path / "f" / "t.txt")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        f.open_append("t.txt")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        f.write_text("t.txt", "x")
    assert os.listdir(outside) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(UnsafePathError, match="not a folder"):
        Folder(tmp_path / "file")


@pytest.mark.parametrize("name", ["report.md", "log.txt", "manifest.json",
                                  "checkpoint_sgd.npz", "figures"])
def test_study_refuses_links_in_its_folder(tmp_path, name):
    out = tmp_path / "s"
    out.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside if name == "figures" else outside / "target"
    if name == "manifest.json":
        # a link to a valid manifest elsewhere: not followed, not read
        with Study(tmp_path / "other", cfg(), quiet=True):
            pass
        target = tmp_path / "other" / "manifest.json"
    elif name != "figures":
        target.write_text("theirs")
    os.symlink(target, out / name)
    before = target.read_text() if target.is_file() else sorted(os.listdir(target))
    with pytest.raises(StudyError, match="symbolic link"):
        with Study(out, cfg(), quiet=True) as s:
            s.report()
            s.folder.write("figures/fig2_loss_curves.png", "bytes", b"x")
            s.path("checkpoint_sgd.npz")
    after = target.read_text() if target.is_file() else sorted(os.listdir(target))
    assert after == before
    assert os.path.islink(out / name)


def test_embedding_keys_are_checked_and_never_make_file_names(tmp_path):
    out = tmp_path / "s"
    rng = np.random.default_rng(0)
    with Study(out, cfg(), quiet=True) as s:
        s.folder.write("sets.npz", "npz", {k: rng.normal(size=(2, 5)) for k in
                                     ("SGD_train", "SGD_test", "LBFGS_train", "LBFGS_test")})
        sets = s.sets()
        good = {study_mod.embedding_key(a, b, k): rng.normal(size=(4, 2))
                for a, b in study_mod.COMBOS for k in study_mod.KERNELS}
        s.folder.write("embedding.npz", "npz", good)
        got = EmbeddingFile().read(s.folder, sets)
        assert {study_mod.embedding_key(*k) for k in got} == set(good)
        evil = dict(good)
        evil["../../../evil__SGD_train__rbf"] = rng.normal(size=(4, 2))
        s.folder.write("embedding.npz", "npz", evil)
        with pytest.raises(StudyError, match="embedding.npz.*delete it"):
            EmbeddingFile().read(s.folder, sets)
        with pytest.raises(ValueError, match="not one of the study's"):
            s.folder.own("../../evil.png")  # every name the study writes is one of its own
    assert all(".." not in n and not os.path.isabs(n) for n in study_files())


# ------------------------------------------------------------------- 3. a lock
def test_a_second_study_on_the_folder_stops_at_once(tmp_path, capsys):
    out = tmp_path / "s"
    first = Study(out, cfg(), quiet=True)
    try:
        with pytest.raises(StudyError, match=f"in use by another losstopo run.*pid {os.getpid()}"):
            Study(out, cfg(), quiet=True)
        expect_cli_error(capsys, ["train", "--out", str(out)] + TINY, "in use")
    finally:
        first.close()
    with Study(out, quiet=True) as again:  # released by close()
        assert again.config == cfg()


def test_the_lock_goes_with_the_process(tmp_path):
    out = tmp_path / "s"
    code = ("import os, sys; from losstopo.study import Study, make_config; "
            f"s = Study({str(out)!r}, make_config(**{CFG!r}), quiet=True); "
            "print('locked', flush=True); sys.stdin.read()")
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as p:
        try:
            assert p.stdout.readline().strip() == "locked"
            with pytest.raises(StudyError, match=f"pid {p.pid}"):
                Study(out, quiet=True)
        finally:
            p.kill()
    with Study(out, quiet=True):
        pass


# ------------------------------------------- 4. a resumed report, byte for byte
def test_resumed_report_is_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(["reproduce", "--out", str(a)] + TINY) == 0
    assert cli.main(["train", "--out", str(b)] + TINY) == 0
    assert cli.main(["embed", "--out", str(b), "--quiet"]) == 0
    assert cli.main(["reproduce", "--out", str(b)] + TINY) == 0
    assert (a / "report.md").read_bytes() == (b / "report.md").read_bytes()
    # Every file the study wrote is listed in its manifest, and only those.
    for out in (a, b):
        m = json.loads((out / "manifest.json").read_text())
        on_disk = {os.path.relpath(os.path.join(d, f), out)
                   for d, _, fs in os.walk(out) for f in fs} - {".lock"}
        assert on_disk == set(m["files"])


# ----------------------------------------------- 5. sizes beyond the data's
def test_more_samples_than_the_data_has_is_an_error(tmp_path, monkeypatch, capsys):
    import losstopo.datasets as ds

    rng = np.random.default_rng(0)
    fake = types.SimpleNamespace(
        train=(rng.random((100, 784), dtype=np.float32), rng.integers(0, 10, 100)),
        test=(rng.random((40, 784), dtype=np.float32), rng.integers(0, 10, 40)))
    monkeypatch.setattr(ds, "mnist", lambda **k: fake)
    with Study(tmp_path / "a", cfg(data="mnist", n_train=101, n_test=10), quiet=True) as s:
        with pytest.raises(StudyError, match="--n-train 101.*only 100"):
            s.data()
    with Study(tmp_path / "b", cfg(data="mnist", n_train=100, n_test=41), quiet=True) as s:
        with pytest.raises(StudyError, match="--n-test 41.*only 40"):
            s.data()
        monkeypatch.setattr(train_stage, "train", lambda *a, **k: pytest.fail("trained"))
        with pytest.raises(StudyError, match="--n-test"):
            s.run(["train"])
    args = ["train", "--out", str(tmp_path / "c"), "--data", "mnist", "--n-train", "500",
            "--quiet"]
    expect_cli_error(capsys, args, "--n-train 500")


# ------------------------------------------------ 6. one-line errors, early
def test_cli_errors_for_bad_folders(tmp_path, capsys, monkeypatch):
    f = tmp_path / "afile"
    f.write_text("x")
    expect_cli_error(capsys, ["train", "--out", str(f)] + TINY, str(f), "not a folder")
    ro = tmp_path / "ro"
    ro.mkdir()
    real_open = os.open

    def read_only(path, flags, *a, **k):  # root ignores chmod; a read-only folder instead
        if str(path).startswith(str(ro)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    expect_cli_error(capsys, ["train", "--out", str(ro)] + TINY, str(ro), "Permission denied")
    monkeypatch.undo()
    if os.geteuid() != 0:
        os.chmod(ro, 0o500)
        try:
            expect_cli_error(capsys, ["train", "--out", str(ro / "sub")] + TINY, "ro")
        finally:
            os.chmod(ro, 0o700)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "s"
    assert cli.main(["train", "--out", str(out)] + TINY) == 0
    return out


def copy_of(trained, tmp_path):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(trained, out)
    return out


def truncate(p):
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def test_cli_errors_for_broken_files(trained, tmp_path, capsys, monkeypatch):
    out = copy_of(trained, tmp_path)
    truncate(out / "sets.npz")
    expect_cli_error(capsys, ["embed", "--out", str(out), "--quiet"], "sets.npz", "delete it")
    expect_cli_error(capsys, ["paths", "--out", str(out), "--quiet"], "sets.npz")
    out = copy_of(trained, tmp_path / "2")
    truncate(out / "ensemble_sgd.npz")
    expect_cli_error(capsys, ["plot", "--out", str(out), "--quiet"], "ensemble_sgd.npz",
                     "delete it")
    assert not (out / "figures").exists()  # checked before the first figure
    # A broken finished population stops the train stage before the other one trains.
    m = json.loads((out / "manifest.json").read_text())
    del m["stages"]["train_lbfgs"], m["stages"]["train"]
    (out / "manifest.json").write_text(json.dumps(m))
    monkeypatch.setattr(train_stage, "train", lambda *a, **k: pytest.fail("trained"))
    expect_cli_error(capsys, ["train", "--out", str(out)] + TINY, "ensemble_sgd.npz")


@pytest.mark.parametrize("edit", [
    lambda m: m.update(config=[1, 2]),
    lambda m: m["config"].update(runs="3"),
    lambda m: m.update(stages="train"),
    lambda m: m.update(files=[1]),
    lambda m: m.pop("config_hash"),
    None,
])
def test_cli_errors_for_a_broken_manifest(trained, tmp_path, capsys, edit):
    out = copy_of(trained, tmp_path)
    p = out / "manifest.json"
    if edit is None:
        truncate(p)
    else:
        m = json.loads(p.read_text())
        edit(m)
        p.write_text(json.dumps(m))
    expect_cli_error(capsys, ["plot", "--out", str(out), "--quiet"], "manifest.json")


def test_a_hard_linked_copy_of_a_study_writes_its_own_lock_and_log(tmp_path):
    """`cp -al study copy`: the copy's .lock and log.txt are hard links to the
    original's; running on the copy must not truncate or append to them."""
    out, copy = tmp_path / "s", tmp_path / "copy"
    with Study(out, cfg(), quiet=True):
        pass
    copy.mkdir()
    for name in os.listdir(out):
        if os.path.isfile(out / name):
            os.link(out / name, copy / name)
    before = {n: (out / n).read_bytes() for n in (".lock", "log.txt")}
    with Study(copy, quiet=True) as s:
        s.log.info("a line in the copy's log")
    for n, data in before.items():
        assert (out / n).read_bytes() == data, n
        assert os.stat(copy / n).st_ino != os.stat(out / n).st_ino
    assert "a line in the copy's log" in (copy / "log.txt").read_text()


def test_a_study_resumes_with_the_thread_count_it_began_with(tmp_path, capsys):
    """The engine's sums round by the thread count: a study resumed on another machine
    (or with another --threads) would silently be a third result."""
    from losstopo._native import arithmetic, engine_threads

    out = tmp_path / "s"
    with Study(out, cfg(), quiet=True) as s:  # no count asked for: the engine's default
        assert s.threads == engine_threads()
    engine = json.loads((out / "manifest.json").read_text())["engine"]
    assert engine == arithmetic() and engine["threads"] == s.threads
    one = tmp_path / "one"
    with Study(one, cfg(), quiet=True, threads=1):
        pass
    with Study(one, quiet=True) as s:  # resumed without --threads: the study's count
        assert s.threads == 1
    with pytest.raises(StudyError, match="resume with --threads 1"):
        Study(one, quiet=True, threads=2)
    expect_cli_error(capsys, ["paths", "--out", str(one), "--threads", "2", "--quiet"],
                     "--threads 1")


def test_a_study_resumes_only_where_the_engine_computes_as_it_did(tmp_path, monkeypatch):
    """The instruction set (and the BLAS kernels) change the rounding too: a study begun
    with one is refused on a machine that computes with another, with the setting that
    selects the recorded one where this machine has it."""
    out = tmp_path / "s"
    with Study(out, cfg(), quiet=True, threads=1):
        pass
    m = json.loads((out / "manifest.json").read_text())
    assert m["engine"]["instruction_set"] in ("scalar", "avx2", "avx512")
    m["engine"]["instruction_set"] = "scalar"  # as if begun on a machine without AVX2
    (out / "manifest.json").write_text(json.dumps(m))
    if m["engine"]["instruction_set"] != arithmetic_here()["instruction_set"]:
        with pytest.raises(StudyError, match="LOSSTOPO_SIMD=scalar"):
            Study(out, quiet=True)
    monkeypatch.setenv("LOSSTOPO_SIMD", "scalar")  # the way out the message names
    with Study(out, quiet=True) as s:
        assert s.threads == 1
    m["engine"]["blas_kernels"] = "NoSuchCore"
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StudyError, match="OPENBLAS_CORETYPE=NoSuchCore"):
        Study(out, quiet=True)


def arithmetic_here():
    from losstopo._native import arithmetic

    return arithmetic()
