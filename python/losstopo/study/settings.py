"""The study's settings, each written once: name, type, lower bound, value in every
preset, command-line flag and help, owning stage, and how it enters the
configuration's hash. Presets, the configuration's type checks, the settings kept out
of the hash and the CLI's study flags are all derived from ``SETTINGS``.

The order of ``SETTINGS`` is the order of a configuration's keys (and so of
manifest.json); the hash sorts keys, so it does not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# Names of the presets, in the order the CLI offers them.
PRESET_NAMES = ("quick", "medium", "paper")
NETWORKS = ("fcp", "autoencoder", "lenet", "lstm")
DATA = ("mnist", "synthetic")
_UNSET = object()


@dataclass(frozen=True)
class Setting:
    """One setting of a study's configuration.

    kind: "int", "float", "opt_int" (an int or None) or "str". minimum: the lowest
    value it may take (0 where 0 turns its stage off; the CLI refuses a flag below it). presets: the value in
    each preset (settings the CLI chooses, such as ``network``, have none). torch_quick:
    the quick preset's value for the PyTorch networks, where it differs. flag: the CLI
    flag (without ``--``) that overrides it, if any. stage: the one stage that reads
    it, or None for settings of the whole study; a stage's own setting stays out of
    the hash, so a finished study can take that stage later or again. later: for a
    setting added after the first release, the value that reproduces the studies
    written before it (a manifest without it reads as that value, and a setting at
    that value stays out of the hash). hashed: a stage's own setting that enters the
    hash all the same (it did before it became its stage's; its bytes stay), though a
    finished study takes a new value of it like any stage setting."""

    name: str
    kind: str
    presets: dict = field(default_factory=dict)
    minimum: int = 1
    torch_quick: object = _UNSET
    flag: Optional[str] = None
    help: str = ""
    stage: Optional[str] = None
    later: object = _UNSET
    hashed: bool = False

    @property
    def has_later(self) -> bool:
        return self.later is not _UNSET


def _same(value) -> dict:
    return {p: value for p in PRESET_NAMES}


def _each(quick, medium, paper) -> dict:
    return dict(zip(PRESET_NAMES, (quick, medium, paper)))


# quick: every stage and figure in a few minutes on a 2-core CPU (an MNIST subset,
# small populations, few pairs, short paths). medium: the paper's methods at a scale
# that tests its claims in under 45 minutes on a 2-core CPU (README): 48 kept runs per
# optimizer (the paper's set size, which kernel PCA needs), the full 10k test set and
# the paper's path settings; fewer training images, iterations, epochs and pairs.
# paper: the paper's settings (SGD's epochs are not reported; 100 is our default);
# the stages beyond the paper sized to add at most a quarter to its own work (5
# pairs per set followed over the step budget, 40 aligned: measured on a 2-core
# CPU, 5.0 h and 5.1 h beside the paper's 45 h of training and paths).
# torch_quick: the PyTorch networks (LeNet, LSTM) run their passes at roughly a tenth
# of the native engine's speed on a CPU (measured: about 0.1 s per loss+gradient of
# one parameter vector of LeNet on 1,000 images, 0.3 s of the LSTM), so their quick
# preset has fewer images, runs, iterations and pairs, and short coarse paths.
SETTINGS = (
    Setting("n_train", "opt_int", _each(5000, 10000, None), torch_quick=1000,
            flag="n-train", help="training samples"),
    Setting("n_test", "opt_int", _each(1000, None, None), torch_quick=500,
            flag="n-test", help="test samples"),
    Setting("runs", "int", _each(8, 56, 75), torch_quick=4, flag="runs",
            help="runs per optimizer"),
    Setting("keep", "int", _each(6, 48, 48), torch_quick=3, flag="keep",
            help="best runs kept per optimizer"),
    Setting("sgd_epochs", "int", _each(30, 40, 100), torch_quick=20, flag="epochs",
            help="SGD epochs"),
    Setting("lbfgs_iters", "int", _each(150, 200, 1000), torch_quick=60, flag="iters",
            help="L-BFGS iterations"),
    Setting("lr", "float", _same(0.1)),
    Setting("batch_size", "int", _same(64)),
    Setting("pairs", "int", _each(5, 6, 300), torch_quick=1, flag="pairs",
            help="path pairs per set"),
    Setting("n_points", "int", _each(20, 50, 50), torch_quick=12),
    Setting("n_modes", "int", _same(10)),
    Setting("lam", "float", _same(1e-4)),
    Setting("path_lr", "float", _same(1e-3)),
    Setting("path_steps", "int", _each(20, 100, 100), minimum=0, torch_quick=10,
            flag="path-steps",
            help="Adam steps per path"),
    Setting("path_batch", "opt_int", _same(None), flag="path-batch", later=None,
            help="samples drawn per path step (stochastic steps; default: all samples; "
            "barriers are always measured on all)"),
    Setting("train_group", "opt_int", _same(None), flag="train-group", later=None,
            help="runs per engine batch in training (default: all runs in one; set it "
            "to spread training over a --cluster)"),
    Setting("converge_pairs", "opt_int", _each(None, 1, 5), minimum=0, torch_quick=None,
            flag="converge-pairs", stage="converge", hashed=True, later=None,
            help="pairs per set whose barriers are followed over 25 - 400 path steps "
            "beside the minimax reference (0: none)"),
    Setting("align_pairs", "opt_int", _each(2, 2, 40), minimum=0, torch_quick=1,
            flag="align-pairs", stage="align", hashed=True, later=None,
            help="pairs per set whose paths are found again with the second endpoint "
            "permuted to match the first (weight matching; 0: none)"),
    Setting("curvature_solutions", "opt_int", _each(6, 48, 48), minimum=0,
            torch_quick=None, flag="curvature-solutions", stage="curvature", later=None,
            help="solutions per set whose Hessian's top eigenvalue and trace are "
            "measured (0: none); changing it on a finished study runs the curvature "
            "stage again, nothing else"),
    Setting("slice_grid", "opt_int", _each(21, 51, 51), minimum=2, torch_quick=None,
            flag="slice-grid", stage="curvature", later=None,
            help="points per side of the curvature stage's 2-D slices"),
    Setting("seed", "int", _same(0), minimum=0, flag="seed", help="random seed"),
    # Chosen on the command line by flags of their own (with choices), in every preset.
    Setting("network", "str"),
    Setting("preset", "str"),
    Setting("data", "str"),
    Setting("device", "str"),
    Setting("curve", "str", later="fourier"),
)
# In the order they were added (a manifest that lacks them gets them in this order);
# a stage registered later adds its own settings after these (add()).
_ADDED = ("path_batch", "train_group", "converge_pairs", "align_pairs", "curve",
          "curvature_solutions", "slice_grid")

# Derived tables, filled by _derive() (dicts in place, so every importer sees a
# setting that a stage adds later).
BY_NAME: dict = {}
PRESETS: dict = {p: {} for p in PRESET_NAMES}
TORCH_QUICK: dict = {}
NETWORK_PRESETS = {("quick", "lenet"): TORCH_QUICK, ("quick", "lstm"): TORCH_QUICK}
KINDS: dict = {}
LATER: dict = {}
STAGE_SETTINGS: dict = {}
# The CLI's override flags: (flag, setting, help), shared by every study command
# (stage settings) or by the commands that configure a study (the others).
STAGE_FLAGS: tuple = ()
STUDY_FLAGS: tuple = ()


def _derive() -> None:
    global STAGE_FLAGS, STUDY_FLAGS
    BY_NAME.clear()
    BY_NAME.update((s.name, s) for s in SETTINGS)
    for p in PRESET_NAMES:
        PRESETS[p].clear()
        PRESETS[p].update((s.name, s.presets[p]) for s in SETTINGS if s.presets)
    TORCH_QUICK.clear()
    TORCH_QUICK.update((s.name, s.torch_quick) for s in SETTINGS
                       if s.torch_quick is not _UNSET)
    KINDS.clear()
    KINDS.update((kind, tuple(s.name for s in SETTINGS if s.kind == kind))
                 for kind in ("int", "float", "opt_int", "str"))
    added = list(_ADDED) + [s.name for s in SETTINGS[len(_BUILTIN):]]
    LATER.clear()
    LATER.update((name, BY_NAME[name].later) for name in added)
    assert set(LATER) == {s.name for s in SETTINGS if s.has_later}
    STAGE_SETTINGS.clear()
    STAGE_SETTINGS.update((s.name, s.stage) for s in SETTINGS if s.stage is not None)
    STAGE_FLAGS = tuple((s.flag, s.name, s.help) for s in SETTINGS
                        if s.flag and s.stage is not None)
    STUDY_FLAGS = tuple((s.flag, s.name, s.help) for s in SETTINGS
                        if s.flag and s.stage is None)


_BUILTIN = SETTINGS


def add(rows) -> None:
    """Adds a registered stage's own settings to the table. Each must belong to its
    stage (so it stays out of the hash) and have a ``later`` value (so a study written
    before the stage existed reads as that value)."""
    global SETTINGS
    for s in rows:
        if s.name in BY_NAME:
            raise ValueError(f"setting {s.name!r} exists already")
        if s.stage is None or not s.has_later:
            raise ValueError(f"setting {s.name!r}: a stage's own setting needs its stage "
                             "and the value that reproduces older studies (later)")
    SETTINGS = SETTINGS + tuple(rows)
    _derive()


def remove(names) -> None:
    """Takes settings added by add() out of the table again (a stage unregistered)."""
    global SETTINGS
    builtin = {s.name for s in _BUILTIN}
    if builtin & set(names):
        raise ValueError(f"the built-in settings {sorted(builtin & set(names))} stay")
    SETTINGS = tuple(s for s in SETTINGS if s.name not in set(names))
    _derive()


_derive()


def in_hash(name: str, value) -> bool:
    """Whether a setting at ``value`` enters the configuration's hash (the one the
    manifest records)."""
    s = BY_NAME[name]
    return (s.stage is None or s.hashed) and not (s.has_later and value == s.later)


def binds_study(name: str, value) -> bool:
    """Whether a setting at ``value`` binds a study: a finished study resumes only
    under the same value (the hash's settings less its stages' own)."""
    return in_hash(name, value) and BY_NAME[name].stage is None


def minimum(name: str) -> int:
    return BY_NAME[name].minimum
