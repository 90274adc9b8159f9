"""Permutation alignment of MLP solutions (weight matching).

The hidden units of an MLP can be permuted without changing its function: unit i of
hidden layer l moves to position p_l[i] together with its incoming weights, its bias
and its outgoing weights. Two solutions far apart in weight space may therefore be
the same function, or lie in one basin once aligned (Entezari et al. 2021). Weight
matching (Ainsworth et al. 2022, "Git Re-Basin") chooses the permutations of one
network that maximize the inner product of its weights with a reference's: one
linear assignment problem per hidden layer, solved by coordinate descent over the
layers until no permutation changes.

A torch module (or a TorchLandscape) is aligned the same way on a permutation spec
derived from the module itself (:mod:`losstopo.torch_align`): convolution channels,
LSTM and GRU hidden units with their gate blocks, residual additions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ._checks import check_int
from .models import MLP


@dataclass
class Alignment:
    """``theta`` permuted to match the reference: the aligned vector(s), the
    permutations (one index array per hidden layer; per vector when batched), and
    the Euclidean distance to the reference before and after."""

    theta: np.ndarray
    perms: list
    distance_before: np.ndarray
    distance_after: np.ndarray


def permute(net: MLP, theta, perms, example=None) -> np.ndarray:
    """``theta`` with hidden layer l's units reordered by ``perms[l]``: the new unit i
    is the old unit perms[l][i]. The network's function does not change. For a torch
    module or TorchLandscape ``perms`` is {group: permutation} (as :func:`align`
    returns it) and theta is one vector."""
    tl = _torch_landscape(net, example)
    if tl is not None:
        from .torch_align import flat, permute_tensors, spec_of, tensors

        spec = spec_of(tl)
        theta = _vector("theta", theta, tl.num_params)
        if theta.ndim != 1:
            raise ValueError(f"theta: permute takes one vector ({tl.num_params},) of a torch "
                             f"network, got {theta.shape}")
        if set(perms) != set(spec.groups) or any(
                not np.array_equal(np.sort(perms[g]), np.arange(n))
                for g, n in spec.groups.items()):
            raise ValueError(f"perms: expected a permutation for each group "
                             f"{dict(spec.groups)}")
        return flat(tl, permute_tensors(spec, tensors(tl, theta), perms)).astype(
            theta.dtype, copy=False)
    net = _mlp(net)
    theta = np.asarray(theta)
    layers = net.unflatten(theta)
    hidden = net.num_layers - 1
    perms = [np.asarray(p) for p in perms]
    if len(perms) != hidden:
        raise ValueError(f"perms: expected {hidden} permutations (one per hidden layer), got "
                         f"{len(perms)}")
    for l, p in enumerate(perms):
        h = net.sizes[l + 1]
        if p.shape != (h,) or p.dtype.kind not in "iu" or not np.array_equal(np.sort(p),
                                                                            np.arange(h)):
            raise ValueError(f"perms[{l}]: expected a permutation of range({h})")
    out = []
    for l, (W, b) in enumerate(layers):
        rows = perms[l] if l < hidden else slice(None)
        cols = perms[l - 1] if l > 0 else slice(None)
        out.append((W[rows][:, cols], None if b is None else b[rows]))
    return net.flatten(out).astype(theta.dtype, copy=False)


def _mlp(net) -> MLP:
    if not isinstance(net, MLP):
        raise TypeError(f"net: alignment needs an MLP, a torch module or a TorchLandscape "
                        f"(their units are what is permuted), got {type(net).__name__}")
    return net


def _torch_landscape(net, example):
    """``net`` as a TorchLandscape when it is one or a torch module, else None (torch is
    looked at only when already imported: a torch object implies it)."""
    import sys

    if "torch" not in sys.modules or isinstance(net, MLP):
        return None
    import torch

    from .torch_adapter import TorchLandscape

    if isinstance(net, TorchLandscape):
        return net
    if isinstance(net, torch.nn.Module):
        from .torch_align import example_landscape

        return example_landscape(net, example)
    return None


def _vector(name, v, D) -> np.ndarray:
    v = np.asarray(v)
    if v.dtype.kind not in "fiu" or v.dtype == np.bool_:
        raise TypeError(f"{name}: expected real numbers, got dtype {v.dtype}")
    if v.shape[-1:] != (D,) or v.ndim not in (1, 2):
        raise ValueError(f"{name}: expected shape ({D},) or (P, {D}), got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return v


def _match(net: MLP, ref, th, max_iter: int, rng) -> List[np.ndarray]:
    """Weight matching of one vector ``th`` to ``ref`` (both float64 layer lists)."""
    from scipy.optimize import linear_sum_assignment

    hidden = net.num_layers - 1
    perms = [np.arange(net.sizes[l + 1]) for l in range(hidden)]
    for _ in range(max_iter):
        changed = False
        for l in rng.permutation(hidden):
            (Wa, ba), (Wb, bb) = ref[l], th[l]
            Wb_in = Wb[:, perms[l - 1]] if l > 0 else Wb  # its inputs in the matched order
            S = Wa @ Wb_in.T
            if ba is not None:
                S += np.outer(ba, bb)
            (Wa2, _), (Wb2, _) = ref[l + 1], th[l + 1]
            Wb2_out = Wb2[perms[l + 1]] if l + 1 < hidden else Wb2
            S += Wa2.T @ Wb2_out
            _, cols = linear_sum_assignment(S, maximize=True)
            rows = np.arange(len(cols))
            new, old = S[rows, cols].sum(), S[rows, perms[l]].sum()
            # Only a strictly better assignment is a change (a tie keeps the old one).
            if new > old + 1e-12 * max(1.0, abs(old)):
                perms[l] = cols
                changed = True
        if not changed:
            break
    return perms


def align(net: MLP, reference, theta, method: str = "weights", max_iter: int = 100,
          seed: int = 0, example=None) -> Alignment:
    """Permutes the hidden units of ``theta`` (D,) or (P, D) to match ``reference``.

    method : "weights", weight matching: per hidden layer a linear assignment problem
        (``scipy.optimize.linear_sum_assignment``) on the inner products of the two
        networks' incoming weights, biases and outgoing weights, by coordinate descent
        over the layers (in a random order from ``seed``) until no permutation
        changes, at most ``max_iter`` sweeps.

    Works for any MLP of the engine, with or without biases (the autoencoder too),
    and for a torch module or TorchLandscape (``net``; a bare module needs
    ``example=`` inputs to trace): its permutation groups are derived from the module
    (:func:`losstopo.torch_align.spec_of`) and ``perms`` is then one {group:
    permutation} per vector. The function of every network is unchanged. Returns an
    :class:`Alignment`.
    """
    tl = _torch_landscape(net, example)
    if tl is None:
        net = _mlp(net)
    if method != "weights":
        raise ValueError(f"method: expected 'weights', got {method!r}")
    max_iter = check_int("max_iter", max_iter)
    check_int("seed", seed, minimum=0)
    D = net.num_params if tl is None else tl.num_params
    ref = _vector("reference", reference, D)
    if ref.ndim != 1:
        raise ValueError(f"reference: expected one vector ({D},), got {ref.shape}")
    th = _vector("theta", theta, D)
    single = th.ndim == 1
    thetas = th.reshape(-1, D)
    if tl is not None:
        from .torch_align import align_landscape

        out, all_perms = align_landscape(tl, ref, thetas, max_iter, seed)
    else:
        ref_layers = net.unflatten(ref.astype(np.float64))
        out = np.empty(thetas.shape, dtype=np.result_type(thetas.dtype, np.float32))
        all_perms = []
        for p, v in enumerate(thetas):
            rng = np.random.default_rng(int(seed))  # the same order for every vector
            perms = _match(net, ref_layers, net.unflatten(v.astype(np.float64)), max_iter,
                           rng)
            out[p] = permute(net, v, perms)
            all_perms.append(perms)
    r64 = ref.astype(np.float64)
    before = np.linalg.norm(thetas.astype(np.float64) - r64, axis=1)
    after = np.linalg.norm(out.astype(np.float64) - r64, axis=1)
    if single:
        return Alignment(out[0], all_perms[0], before[0], after[0])
    return Alignment(out, all_perms, before, after)


def align_to_common(net: MLP, thetas, reference: Optional[int] = 0, **kw) -> Alignment:
    """Every vector of ``thetas`` (n, D) aligned to one of them (``reference``, an index)
    - a common frame for kernel PCA of a set of solutions."""
    thetas = np.asarray(thetas)
    if thetas.ndim != 2 or len(thetas) < 1:
        raise ValueError(f"thetas: expected shape (n, D), got {thetas.shape}")
    check_int("reference", reference, minimum=0, maximum=len(thetas) - 1)
    return align(net, thetas[reference], thetas, **kw)
