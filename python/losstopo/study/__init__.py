"""The study of Yu & Morozov end to end, resumable stage by stage.

data -> SGD and L-BFGS-GSS populations -> snapshots at the train and test minima ->
the best K runs -> four solution sets -> kernel PCA -> paths for random pairs in each
set (training landscape; test landscape too for the test sets) -> figures, tables
and report.md. Everything lives in one output folder with a manifest; a rerun
continues where the last one stopped and never redoes a finished stage or pair.

The package: ``settings`` (the one table of settings), ``config`` (a configuration
built, checked and hashed), ``layout`` (the study's names), ``folder`` (lock, manifest,
log, the one writer), ``files`` (one class per study file), ``results`` (each stage's
typed results), ``stages`` (one module per stage and their registry), ``runner``
(:class:`Study`: the stages in order, resume and --force), ``report`` and
``estimate``.
"""

from __future__ import annotations

from . import stages
from .config import (StudyError, check_config, make_config, network, study_data,  # noqa: F401
                     study_hash, study_key, study_landscapes)
from .layout import (COMBOS, FIGURE_FORMATS, KERNELS, METHODS, SETS, SLICES,  # noqa: F401
                     aligned_file, embedding_key, landscapes_of, path_files)
from .runner import Study
from .settings import NETWORKS, PRESETS  # noqa: F401

# The built-in stages in the order they run (stages.stage_names() includes any
# registered later).
STAGES = stages.stage_names()


def study_files() -> frozenset:
    """Every name a study can write (relative to its folder): the only names --force
    ever removes, and then only those its manifest lists."""
    return stages.files()


__all__ = ["Study", "StudyError", "make_config", "study_data", "study_landscapes",
           "study_files", "network", "STAGES", "SETS", "PRESETS", "NETWORKS"]
