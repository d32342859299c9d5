"""Receptive-field analysis, memory model and split search of patch-based inference.

Patch-based inference (MCUNetV2, Lin et al. 2021) runs the first, high-resolution
*stage* of a CNN patch by patch: the stage's output tensor (the *split*) is cut
into an n x n grid, and each output patch is computed from the input region it
needs, through every op of the stage. Neighbouring patches' input regions overlap
(the *halo*), so some work is recomputed; in exchange only one patch's
intermediate tensors are live at a time.

This module owns the analysis, on the real graph (`onnx` or `quant` ops alike):

- `stage_ops`/`candidates`: which tensors are splits. A split is a tensor that
  is the only runtime value live after its producer in program order, so every
  path from the input to the outputs passes through it (residual branches and
  concats inside the stage are fine); the stage is every runtime op before it.
  Every stage op must be spatially local: convolutions and pools (stride,
  dilation, padding), elementwise ops (broadcast constants allowed), channel
  concat, spatial pad. A global pool or a spatially broadcast runtime operand
  (an SE block's gate) is a barrier: no split lies beyond it. One walk over the
  ops: linear in their number.
- `analyze`: for one split and grid, per tensor and axis, the interval each
  patch needs (a hull over the tensor's consumers), computed backwards in one
  reverse walk of the stage: O(ops * n) since H and W are independent. From it
  the halo overlap, the recomputed MACs and the largest tile of every tensor.
- `peak_sram`: peak SRAM of layer-by-layer and patch-based execution, placed by
  the C backend's arena planner (`qcc.backends.c.arena.plan`), with and without
  the input buffer.
- `search`: the split (and, for `auto`, the grid) that minimises the peak SRAM
  without the input buffer, under a limit on the recompute overhead, and the
  Pareto frontier of (peak SRAM, overhead).

Patch-by-patch execution of an analysed stage is `qcc.patches`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from qcc import numerics as nx
from qcc.dialects import onnx as donnx
from qcc.dialects import quant as q
from qcc.errors import QccError

# ONNX ops that are elementwise over H and W (operands broadcast, nothing spatial).
_POINTWISE_ONNX = {
    "Relu", "Clip", "Add", "Sub", "Mul", "Div", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu",
    "Elu", "Selu", "Softplus", "Exp", "Neg", "Abs", "Identity", "Cast", "Mish", "Gelu", "Erf", "Sqrt", "Pow",
    "BatchNormalization", "QuantizeLinear", "DequantizeLinear", "Max", "Min", "Sum", "PRelu", "Concat",
    "Swish", "Celu", "Softsign", "Sin", "Cos", "Tan", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Log",
}
# quant.channel_scale multiplies by one scale per (sample, channel): spatially a
# broadcast operand, so (like quant.mul) pointwise when the scale is a constant and
# a barrier when it is computed at run time (an SE gate needs the whole tensor):
# `_tileable` tells the two apart.
_POINTWISE_QUANT = (q.QuantizeOp, q.DequantizeOp, q.RequantizeOp, q.AddOp, q.MulOp, q.ClampOp, q.LookupOp,
                    q.ConcatOp, q.ChannelScaleOp)
_WINDOW_ONNX = {"Conv", "MaxPool", "AveragePool"}
_WINDOW_QUANT = (q.ConvOp, q.MaxPoolOp, q.AvgPoolOp)


@dataclass(frozen=True)
class Window:
    """How one spatial axis of an op's output reads its input: output o reads
    input [o*stride - pad, o*stride - pad + (kernel-1)*dilation + 1)."""

    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    pad: int = 0  # at the beginning of the axis

    def needs(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unclipped input interval of output interval [lo, hi)."""
        return lo * self.stride - self.pad, (hi - 1) * self.stride - self.pad + (self.kernel - 1) * self.dilation + 1


def shape_of(v: SSAValue) -> tuple[int, ...]:
    t = v.type
    return tuple(t.get_shape()) if isinstance(t, TensorType) else ()


def attr_of(op: Operation, key: str, default: Any = None) -> Any:
    a = op.attributes.get(key)
    return default if a is None else donnx.attr_py(a)


def op_kind(op: Operation) -> str | None:
    if isinstance(op, _WINDOW_QUANT) or isinstance(op, donnx.OnnxOp) and op.onnx_type in _WINDOW_ONNX:
        return "window"
    if isinstance(op, _POINTWISE_QUANT) or isinstance(op, donnx.OnnxOp) and op.onnx_type in _POINTWISE_ONNX:
        return "pointwise"
    if isinstance(op, q.PadOp):
        return "pad"
    return None


def windows(op: Operation) -> tuple[Window, Window] | None:
    """The (H, W) windows of a window or pad op, or None when it cannot be tiled
    (auto_pad, ceil-mode average pooling, not 2-D)."""
    if isinstance(op, q.PadOp):
        pads = list(attr_of(op, "pads"))
        nd = len(pads) // 2
        if nd != 4 or pads[0] or pads[nd]:
            return None
        return Window(pad=int(pads[2])), Window(pad=int(pads[3]))
    x, y = shape_of(op.operands[0]), shape_of(op.results[0])
    if len(x) != 4 or len(y) != 4:
        return None
    if attr_of(op, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return None
    is_conv = isinstance(op, q.ConvOp) or isinstance(op, donnx.OnnxOp) and op.onnx_type == "Conv"
    ks = attr_of(op, "kernel_shape")
    if ks is None and is_conv:
        ks = shape_of(op.operands[1])[2:]
    if not is_conv and attr_of(op, "ceil_mode", 0) and not isinstance(op, q.MaxPoolOp) and not (
            isinstance(op, donnx.OnnxOp) and op.onnx_type == "MaxPool"):
        return None  # ceil-mode averages count their partial windows differently

    def ints(key: str, default: list[int]) -> list[int]:
        v = attr_of(op, key)
        return default if v is None else [int(x) for x in v]

    ks = [] if ks is None else [int(k) for k in ks]
    strides, dil, pads = ints("strides", [1, 1]), ints("dilations", [1, 1]), ints("pads", [0, 0, 0, 0])
    if len(ks) != 2 or len(strides) != 2 or len(dil) != 2 or len(pads) != 4:
        return None
    return Window(ks[0], strides[0], dil[0], pads[0]), Window(ks[1], strides[1], dil[1], pads[1])


def op_macs(op: Operation) -> int:
    """Multiply-accumulates of one inference (conv and fully connected ops; the
    report's convention: pools and elementwise ops count 0)."""
    if isinstance(op, donnx.OnnxOp):
        from qcc.passes.assign_bit_widths import macs

        return macs(op)
    y = shape_of(op.results[0]) if op.results else ()
    if isinstance(op, q.ConvOp):
        return int(np.prod(y)) * int(np.prod(shape_of(op.operands[1])[1:]))
    if isinstance(op, q.FullyConnectedOp):
        return int(np.prod(y)) * int(shape_of(op.operands[1])[1])
    return 0


def tensor_bytes(v: SSAValue, numel: int | None = None) -> int:
    t = v.type
    if not isinstance(t, TensorType):
        return 0
    qp = q.qparams_of(t)
    if qp is not None:
        item = nx.storage_dtype(qp.bits).itemsize
    else:
        try:
            item = donnx.numpy_dtype(t.element_type).itemsize
        except (ValueError, AttributeError):
            item = 4
    return int(np.prod(t.get_shape()) if numel is None else numel) * item


# ------------------------------------------------------------------ the graph


@dataclass
class Graph:
    """@main in program order, reduced to what patching needs."""

    ops: list[Operation]  # runtime ops (reachable from the graph inputs), in order
    index: dict[Operation, int]
    runtime: set[SSAValue]  # values computed at run time
    outputs: list[SSAValue]
    last_use: dict[SSAValue, int]  # index of the last runtime op reading the value (len(ops) for outputs)
    input: SSAValue  # the stage input: the graph input, or its quant.quantize when that is its only use
    first: int  # index of the first op after the stage input's producer
    total_macs: int
    macs: dict[Operation, int] = field(default_factory=dict)  # per runtime op, computed once
    wins: dict[Operation, tuple[Window, Window] | None] = field(default_factory=dict)  # window and pad ops


def graph(module: ModuleOp) -> Graph:
    from qcc.interpreter import main_func

    fn = main_func(module)
    if len(fn.args) != 1:
        raise QccError("patch-based inference needs a model with exactly one input")
    block = fn.body.block
    runtime: set[SSAValue] = set(fn.args)
    ops: list[Operation] = []
    outputs: list[SSAValue] = []
    total = 0
    macs: dict[Operation, int] = {}
    for op in block.ops:
        if isinstance(op, func.ReturnOp):
            outputs = list(op.operands)
            break
        m = op_macs(op)
        total += m
        if any(v in runtime for v in op.operands):
            ops.append(op)
            runtime.update(op.results)
            macs[op] = m
    index = {op: i for i, op in enumerate(ops)}
    last: dict[SSAValue, int] = {}
    for i, op in enumerate(ops):
        for v in op.operands:
            if v in runtime:
                last[v] = i
    for v in outputs:
        last[v] = len(ops)
    x = fn.args[0]
    first = 0
    uses = list(x.uses)
    if len(uses) == 1 and isinstance(uses[0].operation, q.QuantizeOp) and ops and ops[0] is uses[0].operation:
        x, first = ops[0].results[0], 1
    wins = {op: windows(op) for op in ops if op_kind(op) in ("window", "pad")}
    return Graph(ops, index, runtime, outputs, last, x, first, total, macs, wins)


def _tileable(op: Operation, g: Graph) -> bool:
    runtime = g.runtime
    kind = op_kind(op)
    if kind is None or len(op.results) != 1:
        return False
    y = shape_of(op.results[0])
    if len(y) != 4:
        return False
    if kind in ("window", "pad"):
        if g.wins[op] is None:
            return False
        return all(v not in runtime for v in op.operands[1:])  # weights and bias are constants
    is_concat = isinstance(op, q.ConcatOp) or isinstance(op, donnx.OnnxOp) and op.onnx_type == "Concat"
    if is_concat and attr_of(op, "axis", 0) % 4 in (2, 3):
        return False
    per_channel = isinstance(op, donnx.OnnxOp) and op.onnx_type == "BatchNormalization"
    for v in op.operands[:1] if per_channel else op.operands:  # BatchNormalization: [C] operands are per channel
        s = shape_of(v)
        if v in runtime:
            if len(s) != 4 or s[2:] != y[2:]:
                return False  # e.g. an SE gate broadcast over H and W: needs a global pool first
        elif (s[-2] if len(s) >= 2 else 1) != 1 or (s[-1] if s else 1) != 1:
            return False  # a constant that varies over H or W (right-aligned broadcasting)
    return True


def candidates(g: Graph) -> list[int]:
    """Indices of ops whose result is a split: the only runtime value live after
    the op, a 4-D tensor larger than 1x1, with every op from the stage input to
    it tileable. One walk; stops at the first op that cannot be tiled."""
    out: list[int] = []
    live = {g.input} if g.last_use.get(g.input, -1) >= g.first else set()
    for i in range(g.first, len(g.ops)):
        op = g.ops[i]
        if not _tileable(op, g):
            break
        for v in op.operands:
            if g.last_use.get(v) == i:
                live.discard(v)
        for r in op.results:
            if g.last_use.get(r, -1) > i:
                live.add(r)
        r = op.results[0]
        if len(live) == 1 and r in live and min(shape_of(r)[2:]) > 1:
            out.append(i)
    return out


# ------------------------------------------------------------------ analysis


@dataclass
class Analysis:
    """One split and grid. `regions[v]` = (H intervals, W intervals), each a pair
    (lo, hi) of int arrays over the n rows (columns) of patches, clipped to the
    tensor; every stage value that the split depends on has one."""

    g: Graph
    split: int  # index of the split's producer in g.ops
    grid: tuple[int, int]
    stage: list[Operation]  # g.ops[g.first : split + 1]
    regions: dict[SSAValue, tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]]
    stage_macs: int = 0  # layer by layer
    patch_macs: int = 0  # patch by patch, halos included
    tile_bytes: dict[SSAValue, int] = field(default_factory=dict)  # the largest tile of each stage value
    tile_macs: dict[Operation, int] = field(default_factory=dict)  # per stage op, summed over the patches

    @property
    def split_value(self) -> SSAValue:
        return self.g.ops[self.split].results[0]

    @property
    def extra_macs(self) -> int:
        return self.patch_macs - self.stage_macs

    @property
    def overhead(self) -> float:
        """Recomputed MACs relative to the whole model's MACs (MCUNetV2's measure)."""
        return self.extra_macs / self.g.total_macs if self.g.total_macs else 0.0

    def halo(self, v: SSAValue | None = None) -> float:
        """Sum of patch areas over the tensor's area, minus 1 (the input by default)."""
        v = self.g.input if v is None else v
        (hl, hh), (wl, wh) = self.regions[v]
        s = shape_of(v)
        return float((hh - hl).sum() * (wh - wl).sum()) / (s[2] * s[3]) - 1.0


def grid_bounds(size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.arange(n + 1, dtype=np.int64) * size // n
    return edges[:-1], edges[1:]


def analyze(g: Graph, split: int, grid: tuple[int, int]) -> Analysis:
    """Backward interval propagation from the split's n x n grid to the stage input."""
    y = g.ops[split].results[0]
    h, w = shape_of(y)[2:]
    if not (1 <= grid[0] <= h and 1 <= grid[1] <= w):
        raise QccError(f"--patch {grid[0]}x{grid[1]}: the split tensor is only {h}x{w}")
    stage = g.ops[g.first:split + 1]
    regions: dict[SSAValue, Any] = {y: (grid_bounds(h, grid[0]), grid_bounds(w, grid[1]))}

    def need(v: SSAValue, reg) -> None:
        if v not in g.runtime:
            return
        old = regions.get(v)
        if old is None:
            regions[v] = reg
        else:  # hull over consumers
            regions[v] = tuple((np.minimum(o[0], r[0]), np.maximum(o[1], r[1])) for o, r in zip(old, reg))

    a = Analysis(g, split, grid, stage, regions)
    for op in reversed(stage):
        r = op.results[0]
        reg = regions.get(r)
        if reg is None:
            continue  # nothing of the split depends on it
        ys = shape_of(r)
        m = g.macs[op]
        per_pixel = m // max(1, ys[2] * ys[3])
        a.stage_macs += m
        a.tile_macs[op] = per_pixel * int((reg[0][1] - reg[0][0]).sum()) * int((reg[1][1] - reg[1][0]).sum())
        a.patch_macs += a.tile_macs[op]
        if op_kind(op) == "pointwise":
            for v in op.operands:
                need(v, reg)
            continue
        x = op.operands[0]
        xs = shape_of(x)
        ins = []
        for ax, win in enumerate(g.wins[op]):  # type: ignore[arg-type]
            lo, hi = win.needs(*reg[ax])
            ins.append((np.clip(lo, 0, xs[2 + ax]), np.clip(hi, 0, xs[2 + ax])))
        need(x, tuple(ins))
    for v, ((hl, hh), (wl, wh)) in regions.items():
        if v is not y:
            s = shape_of(v)
            a.tile_bytes[v] = tensor_bytes(v, s[0] * s[1] * int((hh - hl).max()) * int((wh - wl).max()))
    return a


# ------------------------------------------------------------------ memory


@dataclass
class Memory:
    sram_peak_bytes: int
    sram_peak_bytes_excl_input: int


def _plan(items: list[tuple[str, int, int, int, bool]]) -> Memory:
    from qcc.backends.c.arena import Buffer, plan

    both = plan([Buffer(n, b, s, e) for n, b, s, e, _ in items])
    excl = plan([Buffer(n, b, s, e) for n, b, s, e, is_in in items if not is_in])
    return Memory(both, excl)


def layer_memory(g: Graph) -> Memory:
    """Layer by layer: every runtime tensor from its producer to its last reader,
    the stage input from the start; placed by the C backend's arena planner."""
    items = [("input", tensor_bytes(g.input), -1, g.last_use.get(g.input, -1), True)]
    for i in range(g.first, len(g.ops)):
        for r in g.ops[i].results:
            if r in g.last_use:
                items.append((f"t{i}", tensor_bytes(r), i, g.last_use[r], False))
    return _plan(items)


def patch_memory(a: Analysis) -> Memory:
    """Patch based: one patch's tiles (the largest tile of each tensor, reused by
    every patch) live over the stage's steps, the full input through the whole
    stage, the full split buffer from the first patch on; the rest layer by layer."""
    g = a.g
    s0 = g.first
    items = [("input", tensor_bytes(g.input), -1, a.split, True)]
    for i in range(s0, a.split):
        r = g.ops[i].results[0]
        if r in a.tile_bytes:
            end = max(g.index[u.operation] for u in r.uses if u.operation in g.index
                      and g.index[u.operation] <= a.split)
            items.append((f"tile{i}", a.tile_bytes[r], i, end, False))
    y = a.split_value
    items.append(("split", tensor_bytes(y), s0, g.last_use[y], False))
    for i in range(a.split + 1, len(g.ops)):
        for r in g.ops[i].results:
            if r in g.last_use:
                items.append((f"t{i}", tensor_bytes(r), i, g.last_use[r], False))
    return _plan(items)


# ------------------------------------------------------------------ search


@dataclass
class Choice:
    analysis: Analysis
    memory: Memory

    def summary(self) -> dict:
        a = self.analysis
        op = a.g.ops[a.split]
        return {"split": _op_label(op), "split_index": a.split, "split_shape": list(shape_of(a.split_value)),
                "grid": list(a.grid), "stage_ops": len([o for o in a.stage if o.results[0] in a.regions]),
                "sram_peak_bytes": self.memory.sram_peak_bytes,
                "sram_peak_bytes_excl_input": self.memory.sram_peak_bytes_excl_input,
                "recompute_macs": a.extra_macs, "recompute_overhead": round(a.overhead, 6),
                "input_halo_overlap": round(a.halo(), 6)}


def _op_label(op: Operation) -> str:
    name = getattr(op, "node_name", "")
    return f"{op.name} '{name}'" if name else op.name


def parse_grid(text: str) -> tuple[int, int] | None:
    """'auto' -> None, 'NxM' -> (N, M); anything else is a QccError."""
    t = text.strip().lower()
    if t == "auto":
        return None
    parts = t.split("x")
    if len(parts) == 2 and all(p.isdigit() and int(p) >= 1 for p in parts):
        return int(parts[0]), int(parts[1])
    raise QccError(f"--patch '{text}': expected none, auto or NxN (e.g. 4x4)")


def search(module: ModuleOp, grid: tuple[int, int] | None, max_overhead: float = 0.2,
           max_grid: int = 8) -> tuple[Choice, list[dict], Memory]:
    """The best split for a fixed grid, or (grid None) the best split and n x n
    grid under `max_overhead`; minimises the peak SRAM without the input buffer
    (then with it, then the overhead). Returns the choice, the frontier (every
    non-dominated (peak, overhead) point among the candidates, sorted by peak)
    and the layer-by-layer memory."""
    g = graph(module)
    cands = candidates(g)
    if not cands:
        raise QccError("patch-based inference: no split point found (the first op already cannot be tiled "
                       "patch by patch, or the graph has no single-tensor cut before a global op)")
    points: list[Choice] = []
    for i in cands:
        h, w = shape_of(g.ops[i].results[0])[2:]
        grids = [grid] if grid is not None else [(n, n) for n in range(2, min(max_grid, h, w) + 1)]
        for gr in grids:
            if gr[0] > h or gr[1] > w:
                continue
            a = analyze(g, i, gr)
            points.append(Choice(a, patch_memory(a)))
    if not points:
        raise QccError(f"--patch {grid[0]}x{grid[1]}: every split tensor is smaller than the grid" if grid else
                       "patch-based inference: no split point found")

    def key(c: Choice):
        return (c.memory.sram_peak_bytes_excl_input, c.memory.sram_peak_bytes, c.analysis.overhead)

    ok = [c for c in points if grid is not None or c.analysis.overhead <= max_overhead]
    if not ok:
        raise QccError(f"--patch auto: every split costs more than {max_overhead:.0%} extra MACs")
    best = min(ok, key=key)
    frontier = []
    for c in sorted(points, key=lambda c: (c.memory.sram_peak_bytes_excl_input, c.analysis.overhead)):
        if not frontier or c.analysis.overhead < frontier[-1].analysis.overhead:
            frontier.append(c)
    return best, [c.summary() for c in frontier], layer_memory(g)


def find_split(g: Graph, grid_attr: str) -> tuple[int, tuple[int, int]] | None:
    """The op marked by `tile-patches` (attribute `grid_attr`) and its grid."""
    for i, op in enumerate(g.ops):
        a = op.attributes.get(grid_attr)
        if a is not None:
            n = [int(x) for x in donnx.attr_py(a)]
            return i, (n[0], n[1])
    return None


def check_split(g: Graph, i: int, grid: Sequence[int]) -> None:
    if i not in set(candidates(g)):
        raise QccError(f"{_op_label(g.ops[i])}: marked as a patch split, but its result does not cut the graph "
                       "after a tileable stage")
