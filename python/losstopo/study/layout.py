"""The study's names: its solution sets, stages' pairs of sets and kernels, and the
names of every file it writes. A leaf module: the report, the figures, the estimate
and the stages all take their names from here, never from the keys of a file read
back."""

from __future__ import annotations

SETS = ("SGD-train", "SGD-test", "LBFGS-train", "LBFGS-test")
# The kernel-PCA pairs of sets and kernels, in the order of the embedding, the figures
# and the report.
COMBOS = (("LBFGS-train", "SGD-train"), ("LBFGS-test", "SGD-test"),
          ("LBFGS-train", "SGD-test"))
KERNELS = ("rbf", "linear")
METHODS = ("sgd", "lbfgs")
OPTIMIZERS = ("SGD", "LBFGS")  # the sets' optimizer prefixes
SLICES = ("SGD", "LBFGS", "plane")  # the curvature stage's 2-D slices
FIGURE_FORMATS = ("png", "pdf")  # what every figure of the study is written as
# The three barrier levels (plots.BARRIER_LEVELS) and their figure-name suffixes.
LEVEL_STEMS = {"barrier": "", "barrier_rel": "_minus_max", "barrier_mean": "_minus_mean"}


def landscapes_of(name: str) -> tuple:
    """The landscapes a set's paths run on: the training one, and the test one for the
    test sets."""
    return ("train", "test") if name.endswith("test") else ("train",)


def set_key(name: str) -> str:
    """A set's name as an array name (``SGD-train`` -> ``SGD_train``)."""
    return name.replace("-", "_")


def embedding_key(a: str, b: str, kernel: str) -> str:
    """The array name in embedding.npz (and the figure's stem) of one pair and kernel."""
    return f"{a}__{b}__{kernel}".replace("-", "_")


def aligned_file(name: str) -> str:
    """The file of a set's aligned pairs (training landscape)."""
    return f"paths_{name}_train_aligned.npz"


def certified_file(name: str, landscape: str) -> str:
    """The file of a set's certified pairs on a landscape (the certify stage's)."""
    return f"certified_{name}_{landscape}.npz"


def path_files() -> list:
    """(set, landscape, file name) of every path file, in the order of the stage."""
    return [(name, lname, f"paths_{name}_{lname}.npz")
            for name in SETS for lname in landscapes_of(name)]


def barrier_keys() -> list:
    """The barrier table's rows in the study's own order (sets, then landscapes): a
    resumed study's report, whose results went through JSON with sorted keys, reads
    byte for byte like an uninterrupted one's."""
    return [f"{name}@{lname}" for name, lname, _ in path_files()]
