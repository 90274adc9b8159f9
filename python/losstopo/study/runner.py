"""A study in its folder: the configuration agreed with the manifest (a changed one
refused unless --force; a stage whose own settings changed made to run again), and the
runner that takes the stages in their order, skips what is finished or not asked for,
and records each stage's results."""

from __future__ import annotations

import os
import time
from typing import Optional

from .. import __version__
from .._io import UnsafePathError
from . import stages as registry
from .._native import arithmetic, arithmetic_mismatch
from .config import (StudyError, check_config, check_sizes, diff, network,
                     study_data, study_hash, study_key, study_landscapes, why)
from .files import REPORT, SetsFile, figure_names
from .folder import StudyFolder
from .layout import FIGURE_FORMATS
from .report import render_report
from .settings import LATER, STAGE_SETTINGS


class Study:
    """One study in one output folder.

    Parameters
    ----------
    out : folder for every file of the study (created).
    config : from :func:`make_config`; None reads it from ``out``'s manifest.
    force : start afresh when the folder holds a study of another configuration (the
        files the old study wrote, as its manifest lists them, are removed; nothing else).
    quiet : no progress bars or log lines on stderr (the log file is kept).
    client : a ``dask.distributed.Client``, optional: the training groups and the path
        pairs run as tasks on its cluster (the numbers are those of one process; only
        this process writes the folder).
    threads : engine threads in this process (None: all cores); on a cluster each
        worker's engine uses the cores the worker was given. The numbers are those of
        any run with the same threads per engine.
    settings : stage settings given now (None: the study's); a stage whose settings
        change runs again, its earlier results gone.

    A Study holds an exclusive lock on its folder (``out/.lock``) until :meth:`close`
    (or the end of the process): a second run on the same folder stops at once.
    Every file it writes goes through one :class:`~losstopo.study.folder.StudyFolder`,
    which refuses symbolic links and paths outside the folder, and is listed in the
    manifest.
    """

    def __init__(self, out, config: Optional[dict] = None, force: bool = False,
                 quiet: bool = False, client=None, threads: Optional[int] = None,
                 settings: Optional[dict] = None):
        self.out = os.fspath(out)
        self.quiet = quiet
        self.client = client
        self.threads = threads
        self.folder = StudyFolder(self.out, registry.files(), quiet=quiet)
        self.manifest_path = self.folder.manifest_path
        self._data = None
        try:
            self.folder.lock()
            self._open(config, force, settings or {})
        except UnsafePathError as e:
            self.close()
            raise StudyError(str(e)) from e
        except OSError as e:
            self.close()
            raise StudyError(f"{self.out}: cannot write in the study's folder ({why(e)}); "
                             "choose a writable --out") from e
        except BaseException:
            self.close()
            raise

    def _open(self, config, force, settings):
        folder = self.folder
        manifest = folder.read_manifest()
        from_manifest = config is None
        if config is None:
            if manifest is None:
                raise StudyError(f"{self.out}: no study here yet (run `losstopo reproduce`)")
            config = manifest["config"]
        else:
            check_config(config, "configuration")
        unknown = sorted(set(settings) - set(STAGE_SETTINGS))
        if unknown:
            raise StudyError(f"settings: only {sorted(STAGE_SETTINGS)} change a study's "
                             f"later stages, got {unknown}")
        changes = {k: v for k, v in settings.items() if v is not None}
        if changes:
            config = dict(config, **changes)
            check_config(config, "configuration")
            check_sizes(config)
        if manifest is not None:
            mcfg = manifest["config"]
            intact = manifest["config_hash"] == study_hash(mcfg)
            if from_manifest and not intact:
                raise StudyError(f"{self.manifest_path}: its configuration does not match its "
                                 "hash (edited by hand?); restore it, or start afresh with "
                                 "`losstopo reproduce --force`")
            # One study: the same settings but for its stages' own (a changed one of
            # those runs its stage again, below).
            if not (intact and study_key(config) == study_key(mcfg)):
                if not force:
                    raise StudyError(
                        f"{self.out} holds a study with another configuration "
                        f"({diff(mcfg, config, binding=intact)}); use --force to start "
                        "afresh or choose another --out"
                    )
                folder.wipe(manifest)
                manifest = None
        reset = []
        if manifest is not None:
            # A stage's own settings: the study's unless given now; a stage whose
            # settings changed runs again, its earlier results gone.
            old = manifest["config"]
            config = dict(config)
            for k, stage in STAGE_SETTINGS.items():
                if settings.get(k) is None:
                    config[k] = old.get(k, LATER[k])
                elif old.get(k, LATER[k]) != config[k]:
                    manifest["stages"].pop(stage, None)
                    for key in registry.get(stage).results.keys():
                        manifest["results"].pop(key, None)
                    folder.remove(manifest, registry.get(stage).produces())
                    reset.append(f"{stage} ({k}: {old.get(k, LATER[k])} -> {config[k]})")
            manifest["config"] = config
            manifest["config_hash"] = study_hash(config)  # a hashed stage setting's new value
        self.config = config
        folder.study = study_key(config)  # what every file the study writes is bound to
        if manifest is None:
            manifest = dict(config=config, config_hash=study_hash(config), stages={},
                            results={}, files=[], version=__version__)
        manifest.setdefault("files", [])
        legacy = "bindings" not in manifest and bool(manifest["stages"])
        manifest.setdefault("bindings", {})
        recorded = self._engine_threads(manifest)
        folder.manifest = manifest
        folder.own("manifest.json", "log.txt")
        adopted = folder.adopt() if legacy else []
        if recorded:
            folder.write_manifest()
        self.log = folder.open_log(str(id(self)))
        if adopted:
            self.log.info("files bound to the study as found (written before studies "
                          "recorded their files): %s", ", ".join(adopted))
        for what in reset:
            self.log.info("settings changed: the %s stage runs again", what)
        if reset:  # its old results and files are gone from the study now, run or not
            folder.write_manifest()

    def _engine_threads(self, manifest) -> bool:
        """What the native engine's rounding depends on (its thread count, instruction
        set and BLAS kernels): a study records what it computes with, and a resumed one
        computes with it (so it is bitwise the study an uninterrupted run would have
        made); another thread count asked for, or a machine that computes otherwise, is
        refused with the way out. Returns whether the manifest took a record now. A
        PyTorch network or a study on a cluster keeps the threads as given."""
        if self.client is not None or network(self.config["network"]) is None:
            return False
        engine = manifest.setdefault("engine", {})
        had = engine.get("threads")
        if self.threads is not None and had is not None and self.threads != had:
            raise StudyError(f"{self.out}: this study was computed with {had} engine threads "
                             f"and its numbers depend on the count; resume with --threads "
                             f"{had} (or start afresh with --force)")
        now = arithmetic(self.threads if had is None else had)
        if had is not None:
            problem = arithmetic_mismatch(engine, now)
            if problem is not None:
                raise StudyError(f"{self.out}: this study was {problem} (or start afresh "
                                 "with --force)")
        self.threads = now["threads"]
        if engine == now:
            return False
        engine.update(now)  # a new study, or one written before the record was complete
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.folder.close()

    @property
    def manifest(self) -> dict:
        return self.folder.manifest

    # ----------------------------------------------------------- the stages' use
    def path(self, name) -> str:
        """The checked path of one of the study's files (refuses links and escapes)."""
        return self.folder.path(name)

    def done(self, stage) -> bool:
        return bool(self.manifest["stages"].get(stage))

    def finish(self, stage: str, results) -> None:
        """Records ``stage`` finished, with its results, in the manifest."""
        self.manifest["stages"][stage] = time.strftime("%Y-%m-%d %H:%M:%S")
        self.manifest["results"].update(results.to_manifest())
        self.folder.write_manifest()
        peak = _peak_memory_mb()
        if peak is not None:
            self.log.info("%s: finished; peak memory of this process so far %.0f MB", stage,
                          peak)

    def data(self):
        """(train (X, y), test (X, y)) as the configuration says."""
        if self._data is None:
            self._data = study_data(self.config, progress=not self.quiet)
        return self._data

    def landscapes(self):
        return study_landscapes(self.config, self.data(), self.threads)

    def sets(self) -> dict:
        """The four solution sets (sets.npz, checked)."""
        return SetsFile().read(self.folder)

    def figure(self, fig, stem) -> list:
        """fig as figures/<stem>.png and .pdf, written through the folder's checks."""
        from ..plots import figure_bytes

        names = figure_names(stem)
        for name, data in zip(names, figure_bytes(fig, FIGURE_FORMATS).values()):
            self.folder.write(name, "bytes", data)
        return names

    def report(self) -> str:
        """report.md from the configuration and the manifest's results."""
        try:
            text = render_report(self.config, self.manifest["results"],
                                 registry.report_sections())
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise StudyError(f"{self.manifest_path}: results of the wrong form ({why(e)}); "
                             "move it away and rerun the study") from e
        self.folder.write(REPORT, "text", text)
        return text

    # ---------------------------------------------------------------- the runner
    def run(self, stages=None):
        """Runs ``stages`` (names; None: all) in the registry's order: a stage not asked
        for by its setting, or finished already, is skipped; one whose required stages
        have not finished stops the study with the command that finishes them."""
        wanted = registry.stage_names() if stages is None else tuple(stages)
        for name in wanted:
            registry.get(name)  # an unknown name stops us before any work
        t0 = time.perf_counter()
        for stage in registry.ordered():
            if stage.name in wanted:
                self._run_stage(stage)
        self.log.info("study finished in %.1f s; report: %s", time.perf_counter() - t0,
                      self.path(REPORT))

    def _run_stage(self, stage):
        if stage.asked_by is not None and not self.config[stage.asked_by]:
            self.log.info("%s: not asked for (--%s)", stage.name,
                          stage.asked_by.replace("_", "-"))
            return
        if not stage.always and stage.done(self):
            self.log.info("%s: done already", stage.name)
            return
        for req in stage.requires:
            if not registry.get(req).done(self):
                cmd = registry.get(req).cli_command
                raise StudyError(f"{self.out}: the {req} stage has not finished "
                                 f"(run `losstopo {cmd} --out {self.out}`)")
        results = stage.run(self)
        self.finish(stage.name, results)
        stage.finished(self)


def _peak_memory_mb():
    """The peak resident memory of this process in MB (None where not known)."""
    try:
        import resource
        import sys
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes / KiB
