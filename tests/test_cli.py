"""The command line: help, version, demo, data, the CMake package location."""

import os

import pytest

import losstopo
from losstopo import cli


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and losstopo.__version__ in capsys.readouterr().out
    assert cli.main([]) == 0
    assert "reproduce" in capsys.readouterr().out


def test_demo_on_synthetic_data(capsys):
    assert cli.main(["demo", "--data", "synthetic", "--n", "500", "--points", "3"]) == 0
    out = capsys.readouterr().out
    assert "42200 parameters" in out and "barrier height" in out


def test_bad_numbers_are_refused():
    with pytest.raises(SystemExit):
        cli.main(["demo", "--points", "0"])


def test_cmake_dir_points_at_the_package_config(capsys):
    assert cli.main(["--cmake-dir"]) == 0
    d = capsys.readouterr().out.strip()
    assert os.path.exists(os.path.join(d, "losstopoConfig.cmake"))
    assert os.path.exists(os.path.join(d, "losstopoTargets.cmake"))


def test_progress_bar_in_a_log_prints_plain_lines():
    import io

    from losstopo.progress import Progress

    buf = io.StringIO()
    bar = Progress(5, "work", stream=buf)
    for _ in range(5):
        bar.update(1)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue() and lines[0].startswith("work") and "5/5" in lines[-1]
    assert len(lines) == 2  # the start and the end, no flood
    quiet = io.StringIO()
    Progress(5, "q", enabled=False, stream=quiet).close()
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("stderr", ["closed", "full"])
def test_an_unwritable_stderr_never_stops_the_work(tmp_path, stderr):
    """`losstopo train ... 2>&-` or `2>/dev/full`: the progress bars and the log lose
    their lines, the stage finishes and the exit status is the run's."""
    import json
    import os
    import subprocess
    import sys

    if stderr == "full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    out = tmp_path / "s"
    argv = [sys.executable, "-m", "losstopo", "train", "--out", str(out), "--data", "synthetic",
            "--n-train", "200", "--n-test", "50", "--runs", "2", "--keep", "2", "--epochs", "1",
            "--iters", "2"]
    if stderr == "closed":
        r = subprocess.run(argv, stderr=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           timeout=300, preexec_fn=lambda: os.close(2))
    else:
        with open("/dev/full", "w") as full:
            r = subprocess.run(argv, stderr=full, stdout=subprocess.PIPE, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "train" in json.loads((out / "manifest.json").read_text())["stages"]
    # and a failing run still exits with its status, its message lost
    bad = [sys.executable, "-m", "losstopo", "plot", "--out", str(tmp_path / "none")]
    with open("/dev/full", "w") as full:
        assert subprocess.run(bad, stderr=full, timeout=120).returncode == 2


def test_late_failures_are_caught_before_any_work(tmp_path, capsys):
    out = tmp_path / "s"
    # a device this build cannot use: refused before the manifest is written
    assert cli.main(["reproduce", "--out", str(out), "--device", "gpu", "--data", "synthetic",
                     "--quiet"]) == 2
    assert "--device gpu" in capsys.readouterr().err and not (out / "manifest.json").exists()
    # a stage command takes the study's configuration; --network there is refused clearly
    assert cli.main(["embed", "--out", str(out), "--network", "fcp", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("losstopo: error: --network") and "Traceback" not in err
    for argv, needle in ((["reproduce", "--out", ""], "--out"),
                         (["demo", "--points", "1"], "--points must be at least 2")):
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert needle in capsys.readouterr().err


def test_impossible_sizes_are_refused_before_any_file(tmp_path, capsys):
    out = tmp_path / "s"
    for argv, needle in ((["--data", "synthetic", "--n-train", "10000000000"], "GiB"),
                         (["--data", "mnist", "--n-train", "60000"], "only 50000"),
                         (["--data", "synthetic", "--slice-grid", "1000000"], "GiB")):
        assert cli.main(["reproduce", "--out", str(out), "--quiet"] + argv) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, err
        assert not (out / "manifest.json").exists()


def test_a_demo_beyond_memory_is_refused(capsys):
    assert cli.main(["demo", "--data", "synthetic", "--n", "300000000000", "--quiet"]) == 2
    assert "GiB" in capsys.readouterr().err
