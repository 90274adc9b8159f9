"""The topography of a set of solutions: a network of minima and its disconnectivity
graph.

Nodes are solutions (their loss, the set each belongs to); edges are barriers found
between pairs (``barrier_matrix`` records, certified where the pair was certified).
A path through other minima climbs to the highest barrier on its way, so the lowest
barrier at which two minima connect through the network is the minimax over its
paths: the level at which single linkage (on the barriers as dissimilarities) joins
them, i.e. a path on the minimum spanning tree. Those join levels are what a
disconnectivity graph draws (Becker and Karplus 1997): every minimum a leaf at its
own loss, basins merging at their barrier levels.

Each edge keeps what its number is: ``certified`` (an index-1 saddle connected to
both ends), ``barrier-free`` (no rise above the higher endpoint within the
certificate's tolerance) or ``bound`` (the highest point of a found path: the true
barrier is at most this). A join level is as good as the edges under it: it is an
upper bound unless every edge on its minimax path is certified or barrier-free, and
``summary`` says which.

Which pairs to measure: :func:`plan_pairs` starts, as AutoNEB does, with the minimum
spanning tree of the solutions' distances (n - 1 pairs), then adds "connect" passes:
for each join of the current graph (each merge of its dendrogram, the disconnected
components first), the closest unmeasured pair across it, the joins with the most
room above their endpoints first. :func:`map_minima` runs those passes through
``barrier_matrix`` (batched, resumable, on a Dask ``client=``) and records how the
graph changes after each, so a user sees when it has settled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

STATUSES = ("certified", "barrier-free", "bound")
_RANK = {s: i for i, s in enumerate(STATUSES)}  # ties prefer the better proof


def _pair(i: int, j: int) -> tuple:
    return (int(i), int(j)) if i < j else (int(j), int(i))


@dataclass
class Edge:
    """The best barrier known between two minima: absolute (the paper's H), with what
    it is (``status``) and where it came from (``source``)."""

    barrier: float
    status: str
    source: str = ""


@dataclass
class MinimaNetwork:
    """Minima (``losses``, ``labels``: the set of each) and the barriers between them.

    Edges are added with :meth:`add` or :meth:`add_record`; a pair measured twice
    keeps its lower barrier (every number is an upper bound on the pair's minimax
    barrier, a certified one included). ``history`` holds the summary after each
    :meth:`checkpoint` (one per pass of :func:`map_minima`).
    """

    losses: np.ndarray
    labels: np.ndarray
    edges: Dict[tuple, Edge] = field(default_factory=dict)
    history: List[dict] = field(default_factory=list)
    # the join levels at the last checkpoint (what ``changed`` compares with)
    _last_joins: Optional[np.ndarray] = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.losses = np.asarray(self.losses, dtype=np.float64).reshape(-1)
        n = len(self.losses)
        if n < 1:
            raise ValueError("losses: a network needs at least one minimum")
        if not np.isfinite(self.losses).all():
            bad = int(np.flatnonzero(~np.isfinite(self.losses))[0])
            raise ValueError(f"losses: minimum {bad} has a non-finite loss")
        labels = np.asarray([""] * n if self.labels is None else self.labels).astype(str)
        if labels.shape != (n,):
            raise ValueError(f"labels: expected {n} labels (one per minimum), got "
                             f"shape {labels.shape}")
        self.labels = labels

    @property
    def n(self) -> int:
        return len(self.losses)

    # ---------------------------------------------------------------- edges
    def add(self, pairs, barrier, status="bound", source: str = "") -> int:
        """Add barriers between ``pairs`` (k, 2) of minima; returns how many pairs got
        a lower (or first) number. ``status``: one for all or one per pair."""
        pairs = np.asarray(pairs)
        if pairs.size == 0:
            return 0
        if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype,
                                                                        np.integer):
            raise ValueError(f"pairs: expected integer indices of shape (k, 2), got "
                             f"{pairs.dtype} {pairs.shape}")
        if pairs.min() < 0 or pairs.max() >= self.n:
            raise ValueError(f"pairs: indices must lie in [0, {self.n}), got "
                             f"[{pairs.min()}, {pairs.max()}]")
        if (pairs[:, 0] == pairs[:, 1]).any():
            raise ValueError("pairs: a pair joins a minimum to itself")
        barrier = np.broadcast_to(np.asarray(barrier, dtype=np.float64), (len(pairs),))
        status = np.broadcast_to(np.asarray(status, dtype=str), (len(pairs),))
        bad = sorted(set(status) - set(STATUSES))
        if bad:
            raise ValueError(f"status: expected one of {STATUSES}, got {bad}")
        changed = 0
        for (i, j), h, s in zip(pairs, barrier, status):
            if not np.isfinite(h):
                continue  # not measured (an unfinished pair): no edge
            lo = max(self.losses[i], self.losses[j])
            if h < lo - 1e-9 * max(1.0, abs(lo)):
                raise ValueError(f"barrier: {h:.6g} between minima {i} and {j} lies below "
                                 f"the higher endpoint's loss {lo:.6g} (a barrier is the "
                                 "highest loss on a path, endpoints included)")
            key = _pair(i, j)
            old = self.edges.get(key)
            if old is None or h < old.barrier or (h == old.barrier
                                                   and _RANK[s] < _RANK[old.status]):
                self.edges[key] = Edge(float(h), str(s), source)
                changed += 1
        return changed

    def add_record(self, record, offset: int = 0, source: str = "") -> int:
        """Add a ``barrier_matrix`` record (its dict, or the npz it wrote): each finished
        pair's lower number of the found path's refined H and the certificate's
        barrier, with its status. ``offset`` shifts the record's indices
        (a record over one set inside a network of several)."""
        if isinstance(record, (str, os.PathLike)):
            from ._io import load_sealed

            if not os.path.exists(record):
                raise FileNotFoundError(f"{os.fspath(record)}: no such barrier_matrix file")
            try:
                record = load_sealed(record, "barrier_matrix")[0]
            except ValueError as e:
                raise ValueError(f"{os.fspath(record)}: {e}") from None
        pairs = np.asarray(record["pairs"], dtype=np.int64) + int(offset)
        done = np.asarray(record.get("done", np.ones(len(pairs), bool)), dtype=bool)
        cands = []
        # the refined maximum (the path's highest point located between its samples);
        # the sampled maximum only where no refined one was recorded: it can miss the
        # peak and lie below the barrier it stands for
        key = "barrier_refined" if "barrier_refined" in record else "barrier"
        if key in record:
            cands.append((np.asarray(record[key], dtype=np.float64),
                          np.full(len(pairs), "bound")))
        if "cert_barrier" in record and "cert_status" in record:
            st = np.asarray(record["cert_status"]).astype(str)
            st = np.where(st == "bound only", "bound", st)
            ok = np.isin(st, STATUSES)
            cands.append((np.where(ok, np.asarray(record["cert_barrier"], np.float64),
                                   np.nan), np.where(ok, st, "bound")))
        if not cands:
            raise ValueError("record: no barrier in it (expected 'barrier', "
                             "'barrier_refined' or 'cert_barrier')")
        changed = 0
        for values, status in cands:
            v = np.where(done, values, np.nan)
            changed += self.add(pairs, v, status, source)
        return changed

    # ---------------------------------------------------------------- joins
    def _condensed(self):
        """Condensed dissimilarities for scipy: each edge's barrier; a pair with no
        edge gets a level above every barrier (``ceiling``), where nothing is known."""
        n = self.n
        hs = [e.barrier for e in self.edges.values()]
        top = max(hs + list(self.losses))
        bottom = min(list(self.losses))
        ceiling = top + 1.0 + abs(top - bottom)
        D = np.full((n, n), ceiling)
        for (i, j), e in self.edges.items():
            D[i, j] = D[j, i] = e.barrier
        iu = np.triu_indices(n, 1)
        return D[iu], ceiling

    def _shifted(self):
        """(Z, ceiling, base): the linkage with every level less ``base`` (the lowest
        loss), as scipy's checks want no negative level."""
        from scipy.cluster.hierarchy import linkage

        if self.n < 2:
            raise ValueError("a dendrogram needs at least two minima")
        d, ceiling = self._condensed()
        base = float(self.losses.min())
        return linkage(np.maximum(d - base, 0.0), method="single"), ceiling - base, base

    def linkage(self):
        """(Z, ceiling): scipy's single-linkage matrix of the barriers (levels in the
        loss's units); merges at ``ceiling`` or above join components with no
        measured path between them."""
        Z, ceiling, base = self._shifted()
        Z = Z.copy()
        Z[:, 2] += base
        return Z, ceiling + base

    def join_levels(self) -> np.ndarray:
        """(n, n): the lowest barrier at which each two minima connect through the
        network (inf where no measured path joins them); the diagonal is each loss."""
        from scipy.cluster.hierarchy import cophenet
        from scipy.spatial.distance import squareform

        J = np.diag(self.losses).astype(np.float64)
        if self.n < 2:
            return J
        Z, ceiling, base = self._shifted()
        C = squareform(cophenet(Z))
        inf = C >= ceiling
        C += base
        C[inf] = np.inf
        np.fill_diagonal(C, self.losses)
        return C

    def join_path(self, i: int, j: int) -> List[int]:
        """The minima on a minimax path from i to j (through the minimum spanning tree
        of the edges), [] where none joins them."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

        if i == j:
            return [int(i)]
        if not self.edges:
            return []
        keys = np.array(list(self.edges), dtype=np.int64)
        w = np.array([e.barrier for e in self.edges.values()])
        # csgraph drops zero weights: shift every weight above zero (order kept)
        w = w - min(w.min(), 0.0) + 1.0
        G = coo_matrix((w, (keys[:, 0], keys[:, 1])), shape=(self.n, self.n))
        T = minimum_spanning_tree(G)
        T = T + T.T
        _, pred = breadth_first_order(T, i, directed=False, return_predecessors=True)
        if pred[j] < 0:
            return []
        out = [int(j)]
        while out[-1] != i:
            out.append(int(pred[out[-1]]))
        return out[::-1]

    def join_status(self, i: int, j: int) -> str:
        """What the join level of i and j is: "certified" when every edge on its
        minimax path is certified or barrier-free, "bound" otherwise, "none" when no
        measured path joins them."""
        path = self.join_path(i, j)
        if not path:
            return "none"
        st = [self.edges[_pair(a, b)].status for a, b in zip(path, path[1:])]
        return "certified" if all(s != "bound" for s in st) else "bound"

    def basins(self, level: float) -> np.ndarray:
        """(n,) basin label of each minimum: minima joined below ``level`` share one."""
        from scipy.cluster.hierarchy import fcluster

        if self.n < 2:
            return np.zeros(1, dtype=np.int64)
        Z, _, base = self._shifted()
        t = float(level) - base
        if t <= 0:
            return np.arange(self.n)  # nothing lies below the lowest loss
        # fcluster joins at distances <= t; "below level" is strict
        return fcluster(Z, t=np.nextafter(t, -np.inf), criterion="distance") - 1

    # ---------------------------------------------------------------- summary
    def summary(self, levels: Optional[Sequence[float]] = None) -> dict:
        """The numbers the disconnectivity graph shows.

        ``sets``: per label, its minima, the level at which all of them join (inf if
        some never do) and whether that level is certified or a bound; ``basins``: for
        each level, the number of basins below it, how many hold minima of more than
        one set (mixed) and per label how many basins its minima fall into.
        """
        return self._summary(self.join_levels(), levels)

    def _summary(self, J: np.ndarray, levels) -> dict:
        """summary() from the join levels ``J`` already computed."""
        names = sorted(set(self.labels))
        sets = {}
        for name in names:
            idx = np.flatnonzero(self.labels == name)
            sub = J[np.ix_(idx, idx)]
            lvl = float(sub.max())
            if len(idx) > 1 and np.isfinite(lvl):
                a, b = np.unravel_index(int(np.argmax(sub)), sub.shape)
                st = self.join_status(int(idx[a]), int(idx[b]))
            else:
                st = "none" if not np.isfinite(lvl) else "certified"
            sets[name] = dict(minima=int(len(idx)), join_level=lvl, join_status=st,
                              median_loss=float(np.median(self.losses[idx])))
        if levels is None:
            levels = self.default_levels()
        basins = []
        for level in levels:
            lab = self.basins(float(level))
            per = {name: int(len(set(lab[self.labels == name]))) for name in names}
            mixed = sum(1 for b in set(lab) if len(set(self.labels[lab == b])) > 1)
            basins.append(dict(level=float(level), basins=int(len(set(lab))), mixed=mixed,
                               per_set=per))
        statuses = {s: sum(e.status == s for e in self.edges.values()) for s in STATUSES}
        return dict(minima=self.n, edges=len(self.edges), edge_status=statuses, sets=sets,
                    basins=basins)

    def default_levels(self, k: int = 4) -> List[float]:
        """k levels spread over the measured barriers (log-spaced when they span
        decades and are positive)."""
        hs = np.array([e.barrier for e in self.edges.values()] or list(self.losses))
        lo, hi = float(hs.min()), float(hs.max())
        if lo > 0 and hi / lo > 100:
            return list(np.geomspace(lo, hi, k + 1)[1:])
        if hi == lo:
            return [hi]
        return list(np.linspace(lo, hi, k + 1)[1:])

    def checkpoint(self, label: str = "", levels: Optional[Sequence[float]] = None) -> dict:
        """Record the summary now in ``history`` (with ``label``) and return it; the
        fraction of joins that moved since the last checkpoint is ``changed``."""
        J = self.join_levels()
        s = self._summary(J, levels)
        cur = J[np.triu_indices(self.n, 1)]
        s["label"] = label
        prev = self._last_joins
        if prev is not None:
            with np.errstate(invalid="ignore"):
                moved = ~np.isclose(cur, prev, rtol=1e-6, atol=0) & ~(
                    np.isinf(cur) & np.isinf(prev))
            s["changed"] = float(moved.mean()) if len(cur) else 0.0
        else:
            s["changed"] = 1.0
        self._last_joins = cur
        self.history.append(s)
        return s

    # ---------------------------------------------------------------- export
    def to_dict(self) -> dict:
        """Plain nodes and edges (JSON-ready)."""
        J = self.join_levels()
        return dict(
            nodes=[dict(id=i, loss=float(self.losses[i]), set=str(self.labels[i]))
                   for i in range(self.n)],
            edges=[dict(source=i, target=j, barrier=e.barrier, status=e.status,
                        origin=e.source, join_level=float(J[i, j]))
                   for (i, j), e in sorted(self.edges.items())],
            history=list(self.history))

    def save(self, path) -> str:
        """Write the network as JSON (``.json``) or npz (anything else); returns the path."""
        path = os.fspath(path)
        if path.endswith(".json"):
            from ._io import atomic_write_text

            atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=True))
            return path
        from ._io import atomic_savez

        if not path.endswith(".npz"):
            path += ".npz"
        keys = sorted(self.edges)
        pairs = np.array(keys, dtype=np.int64).reshape(-1, 2)
        atomic_savez(path, dict(
            losses=self.losses, labels=self.labels.astype("U64"), pairs=pairs,
            barrier=np.array([self.edges[k].barrier for k in keys], np.float64),
            status=np.array([self.edges[k].status for k in keys], dtype="U16"),
            origin=np.array([self.edges[k].source for k in keys], dtype="U200")),
            seal=dict(kind="minima_network"))
        return path

    @classmethod
    def load(cls, path) -> "MinimaNetwork":
        """A network written by :meth:`save` (JSON or npz)."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such network file")
        if path.endswith(".json"):
            with open(path) as f:
                d = json.load(f)
            try:
                net = cls([n["loss"] for n in d["nodes"]], [n["set"] for n in d["nodes"]])
                for e in d["edges"]:
                    net.add([[e["source"], e["target"]]], e["barrier"], e["status"],
                            e.get("origin", ""))
            except (KeyError, TypeError) as err:
                raise ValueError(f"{path}: not a network file ({err!r} missing)") from None
            net.history = list(d.get("history", []))
            return net
        from ._io import load_sealed

        try:
            z = load_sealed(path, "minima_network")[0]
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        net = cls(z["losses"], z["labels"])
        net.add(z["pairs"], z["barrier"], z["status"])
        for (i, j), o in zip(z["pairs"], z["origin"]):
            net.edges[_pair(i, j)].source = str(o)
        return net

    def to_networkx(self):
        """A networkx Graph (needs networkx): nodes with loss and set, edges with
        barrier and status; ``networkx.write_graphml`` exports it."""
        try:
            import networkx as nx
        except ImportError:
            raise ImportError("to_networkx needs networkx (pip install networkx); "
                              "save() writes JSON or npz without it") from None
        G = nx.Graph()
        for i in range(self.n):
            G.add_node(i, loss=float(self.losses[i]), set=str(self.labels[i]))
        for (i, j), e in self.edges.items():
            G.add_edge(i, j, barrier=e.barrier, status=e.status)
        return G


# -------------------------------------------------------------------- planning
def _distances(thetas=None, distances=None) -> np.ndarray:
    if distances is not None:
        D = np.asarray(distances, dtype=np.float64)
        if D.ndim != 2 or D.shape[0] != D.shape[1]:
            raise ValueError(f"distances: expected a square matrix, got shape {D.shape}")
        if not np.isfinite(D).all():
            raise ValueError("distances: non-finite entries")
        return D
    if thetas is None:
        raise ValueError("plan_pairs: give thetas or distances")
    from scipy.spatial.distance import pdist, squareform

    X = np.asarray(thetas, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"thetas: expected shape (n, D), got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("thetas: non-finite entries")
    return squareform(pdist(X))


def spanning_pairs(thetas=None, distances=None) -> np.ndarray:
    """(n - 1, 2): the minimum spanning tree of the solutions' Euclidean distances
    (or of ``distances``), shortest edges first."""
    from scipy.sparse.csgraph import minimum_spanning_tree

    D = _distances(thetas, distances)
    n = len(D)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    # csgraph drops zeros (identical solutions): lift every distance above zero
    T = minimum_spanning_tree(D + 1.0 - np.eye(n)).tocoo()
    order = np.argsort(T.data, kind="stable")
    P = np.stack([T.row[order], T.col[order]], 1).astype(np.int64)
    return np.sort(P, axis=1)


def plan_pairs(network: MinimaNetwork, budget: int, thetas=None, distances=None
               ) -> np.ndarray:
    """Up to ``budget`` unmeasured pairs to measure next, (k, 2).

    With no edges yet: the minimum spanning tree of the distances. Then a connect
    pass: for each merge of the current dendrogram (components no measured path
    joins first, then merges by their room above their endpoints: the join level
    less the higher endpoint loss, largest first), the closest unmeasured pair across
    it. One pair per merge, so a pass spreads over the graph's joins.
    """
    D = _distances(thetas, distances)
    n = network.n
    if D.shape != (n, n):
        raise ValueError(f"distances: expected ({n}, {n}) for {n} minima, got {D.shape}")
    budget = int(budget)
    if budget < 0:
        raise ValueError(f"budget: expected >= 0, got {budget}")
    if budget == 0 or n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    if not network.edges:
        return spanning_pairs(distances=D)[:budget]
    Z, ceiling = network.linkage()  # only its merges' order and levels are read
    members = {i: [i] for i in range(n)}
    cands = []
    for t, (a, b, level, _) in enumerate(Z):
        A, B = members.pop(int(a)), members.pop(int(b))
        members[n + t] = A + B
        sub = D[np.ix_(A, B)].copy()
        for ii, i in enumerate(A):
            for jj, j in enumerate(B):
                if _pair(i, j) in network.edges:
                    sub[ii, jj] = np.inf
        if not np.isfinite(sub).any():
            continue
        ii, jj = np.unravel_index(int(np.argmin(sub)), sub.shape)
        i, j = A[ii], B[jj]
        room = np.inf if level >= ceiling else level - max(network.losses[i],
                                                            network.losses[j])
        cands.append((room, -sub[ii, jj], _pair(i, j)))
    cands.sort(key=lambda c: (c[0], c[1]), reverse=True)
    out = [c[2] for c in cands if c[0] > 0][:budget]
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def minima_losses(landscape, thetas) -> np.ndarray:
    """The loss of each solution on ``landscape`` (float64)."""
    from .paths import landscape_kind

    dtype = landscape_kind(landscape)[0]
    X = np.ascontiguousarray(np.atleast_2d(thetas), dtype=dtype)
    loss = getattr(landscape, "loss", None)
    E = loss(X) if callable(loss) else landscape(X)[0]
    return np.asarray(E, dtype=np.float64).reshape(len(X))


def map_minima(landscape, thetas, labels=None, budget: Optional[int] = None,
               pass_size: Optional[int] = None, out=None, distances=None, client=None,
               progress: bool = True, prefix: str = "pass", on_pass=None,
               **find_path_kwargs) -> MinimaNetwork:
    """The network of minima of ``thetas`` on ``landscape``, measured pass by pass.

    Pass 0 measures the minimum spanning tree of the distances (n - 1 pairs); then
    connect passes of ``pass_size`` pairs (default n // 2) from :func:`plan_pairs`
    until ``budget`` pairs in all (default 2 (n - 1)) or no join has room left. Every
    pass is one ``barrier_matrix`` call (``find_path_kwargs`` go to it, ``certify=``
    included), written to ``out/{prefix}{k}.npz`` when ``out`` is a folder, so a
    rerun resumes; ``history`` holds the graph's summary after every pass.
    """
    from .paths import barrier_matrix

    thetas = np.asarray(thetas)
    n = len(thetas)
    if n < 2:
        raise ValueError(f"thetas: a network needs at least 2 solutions, got {n}")
    D = _distances(thetas, distances)
    net = MinimaNetwork(minima_losses(landscape, thetas), labels)
    budget = 2 * (n - 1) if budget is None else int(budget)
    if budget < 1:
        raise ValueError(f"budget: expected at least 1 pair, got {budget}")
    pass_size = max(1, n // 2) if pass_size is None else int(pass_size)
    if pass_size < 1:
        raise ValueError(f"pass_size: expected at least 1, got {pass_size}")
    if out is not None:
        os.makedirs(out, exist_ok=True)
    spent, k = 0, 0
    while spent < budget:
        if on_pass is not None:
            on_pass(k)
        size = budget - spent if k == 0 else min(pass_size, budget - spent)
        P = plan_pairs(net, size, distances=D)
        if len(P) == 0:
            break
        file = None if out is None else os.path.join(os.fspath(out), f"{prefix}{k}.npz")
        rec = barrier_matrix(landscape, thetas, pairs=P, out=file, client=client,
                             progress=progress, **find_path_kwargs)
        net.add_record(rec, source=f"pass {k}")
        spent += len(P)
        net.checkpoint(f"pass {k}: {spent} pairs")
        k += 1
    return net
