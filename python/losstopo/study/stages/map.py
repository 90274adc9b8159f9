"""The map of minima (not in the paper): the first solutions of the two training sets
as one network of minima on the training landscape, measured along the minimum
spanning tree of their distances and then in connect passes (losstopo.topography),
raw and with every solution aligned to one reference (an MLP or a torch network); its
disconnectivity graph answers the paper's claim in topographic terms."""

from __future__ import annotations

import numpy as np

from ...topography import MinimaNetwork, map_minima
from .. import report
from ..config import network
from ..results import MapResults
from ..settings import Setting
from .base import Stage
from .paths import pair_seconds, path_kwargs

VIEWS = ("raw", "aligned")
SETS = ("SGD-train", "LBFGS-train")


def minima_per_set(config: dict) -> int:
    """Solutions of each training set in the map: ``map_minima``, or (unset) as many
    as half the budget spans (a tree of 2m - 1 pairs, the other half connects); never
    more than the budget's tree can span, at least 2, at most the set."""
    n = config.get("map_pairs") or 0
    asked = config.get("map_minima") or (n // 2 + 1) // 2
    return int(min(config["keep"], max(2, min(asked, (n + 1) // 2))))


def map_file(view: str) -> str:
    return f"map_{view}.npz"


def pass_prefix(view: str) -> str:
    return f"map_{view}_pass"


CONNECT_PASSES = 4

# The map's paths: stochastic steps where the study's paths take all samples. A map
# needs n - 1 pairs for its tree alone (95 for the 96 minima of the medium preset).
# Measured on the medium preset's minima (bench_map_paths, RESULTS.md; 3 tree pairs of
# each training set): 200 Adam steps on 1,000 samples each end at 0.42x-0.55x the
# barriers of the paper's 100 full-batch steps in 0.35x-0.44x their time; 400 such
# steps at 0.11x-0.14x in 0.63x-0.65x (too slow for the medium preset's 240 pairs);
# 100 stop higher than the paper's, and 500 samples per step are noisier.
MAP_BATCH, MAP_STEPS = 1000, 200


def map_path_settings(config: dict) -> tuple:
    """(steps, samples per step) of the map's paths: its own where it sets them, else
    the study's paths' (None samples: all)."""
    return (config.get("map_steps") or config["path_steps"],
            config.get("map_batch") or config["path_batch"])


def map_path_kwargs(config: dict, ls) -> dict:
    """barrier_matrix's settings for the map's paths on ``ls``."""
    steps, batch = map_path_settings(config)
    return path_kwargs(dict(config, path_steps=steps, path_batch=batch), ls)


def networks(study) -> dict:
    """{view: MinimaNetwork} of the map's files the study holds (checked), none before
    the map stage has run."""
    return {view: MinimaNetwork.load(study.folder.verify(map_file(view), "paths"))
            for view in VIEWS if study.done("map") and study.folder.exists(map_file(view))}


def pass_size(config: dict) -> int:
    """Pairs per connect pass: what the tree leaves of the budget, in CONNECT_PASSES."""
    tree = 2 * minima_per_set(config) - 1
    return max(1, -(-max(0, (config.get("map_pairs") or 0) - tree) // CONNECT_PASSES))


class MapStage(Stage):
    name = "map"
    command = "paths"
    requires = ("paths",)
    asked_by = "map_pairs"
    settings = (Setting(
        "map_pairs", "opt_int", dict(quick=8, medium=120, paper=200), minimum=0,
        torch_quick=None, flag="map-pairs", stage="map", later=None,
        help="pairs measured for the map of minima, per view (raw, aligned): the first "
        "solutions of each training set (--map-minima), joined along their spanning tree, "
        "then in connect passes (0: no map)"),
        Setting("map_minima", "opt_int", dict(quick=None, medium=48, paper=48), minimum=2,
                torch_quick=None, flag="map-minima", stage="map", later=None,
                help="solutions of each training set in the map (default: N/4 of "
                "--map-pairs; never more than its spanning tree can join)"),
        Setting("map_batch", "opt_int", dict(quick=None, medium=MAP_BATCH, paper=MAP_BATCH),
                torch_quick=None, flag="map-batch", stage="map", later=None,
                help="samples drawn per step of the map's paths (stochastic steps; default: "
                "--path-batch; barriers are always measured on all samples)"),
        Setting("map_steps", "opt_int", dict(quick=None, medium=MAP_STEPS, paper=MAP_STEPS),
                torch_quick=None, flag="map-steps", stage="map", later=None,
                help="Adam steps of each of the map's paths (default: --path-steps)"),
    )
    results = MapResults
    report_sections = ((27, report.map_section),)

    def produces(self):
        return [map_file(v) for v in VIEWS] + [f"{pass_prefix(v)}{k}.npz" for v in VIEWS
                                               for k in range(1 + CONNECT_PASSES)]

    def run(self, study):
        from ...align import align_to_common

        c = study.config
        m = minima_per_set(c)
        sets = study.sets()
        train_ls, _ = study.landscapes()
        thetas = np.concatenate([sets[s][:m] for s in SETS])
        labels = [s for s in SETS for _ in range(len(sets[s][:m]))]
        net = network(c["network"]) or train_ls  # a torch network: its landscape
        kw = map_path_kwargs(c, train_ls)
        summary = {}
        for view in VIEWS:
            X = thetas if view == "raw" else align_to_common(net, thetas).theta
            study.log.info("map: %s, %d minima, %d pairs", view, len(X), c["map_pairs"])
            prefix = pass_prefix(view)
            owned = []

            def own(k, prefix=prefix, owned=owned):
                study.folder.own(f"{prefix}{k}.npz")
                owned.append(f"{prefix}{k}.npz")

            g = map_minima(train_ls, X, labels, budget=c["map_pairs"], pass_size=pass_size(c),
                           out=study.out, prefix=prefix, on_pass=own, client=study.client,
                           progress=not study.quiet, seed=c["seed"], **kw)
            for name in owned:
                if study.folder.exists(name):
                    study.folder.record(name)
            study.folder.own(map_file(view))
            g.save(study.path(map_file(view)))
            study.folder.record(map_file(view))
            summary[view] = dict(minima_per_set=m, summary=_plain(g.summary()),
                                 history=_plain(g.history))
        return MapResults(map=summary)

    def estimate(self, config, cal, schedule):
        n = config.get("map_pairs") or 0
        if not n:
            return [("map", "map of minima", 0.0)]
        steps, batch = map_path_settings(config)
        pair = pair_seconds(config, cal, cal["n_train"], steps=steps, batch=batch)
        # the passes run one after another (each plans from the last)
        return [("map", "map of minima", len(VIEWS) * n * pair)]


def _plain(summary: dict) -> dict:
    """JSON-safe (infinite join levels as None)."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, float) and not np.isfinite(v):
            return None
        return v
    return clean(summary)


STAGE = MapStage()
