"""The study's stages: one module each, registered here. The runner, the CLI, the
estimate and the report take every stage, its order, command, settings, files,
workload and report sections from this registry; adding a stage is one module and one
line in REGISTRY."""

from __future__ import annotations

from .. import settings
from ..folder import LOG, MANIFEST
from . import align, certify, converge, curvature, embed, map, paths, plot, train, verdicts
from .base import Stage

REGISTRY = [
    train.STAGE,
    embed.STAGE,
    paths.STAGE,
    converge.STAGE,
    align.STAGE,
    certify.STAGE,
    map.STAGE,
    curvature.STAGE,
    verdicts.STAGE,  # before plot: both run after all others, in this order
    plot.STAGE,
]


# The registered stages' own settings (the built-in stages' are rows of
# settings.SETTINGS already).
settings.add([row for s in REGISTRY for row in s.settings])


def register(stage: Stage, before: str = None) -> None:
    """Adds ``stage`` to the registry (before the stage named ``before``, else at the
    end) and its own settings to the settings table."""
    if not isinstance(stage, Stage) or not stage.name:
        raise TypeError(f"register: expected a named Stage, got {stage!r}")
    if stage.name in names():
        raise ValueError(f"register: a stage {stage.name!r} exists already")
    settings.add(stage.settings)
    at = names().index(before) if before is not None else len(REGISTRY)
    REGISTRY.insert(at, stage)


def unregister(name: str) -> None:
    """Takes a registered stage (and its own settings) out again."""
    stage = get(name)
    REGISTRY.remove(stage)
    settings.remove([s.name for s in stage.settings])


def names() -> list:
    return [s.name for s in REGISTRY]


def get(name: str) -> Stage:
    for s in REGISTRY:
        if s.name == name:
            return s
    raise KeyError(f"no stage {name!r}; the stages are {names()}")


def ordered() -> list:
    """Every stage in the order they run: each after the stages it requires or runs
    after, ties in the registry's order."""
    before = {}
    last = [o.name for o in REGISTRY if o.after == "*"]  # these run last, in this order
    for s in REGISTRY:
        after = ([o.name for o in REGISTRY if o is not s and o.name not in last]
                 + last[:last.index(s.name)] if s.after == "*" else list(s.after))
        before[s.name] = {n for n in list(s.requires) + after if n in names()}
    for s in REGISTRY:  # a stage that runs after all others runs after these too
        if s.after != "*":
            before[s.name] -= set(last)
    order, left = [], names()
    while left:
        ready = [n for n in left if before[n] <= set(order)]
        if not ready:
            raise ValueError(f"the stages {left} require each other in a cycle")
        order.append(ready[0])
        left.remove(ready[0])
    return [get(n) for n in order]


def stage_names() -> tuple:
    """The stages' names in their order (``reproduce`` runs them all)."""
    return tuple(s.name for s in ordered())


def commands() -> dict:
    """{CLI command: (help, configures, [stage names in order])}, in the order of the
    commands' first stages."""
    out = {}
    for s in ordered():
        cmd = s.cli_command
        if cmd not in out:
            out[cmd] = [s.command_help, s.configures, []]
        elif s.command_help and not out[cmd][0]:
            out[cmd][0] = s.command_help
        out[cmd][1] = out[cmd][1] or s.configures
        out[cmd][2].append(s.name)
    return {k: tuple(v) for k, v in out.items()}


def report_sections() -> list:
    """Every stage's report sections, in the report's order (by rank)."""
    ranked = [(rank, i, fn) for i, s in enumerate(REGISTRY) for rank, fn in s.report_sections]
    return [fn for _, _, fn in sorted(ranked, key=lambda r: r[:2])]


def files() -> frozenset:
    """Every name a study can write (relative to its folder): the only names --force
    ever removes, and then only those its manifest lists."""
    names_ = {MANIFEST, LOG}
    for s in REGISTRY:
        names_ |= set(s.produces())
    return frozenset(names_)
