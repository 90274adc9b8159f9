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
