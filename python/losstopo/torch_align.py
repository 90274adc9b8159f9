"""Permutation alignment of any supported torch module: specs derived, then matched.

A permutation *group* is a set of units (a layer's output features or channels, an
LSTM's hidden units) that can be reordered together without changing the function.
Each tensor of theta carries groups on some of its axes; an axis of size
outer * n * inner is read as (outer, n, inner) and its middle index permuted (a
flattened conv output: inner = the spatial size; an LSTM's gate blocks: outer = 4).

:func:`derive_spec` traces the module with torch.fx (LSTM- and GRU-like modules kept
whole), propagates which axis of every value carries which group, and merges groups
that must move together (residual additions, elementwise products). Groups that reach
the output, meet a fixed tensor (an input, a constant, a tensor outside theta) or are
reduced away stay fixed. The spec is then checked: random permutations of its groups
must leave the module's outputs unchanged on the example inputs, else a ValueError.
The first operation no rule covers is named in a ValueError.

:func:`match` is weight matching (Ainsworth et al. 2022) on a spec: coordinate descent
over the groups, one linear assignment problem each.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

FIXED = "<fixed>"


@dataclass
class PermutationSpec:
    """groups: {name: size} of the free groups, in a fixed order; axes: {tensor name:
    ((group, outer, inner) or None per axis)}."""

    groups: dict
    axes: dict
    fixed: list = field(default_factory=list)  # groups that cannot move, by name


class _Groups:
    """Union-find over group names; FIXED absorbs whatever it is joined with."""

    def __init__(self):
        self.parent, self.size, self.order = {FIXED: FIXED}, {FIXED: 0}, []

    def new(self, name: str, size: int) -> str:
        base, k = name, 1
        while name in self.parent:
            k += 1
            name = f"{base}#{k}"
        self.parent[name], self.size[name] = name, int(size)
        self.order.append(name)
        return name

    def find(self, g):
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a, b, where: str):
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if FIXED in (ra, rb):
            self.parent[rb if ra == FIXED else ra] = FIXED
            return
        if self.size[ra] != self.size[rb]:
            raise ValueError(f"align: {where} joins groups of {self.size[ra]} and "
                             f"{self.size[rb]} units")
        self.parent[rb] = ra


def recurrent_gates(module):
    """4 for an LSTM-like module, 3 for a GRU-like one (parameters weight_ih_l0,
    weight_hh_l0 of shapes (G*H, n_in), (G*H, H)), else None."""
    p = dict(module.named_parameters(recurse=False))
    if "weight_ih_l0" not in p or "weight_hh_l0" not in p:
        return None
    rows, hidden = p["weight_hh_l0"].shape
    if rows % hidden or rows // hidden not in (3, 4):
        return None
    return rows // hidden


# Equivariant along the units' axis (softmax over it too: it permutes with them).
ELEMENTWISE_MODULES = ("ReLU", "ReLU6", "Softplus", "Tanh", "Sigmoid", "GELU", "SiLU", "ELU",
                       "LeakyReLU", "Mish", "Hardtanh", "Softsign", "Identity", "Dropout",
                       "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "Softmax",
                       "LogSoftmax")
POOLING_MODULES = ("AvgPool1d", "AvgPool2d", "AvgPool3d", "MaxPool1d", "MaxPool2d",
                   "MaxPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
                   "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
                   "AdaptiveMaxPool3d")
ELEMENTWISE_NAMES = ("relu", "relu6", "tanh", "sigmoid", "softplus", "gelu", "silu", "elu",
                     "leaky_relu", "mish", "dropout", "contiguous", "clone", "abs", "exp",
                     "neg", "hardtanh", "softsign", "softmax", "log_softmax")
POOLING_NAMES = ("max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d",
                 "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
                 "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
                 "adaptive_max_pool3d")
BINARY = (operator.add, operator.sub, operator.mul, operator.truediv)
BINARY_NAMES = ("add", "sub", "mul", "div")


def _name_of(target) -> str:
    return getattr(target, "__name__", str(target))


class _Deriver:
    def __init__(self, module, theta_names, example, unused=()):
        import torch
        import torch.fx

        self.torch = torch
        self.groups = _Groups()
        self.axes = {}  # tensor name -> [(group, outer, inner) or None per axis]
        self.module = module

        class Tracer(torch.fx.Tracer):
            def is_leaf_module(self, m, qualname):
                return recurrent_gates(m) is not None or super().is_leaf_module(m, qualname)

        try:
            graph = Tracer().trace(module)
        except Exception as e:  # fx's own words: data-dependent control flow and the like
            raise ValueError(f"align: the module cannot be traced by torch.fx "
                             f"({str(e).splitlines()[0]})") from e
        self.gm = torch.fx.GraphModule(module, graph)
        from torch.fx.passes.shape_prop import ShapeProp

        with torch.no_grad():
            ShapeProp(self.gm).propagate(example)
        self.theta_names = set(theta_names)
        self.unused = set(unused)
        self.tags = {}

    # ----------------------------------------------------------------- helpers
    def shape(self, node):
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def tag(self, a):
        from torch.fx import Node

        return self.tags.get(a) if isinstance(a, Node) else None

    def set_axes(self, name: str, axes):
        self.axes[name] = list(axes)

    def unsupported(self, node, why: str = ""):
        target = node.target if node.op != "call_module" else type(
            self.gm.get_submodule(node.target)).__name__
        raise ValueError(f"align: unsupported operation {node.op} {_name_of(target)!s} at "
                         f"{node.name!r}{': ' + why if why else ''} (supported: Linear, "
                         "Conv1d/2d/3d, BatchNorm, LayerNorm, pooling, flatten, "
                         "elementwise activations, residual additions, LSTM/GRU)")

    def join_tags(self, a, b, node):
        """Two operands of an elementwise operation: their groups move together; a
        fixed tensor that varies along the permuted axis holds the group still."""
        ta, tb = self.tag(a), self.tag(b)
        if ta is None and tb is None:
            return None
        r = len(self.shape(node) or ())
        for t, other in ((ta, b), (tb, a)):
            if t is None or self.tag(other) is not None:
                continue
            s = self.shape(other) if hasattr(other, "meta") else None
            k = t[0] - (r - len(s)) if s is not None else -1
            if s is not None and 0 <= k < len(s) and s[k] > 1:
                self.groups.union(t[1], FIXED, node.name)
        if ta is not None and tb is not None:
            if ta[0] != tb[0] or ta[2] != tb[2]:
                self.unsupported(node, "its operands carry units on different axes")
            self.groups.union(ta[1], tb[1], node.name)
        return ta if ta is not None else tb

    # ------------------------------------------------------------------- rules
    def module_rule(self, node):
        torch = self.torch
        nn = torch.nn
        m = self.gm.get_submodule(node.target)
        kind = type(m).__name__
        x = node.args[0] if node.args else None
        tin = self.tag(x)
        shape_in = self.shape(x) if x is not None else None
        own = {n: p for n, p in m.named_parameters(recurse=False)}
        own.update({n: b for n, b in m.named_buffers(recurse=False)
                    if b is not None and b.is_floating_point()})
        pre = node.target + "."
        gates = recurrent_gates(m)
        if isinstance(m, nn.Linear):
            if tin is not None and tin[0] != len(shape_in) - 1:
                self.unsupported(node, "its input's units are not on the last axis")
            g = self.groups.new(node.target, m.out_features)
            self.set_axes(pre + "weight", [(g, 1, 1), None if tin is None else
                                           (tin[1], 1, tin[2])])
            if m.bias is not None:
                self.set_axes(pre + "bias", [(g, 1, 1)])
            return (len(self.shape(node)) - 1, g, 1)
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            if m.groups != 1:
                self.unsupported(node, "grouped convolution")
            if tin is not None and (tin[0] != 1 or tin[2] != 1):
                self.unsupported(node, "its input's units are not its channels")
            g = self.groups.new(node.target, m.out_channels)
            nd = m.weight.ndim
            self.set_axes(pre + "weight", [(g, 1, 1), None if tin is None else (tin[1], 1, 1)]
                          + [None] * (nd - 2))
            if m.bias is not None:
                self.set_axes(pre + "bias", [(g, 1, 1)])
            return (1, g, 1)
        if isinstance(m, nn.modules.batchnorm._BatchNorm) or isinstance(m, nn.LayerNorm):
            if isinstance(m, nn.LayerNorm):
                if len(m.normalized_shape) != 1:
                    self.unsupported(node, "LayerNorm over more than the last axis")
                want = len(shape_in) - 1
            else:
                want = 1
            if tin is not None and (tin[0] != want or tin[2] != 1):
                self.unsupported(node, "its input's units are not on its normalized axis")
            for n in own:
                self.set_axes(pre + n, [None if tin is None else (tin[1], 1, 1)])
            return tin
        if kind in ELEMENTWISE_MODULES:
            return tin
        if kind in POOLING_MODULES:
            if tin is not None and tin[0] != 1:
                self.unsupported(node, "pooling over the units' axis")
            return tin
        if isinstance(m, nn.Flatten):
            return self.reshape_rule(node, tin, shape_in, self.shape(node))
        if gates is not None:
            return self.recurrent_rule(node, m, gates, tin, shape_in, pre)
        if not own and not any(self.tags.get(a) is not None for a in node.all_input_nodes):
            return None  # no tensors of its own, on fixed values only (the input's)
        return self.unsupported(node)

    def recurrent_rule(self, node, m, gates, tin, shape_in, pre):
        names = [n for n, _ in m.named_parameters(recurse=False)]
        extra = [n for n in names if not n.endswith("_l0")]
        if extra or getattr(m, "bidirectional", False) or getattr(m, "proj_size", 0):
            self.unsupported(node, "only one-layer, one-direction recurrences without "
                             "projections")
        if tin is not None and (tin[0] != len(shape_in) - 1 or tin[2] != 1):
            self.unsupported(node, "its input's units are not its features")
        hidden = dict(m.named_parameters(recurse=False))["weight_hh_l0"].shape[1]
        g = self.groups.new(node.target, hidden)
        block = (g, gates, 1)
        self.set_axes(pre + "weight_ih_l0", [block, None if tin is None else (tin[1], 1, 1)])
        self.set_axes(pre + "weight_hh_l0", [block, (g, 1, 1)])
        for b in ("bias_ih_l0", "bias_hh_l0"):
            if b in names:
                self.set_axes(pre + b, [block])

        def out_tag(meta):
            if not hasattr(meta, "shape"):  # a tuple of outputs (TensorMetadata is one too)
                return tuple(out_tag(t) for t in meta)
            s = tuple(meta.shape)
            return (len(s) - 1, g, 1) if s and s[-1] == hidden else None

        return out_tag(node.meta.get("tensor_meta"))

    def reshape_rule(self, node, tin, shape_in, shape_out):
        if tin is None:
            return None
        if shape_out == shape_in:
            return tin
        a = tin[0]
        if (shape_out is not None and len(shape_out) == a + 1
                and shape_out[:a] == shape_in[:a]):
            inner = int(np.prod(shape_in[a + 1:], dtype=np.int64))
            return (a, tin[1], tin[2] * inner)
        return self.unsupported(node, "a reshape that moves the units' axis")

    def reduce_rule(self, node, tin, shape_in):
        if tin is None:
            return None
        dims = node.kwargs.get("dim", node.kwargs.get(
            "axis", node.args[1] if len(node.args) > 1 else None))
        keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
        nd = len(shape_in)
        dims = range(nd) if dims is None else ([dims] if isinstance(dims, int) else dims)
        dims = {d % nd for d in dims}
        if tin[0] in dims:
            out = None  # reduced over the units: invariant
        else:
            a = tin[0] if keep else tin[0] - sum(d < tin[0] for d in dims)
            out = (a, tin[1], tin[2])
        # max/min over a dimension return (values, indices); indices change with the units
        return (out, None) if _name_of(node.target) in ("max", "min") else out

    def getitem_rule(self, node, tin):
        idx = node.args[1]
        if isinstance(tin, tuple) and tin and not isinstance(tin[0], int):
            return tin[idx]
        if isinstance(tin, tuple) and len(tin) == 3 and isinstance(tin[0], int):
            idx = idx if isinstance(idx, tuple) else (idx,)
            if any(i is Ellipsis for i in idx) or any(not isinstance(i, (int, slice))
                                                      for i in idx):
                self.unsupported(node, "indexing a tensor whose units are permuted")
            a = tin[0]
            if a < len(idx) and idx[a] != slice(None):
                self.unsupported(node, "indexing into the permuted units")
            ints = sum(isinstance(i, int) for i in idx[:a])
            return (a - ints, tin[1], tin[2])
        if tin is None:
            return None
        return self.unsupported(node)

    def function_rule(self, node):
        torch = self.torch
        t = node.target
        name = _name_of(t) if node.op == "call_function" else t
        args = node.args
        x = args[0] if args else None
        tin = self.tag(x)
        if node.op == "call_function" and t is getattr:  # (values, indices).values
            if isinstance(tin, tuple) and tin and not isinstance(tin[0], int):
                return tin[0] if args[1] == "values" else None
            return None
        if name in ("size", "dim", "numel"):
            return None
        if node.op == "call_function" and t is operator.getitem:
            return self.getitem_rule(node, tin)
        if name in ELEMENTWISE_NAMES:
            return tin
        if t in BINARY or name in BINARY_NAMES:
            b = args[1] if len(args) > 1 else node.kwargs.get("other")
            return self.join_tags(x, b, node)
        if name in ("flatten", "reshape", "view"):
            return self.reshape_rule(node, tin, self.shape(x), self.shape(node))
        if name in POOLING_NAMES:
            if tin is not None and tin[0] != 1:
                self.unsupported(node, "pooling over the units' axis")
            return tin
        if name in ("mean", "sum", "amax", "amin", "max", "min") and (
                (len(args) > 1 and isinstance(args[1], (int, tuple, list)))
                or "dim" in node.kwargs or "axis" in node.kwargs):
            return self.reduce_rule(node, tin, self.shape(x))
        if name in ("mean", "sum") and tin is not None:  # everything reduced
            return None
        if node.op == "call_function" and t in (torch.relu, torch.tanh, torch.sigmoid):
            return tin
        if not any(self.tags.get(a) is not None for a in node.all_input_nodes):
            return None  # on fixed values only (the input's own preprocessing)
        return self.unsupported(node)

    def run(self):
        for node in self.gm.graph.nodes:
            if node.op in ("placeholder", "get_attr"):
                self.tags[node] = None
            elif node.op == "call_module":
                self.tags[node] = self.module_rule(node)
            elif node.op in ("call_function", "call_method"):
                self.tags[node] = self.function_rule(node)
            elif node.op == "output":
                def fix(t):
                    if isinstance(t, tuple) and t and not isinstance(t[0], int):
                        for u in t:
                            fix(u)
                    elif t is not None:
                        self.groups.union(t[1], FIXED, "the output")

                out = node.args[0]
                for a in (out if isinstance(out, (tuple, list)) else (out,)):
                    fix(self.tag(a))
        return self.spec()

    def spec(self) -> PermutationSpec:
        G = self.groups
        # a tensor outside theta (frozen, a buffer) cannot be permuted: its groups stay
        for name, axes in self.axes.items():
            if name not in self.theta_names and name not in self.unused:
                for ax in axes:
                    if ax is not None:
                        G.union(ax[0], FIXED, name)
        roots = {g: G.find(g) for g in G.order}
        free = {r: G.size[r] for r in dict.fromkeys(roots.values()) if r != FIXED}
        axes = {}
        for name in self.theta_names:
            ax = self.axes.get(name)
            if ax is None:
                raise ValueError(f"align: no rule covers {name!r} (its module is not one "
                                 "alignment knows)")
            axes[name] = tuple(None if a is None or roots[a[0]] == FIXED
                               else (roots[a[0]], a[1], a[2]) for a in ax)
        return PermutationSpec(groups=free, axes=axes,
                               fixed=[g for g, r in roots.items() if r == FIXED])


def derive_spec(module, theta_names, example, unused=()) -> PermutationSpec:
    """The permutation spec of ``module`` (its tensors ``theta_names`` in theta, the
    tensors ``unused`` not read by its forward), shapes from ``example`` inputs."""
    return _Deriver(module, theta_names, example, unused).run()


# ------------------------------------------------------------------ permuting
def _move(w, a: int, spec_axis, perm):
    outer, inner = spec_axis[1], spec_axis[2]
    s = w.shape
    n = s[a] // (outer * inner)
    v = w.reshape(s[:a] + (outer, n, inner) + s[a + 1:])
    return np.take(v, perm, axis=a + 1).reshape(s)


def permute_tensors(spec: PermutationSpec, tensors: dict, perms: dict, skip=None) -> dict:
    """Each tensor with every axis's group reordered by ``perms`` (new unit i = old
    unit perms[g][i]); ``skip`` = (name, axis) left as it is."""
    out = {}
    for name, w in tensors.items():
        for a, ax in enumerate(spec.axes[name]):
            if ax is not None and (name, a) != skip:
                w = _move(w, a, ax, perms[ax[0]])
        out[name] = w
    return out


def _as_units(w, a: int, ax):
    """w with the units of axis a first, as an (n, rest) matrix."""
    outer, inner = ax[1], ax[2]
    s = w.shape
    n = s[a] // (outer * inner)
    v = w.reshape(s[:a] + (outer, n, inner) + s[a + 1:])
    return np.moveaxis(v, a + 1, 0).reshape(n, -1)


def match(spec: PermutationSpec, ref: dict, th: dict, max_iter: int, rng) -> dict:
    """Weight matching of tensors ``th`` to ``ref`` (float64 dicts): {group: perm}."""
    from scipy.optimize import linear_sum_assignment

    order = list(spec.groups)
    perms = {g: np.arange(n) for g, n in spec.groups.items()}
    where = {g: [] for g in order}
    for name, axes in spec.axes.items():
        for a, ax in enumerate(axes):
            if ax is not None:
                where[ax[0]].append((name, a, ax))
    for _ in range(max_iter):
        changed = False
        for k in rng.permutation(len(order)):
            g = order[k]
            n = spec.groups[g]
            S = np.zeros((n, n))
            for name, a, ax in where[g]:
                # the tensor with every other axis in its current order
                wb = th[name]
                for b, bx in enumerate(spec.axes[name]):
                    if bx is not None and b != a:
                        wb = _move(wb, b, bx, perms[bx[0]])
                S += _as_units(ref[name], a, ax) @ _as_units(wb, a, ax).T
            _, cols = linear_sum_assignment(S, maximize=True)
            rows = np.arange(n)
            new, old = S[rows, cols].sum(), S[rows, perms[g]].sum()
            if new > old + 1e-12 * max(1.0, abs(old)):
                perms[g] = cols
                changed = True
        if not changed:
            break
    return perms


# ------------------------------------------------------------- on a landscape
def example_landscape(module, example):
    """A TorchLandscape holding a bare module as the study would (its trainable
    parameters; BatchNorm statistics from the data), on ``example`` inputs; the loss
    (against zero labels) is never used."""
    from .torch_adapter import TorchLandscape

    if example is None:
        raise ValueError("align: a torch module needs example= inputs (a few samples, to "
                         "trace shapes and check the permutations); or pass a "
                         "TorchLandscape")
    X = np.asarray(example)
    return TorchLandscape(module, X, np.zeros(len(X), dtype=np.int64),
                          dtype="float64" if X.dtype == np.float64 else "float32")


def spec_of(landscape) -> PermutationSpec:
    """The landscape's permutation spec, derived once and checked: random
    permutations of every free group leave its outputs unchanged on its first
    samples (a ValueError otherwise)."""
    spec = getattr(landscape, "_permutation_spec", None)
    if spec is not None:
        return spec
    import torch

    example = landscape.X[: min(8, landscape.num_samples)]
    if len(example) < 2:
        example = landscape.X[:1].repeat(2, *([1] * (landscape.X.ndim - 1)))
    spec = derive_spec(landscape.module, landscape.names, example, landscape.unused_tensors())
    rng = np.random.default_rng(0)
    # away from the initialization, where normalizations' scales are 1 and shifts 0
    theta = landscape.init(1, seed=0)[0].astype(np.float64)
    theta = theta + 0.1 * rng.standard_normal(theta.shape)
    perms = {g: rng.permutation(n) for g, n in spec.groups.items()}
    moved = flat(landscape, permute_tensors(spec, tensors(landscape, theta), perms))
    with torch.no_grad():
        outs = [landscape._forward(torch.from_numpy(v.astype(landscape.dtype)), example)
                .double().numpy() for v in (theta, moved)]
    scale = max(1.0, float(np.abs(outs[0]).max()))
    tol = (1e-9 if landscape.dtype == np.float64 else 1e-4) * scale
    if not np.abs(outs[0] - outs[1]).max() <= tol:
        raise ValueError(f"align: the permutations derived for {type(landscape.module).__name__}"
                         f" change its outputs (by {np.abs(outs[0] - outs[1]).max():.3g}); "
                         "an operation was misread - the module cannot be aligned")
    landscape._permutation_spec = spec
    return spec


def tensors(landscape, theta) -> dict:
    """theta (D,) as {name: array} in the landscape's layout."""
    out, k = {}, 0
    for name, shape, size in zip(landscape.names, landscape.shapes, landscape.sizes):
        out[name] = np.asarray(theta[k:k + size]).reshape(shape)
        k += size
    return out


def flat(landscape, parts: dict) -> np.ndarray:
    return np.concatenate([np.asarray(parts[n]).reshape(-1) for n in landscape.names])


def align_landscape(landscape, ref, thetas, max_iter: int, seed: int):
    """Weight matching of every row of ``thetas`` to ``ref`` on a TorchLandscape:
    (aligned rows, perms per row as {group: perm})."""
    spec = spec_of(landscape)
    r = tensors(landscape, ref.astype(np.float64))
    out = np.empty(thetas.shape, dtype=np.result_type(thetas.dtype, np.float32))
    all_perms = []
    for p, v in enumerate(thetas):
        rng = np.random.default_rng(int(seed))
        th = tensors(landscape, v.astype(np.float64))
        perms = match(spec, r, th, max_iter, rng)
        out[p] = flat(landscape, permute_tensors(spec, tensors(landscape, v), perms))
        all_perms.append(perms)
    return out, all_perms
