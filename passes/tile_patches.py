"""`tile-patches`: choose the split and grid of patch-based inference and mark them in the IR.

    %s = quant.add %a, %b {...}   =>   %s = quant.add %a, %b {..., qcc.patch_grid = array<i64: 4, 4>}

The op whose result is the split carries `qcc.patch_grid` (rows, columns); the
module carries `qcc.patch`, a summary of the choice (split, grid, peak SRAM
layer by layer and patch based, with and without the input buffer, recompute
overhead). Everything before the split (the stage) then runs patch by patch in
the interpreters (`qcc.patches`); the analysis is `qcc.receptive_field`.

Options: `grid` = "auto" (search split and n jointly) or "NxM" (fixed grid, split
chosen to minimise peak SRAM); `max_overhead` bounds the recomputed MACs of
`auto` as a fraction of the model's MACs (default 0.2). Works on float (`onnx`)
and quantized (`quant`) modules; running it again replaces the previous choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, FloatAttr, IntegerAttr, ModuleOp, StringAttr, f64, i64
from xdsl.dialects.builtin import DenseArrayBase
from xdsl.passes import ModulePass

from qcc import receptive_field as rf
from qcc.errors import QccError
from qcc.patches import GRID_ATTR

SUMMARY_ATTR = "qcc.patch"


def _attr(v):
    if isinstance(v, bool | int):
        return IntegerAttr(int(v), i64)
    if isinstance(v, float):
        return FloatAttr(v, f64)
    if isinstance(v, list):
        return DenseArrayBase.from_list(i64, [int(x) for x in v])
    return StringAttr(str(v))


def tile(module: ModuleOp, grid: str = "auto", max_overhead: float = 0.2) -> dict:
    """Marks the best split; returns the report's `patch` section."""
    if not max_overhead >= 0:
        raise QccError(f"tile-patches: max_overhead must be a non-negative fraction, got {max_overhead}")
    fixed = rf.parse_grid(grid)
    for op in module.walk():
        op.attributes.pop(GRID_ATTR, None)
    best, frontier, layer = rf.search(module, fixed, max_overhead)
    a = best.analysis
    a.g.ops[a.split].attributes[GRID_ATTR] = DenseArrayBase.from_list(i64, list(a.grid))
    summary = best.summary()
    info = {"mode": "auto" if fixed is None else "fixed", "max_overhead": max_overhead,
            "layer_sram_peak_bytes": layer.sram_peak_bytes,
            "layer_sram_peak_bytes_excl_input": layer.sram_peak_bytes_excl_input,
            **summary,
            "sram_reduction": round(layer.sram_peak_bytes_excl_input / max(1, summary["sram_peak_bytes_excl_input"]), 4),
            "stage_macs": a.stage_macs, "total_macs": a.g.total_macs}
    module.attributes[SUMMARY_ATTR] = DictionaryAttr(
        {k: _attr(v) for k, v in info.items() if k not in ("split_shape",)})
    return {**info, "frontier": frontier}


@dataclass(frozen=True)
class TilePatchesPass(ModulePass):
    name = "tile-patches"

    grid: str = "auto"
    max_overhead: float = 0.2

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tile(op, self.grid, self.max_overhead)
