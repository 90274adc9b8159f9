"""The network of minima: join levels against a brute-force minimax, pair planning
against a hand-written Prim, and the whole map on Muller-Brown against its known
saddles (-40.665 joining A to the intermediate minimum, -72.249 joining that to B)."""

import json

import numpy as np
import pytest

from losstopo import analytic
from losstopo.plots import disconnectivity_layout, figure_bytes, plot_disconnectivity
from losstopo.topography import (MinimaNetwork, map_minima, plan_pairs, spanning_pairs)


def brute_minimax(n, losses, edges):
    """Minimax path levels by repeated relaxation (Floyd-Warshall on max-min)."""
    J = np.full((n, n), np.inf)
    np.fill_diagonal(J, losses)
    for (i, j), h in edges.items():
        J[i, j] = J[j, i] = min(J[i, j], h)
    for k in range(n):
        J = np.minimum(J, np.maximum(J[:, k:k + 1], J[k:k + 1, :]))
    np.fill_diagonal(J, losses)
    return J


def random_network(rng, n=12, p=0.35):
    losses = rng.uniform(0, 1, n)
    edges = {}
    for i in range(n):
        for j in range(i + 1, n):
            if rng.uniform() < p:
                edges[(i, j)] = max(losses[i], losses[j]) + rng.exponential(1.0)
    return losses, edges


@pytest.mark.parametrize("seed", range(5))
def test_join_levels_are_the_minimax_over_the_network(seed):
    rng = np.random.default_rng(seed)
    losses, edges = random_network(rng)
    net = MinimaNetwork(losses, ["SGD"] * 6 + ["LBFGS"] * 6)
    net.add(np.array(list(edges)), list(edges.values()))
    J = net.join_levels()
    ref = brute_minimax(len(losses), losses, edges)
    np.testing.assert_array_equal(np.isinf(J), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(J[fin], ref[fin], rtol=1e-12)
    # the minimax path's highest edge is the join level
    i, j = np.argwhere(np.triu(fin, 1))[0]
    path = net.join_path(int(i), int(j))
    assert path[0] == i and path[-1] == j
    top = max(net.edges[tuple(sorted((a, b)))].barrier for a, b in zip(path, path[1:]))
    assert top == pytest.approx(J[i, j], rel=1e-12)


def test_edges_keep_the_lowest_number_and_say_what_it_is():
    net = MinimaNetwork([0.0, 0.1, 0.2], ["a", "a", "b"])
    assert net.add([[0, 1]], 0.5, "bound") == 1
    assert net.add([[1, 0]], 0.7, "certified") == 0  # higher: kept out
    assert net.add([[0, 1]], 0.5, "certified") == 1  # same number, better proof
    assert net.edges[(0, 1)].status == "certified"
    net.add([[1, 2]], 0.3, "bound")
    assert net.join_status(0, 2) == "bound" and net.join_status(0, 1) == "certified"
    assert net.join_status(0, 0) == "certified"
    s = net.summary(levels=[0.4, 0.6])
    assert s["sets"]["a"]["join_level"] == pytest.approx(0.5)
    assert s["sets"]["b"]["join_level"] == pytest.approx(0.2)  # one minimum: its loss
    assert [b["basins"] for b in s["basins"]] == [2, 1]
    assert [b["mixed"] for b in s["basins"]] == [1, 1]  # {1, 2} at 0.3, then all
    assert s["basins"][0]["per_set"] == {"a": 2, "b": 1}
    assert s["edge_status"] == {"certified": 1, "barrier-free": 0, "bound": 1}


def test_bad_edges_and_networks_are_named():
    net = MinimaNetwork([0.0, 1.0], None)
    with pytest.raises(ValueError, match="below the higher endpoint"):
        net.add([[0, 1]], 0.5)
    with pytest.raises(ValueError, match="indices must lie"):
        net.add([[0, 2]], 2.0)
    with pytest.raises(ValueError, match="to itself"):
        net.add([[1, 1]], 2.0)
    with pytest.raises(ValueError, match="status"):
        net.add([[0, 1]], 2.0, "proven")
    with pytest.raises(ValueError, match="integer indices"):
        net.add(np.array([[0.0, 1.0]]), 2.0)
    with pytest.raises(ValueError, match="non-finite loss"):
        MinimaNetwork([0.0, np.nan], None)
    with pytest.raises(ValueError, match="labels"):
        MinimaNetwork([0.0, 1.0], ["a"])
    net.add([[0, 1]], np.nan)  # an unfinished pair: no edge
    assert not net.edges and np.isinf(net.join_levels()[0, 1])


def prim_length(D):
    n = len(D)
    inside, total = {0}, 0.0
    while len(inside) < n:
        best = min((D[i, j], j) for i in inside for j in range(n) if j not in inside)
        total += best[0]
        inside.add(best[1])
    return total


def test_plan_starts_on_the_spanning_tree_then_crosses_the_joins():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(9, 4))
    D = np.linalg.norm(X[:, None] - X[None], axis=2)
    P = spanning_pairs(X)
    assert P.shape == (8, 2) and sum(D[i, j] for i, j in P) == pytest.approx(prim_length(D))
    net = MinimaNetwork(np.zeros(9), None)
    np.testing.assert_array_equal(plan_pairs(net, 100, X), P)
    # two components measured: the first connect pair joins them
    net.add([[0, 1], [1, 2], [3, 4]], [1.0, 2.0, 0.5])
    Q = plan_pairs(net, 3, X)
    first = set(Q[0])
    comps = [{0, 1, 2}, {3, 4}]
    assert any(first & c for c in comps) and not any(first <= c for c in comps)
    assert not {tuple(q) for q in Q} & set(net.edges)
    assert len({tuple(q) for q in Q}) == len(Q)
    # everything joined at its endpoints' level: no room anywhere, nothing to plan
    flat = MinimaNetwork(np.zeros(3), None)
    flat.add([[0, 1], [1, 2]], 0.0)
    assert len(plan_pairs(flat, 5, X[:3])) == 0
    with pytest.raises(ValueError, match="budget"):
        plan_pairs(net, -1, X)
    with pytest.raises(ValueError, match="distances"):
        plan_pairs(net, 2, distances=np.zeros((3, 3)))


def test_muller_brown_map_finds_both_saddles_through_the_intermediate_minimum(tmp_path):
    mb = analytic.muller_brown()
    A, B, C = mb.minima
    thetas = np.stack([A, B, C])
    net = map_minima(mb, thetas, ["deep", "deep", "middle"], out=tmp_path / "map",
                     progress=False, steps=50, n_points=30, certify=dict(n_images=30))
    J = net.join_levels()
    assert J[0, 2] == pytest.approx(-40.665, abs=2e-3)  # A - C: the first saddle
    assert J[1, 2] == pytest.approx(-72.249, abs=2e-3)  # C - B: the second
    assert J[0, 1] == pytest.approx(-40.665, abs=2e-3)  # A - B: through C
    assert net.join_status(0, 1) == "certified"
    assert len(net.history) == 2 and net.history[0]["edges"] == 2  # the tree, then A-B
    assert (0, 1) in net.edges and net.edges[(0, 1)].barrier >= J[0, 1] - 1e-9
    assert sorted(p.name for p in (tmp_path / "map").iterdir()) == ["pass0.npz",
                                                                    "pass1.npz"]
    # resumed from its files: the same network, no path found again
    again = map_minima(mb, thetas, ["deep", "deep", "middle"], out=tmp_path / "map",
                       progress=False, steps=50, n_points=30, certify=dict(n_images=30))
    np.testing.assert_allclose(again.join_levels(), J)
    lay = disconnectivity_layout(net)
    np.testing.assert_allclose(lay["y"][:3], net.losses)
    assert sorted(lay["y"][3:]) == pytest.approx([-72.249, -40.665], abs=2e-3)
    assert not lay["log"] and lay["unjoined"] == 0


def test_disconnectivity_graph_is_drawn_with_unmeasured_joins_dotted():
    losses = np.array([1e-9, 2e-9, 1e-3, 2e-3])
    net = MinimaNetwork(losses, ["LBFGS-train", "LBFGS-train", "SGD-train", "SGD-train"])
    net.add([[0, 1], [2, 3]], [0.05, 0.004])
    lay = disconnectivity_layout(net)
    assert lay["log"] and lay["unjoined"] == 1 and lay["top"] > 0.05
    assert sum(not s[4] for s in lay["segments"]) == 3  # the top merge: 2 legs + bar
    fig = plot_disconnectivity({"raw": net, "aligned": net})
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"
    assert "1 joins unmeasured" in fig.axes[0].get_title()
    assert figure_bytes(fig, ("png",))["png"][:4] == b"\x89PNG"


def test_network_files_round_trip_and_refuse_corruption(tmp_path):
    rng = np.random.default_rng(0)
    losses, edges = random_network(rng, n=6, p=0.6)
    net = MinimaNetwork(losses, list("aaabbb"))
    net.add(np.array(list(edges)), list(edges.values()), "certified", source="pass 0")
    net.checkpoint("one")
    for name in ("net.json", "net.npz"):
        back = MinimaNetwork.load(net.save(tmp_path / name))
        np.testing.assert_allclose(back.join_levels(), net.join_levels())
        assert back.edges == net.edges and list(back.labels) == list("aaabbb")
    d = json.loads((tmp_path / "net.json").read_text())
    assert d["history"][0]["label"] == "one" and "_joins" not in d["history"][0]
    assert {e["status"] for e in d["edges"]} == {"certified"}
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(Exception, match="bad.npz"):
        MinimaNetwork.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="no such network"):
        MinimaNetwork.load(tmp_path / "missing.json")
    nx = pytest.importorskip("networkx")
    G = net.to_networkx()
    assert G.number_of_edges() == len(edges)
    nx.write_graphml(G, tmp_path / "net.graphml")
