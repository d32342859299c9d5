"""`materialize-patches`: the stage that `tile-patches` marked, rewritten into explicit per-patch subgraphs.

    %y = quant.conv %x, %w {pads = [1, 1, 1, 1], qcc.patch_grid = array<i64: 2, 1>}  : 8x8 -> 8x8
  =>
    %x0 = quant.slice %x {offsets = [0, 0, 0, 0]}            : 8x8 -> 5x8   (patch 0 and its halo)
    %y0 = quant.conv %x0, %w {pads = [1, 1, 0, 1]}            : 5x8 -> 4x8   (no padding inside the tensor)
    %s0 = quant.insert_slice %y0 {offsets = [0, 0, 0, 0]}     : 4x8 -> 8x8
    %x1 = quant.slice %x {offsets = [0, 0, 3, 0]}            : 8x8 -> 5x8
    %y1 = quant.conv %x1, %w {pads = [0, 1, 1, 1]}            : 5x8 -> 4x8
    %y  = quant.insert_slice %s0, %y1 {offsets = [0, 0, 4, 0]} : 8x8, 4x8 -> 8x8

For every patch of the grid, each stage op (`qcc.receptive_field.analyze` gives
the region of each tensor a patch needs) is cloned with its tile's shape; a
window op (conv, pool, pad) keeps the real padding only on the sides where its
tile touches the tensor's border, since inside the tensor the halo is in the
tile. An operand tile larger than the region a consumer reads (a tensor read by
several consumers, a strided window's aligned start) is cut with `quant.slice`.
The split tensor is assembled patch by patch with `quant.insert_slice`. The
result holds only ordinary quant ops on small shapes: the interpreter runs it
with its usual kernels (bit-exact with the layer-by-layer graph, as
`qcc.patches` is), and the C backend's arena planner sees small tiles with
short lifetimes. The ops the rewrite adds grow with grid size x stage ops.

Needs a quantized stage (`quant` ops); a module without `qcc.patch_grid` is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from qcc import receptive_field as rf
from qcc.dialects import quant as q
from qcc.dialects.onnx import QCC_NAME, py_attr
from qcc.errors import QccError
from qcc.patches import GRID_ATTR
from qcc.passes.fuse_residual_add import EPILOGUE_OF


def _tile_type(v: SSAValue, h: int, w: int) -> TensorType:
    t = v.type
    s = list(t.get_shape())
    return TensorType(t.element_type, [*s[:2], h, w])


def _window_attrs(op: Operation, pads: tuple[int, int, int, int]) -> dict:
    """The op's attributes with padding `pads` (top, left, bottom, right) on a tile."""
    attrs = dict(op.attributes)
    if isinstance(op, q.PadOp):
        old = list(rf.attr_of(op, "pads"))
        attrs["pads"] = py_attr([0, old[1], pads[0], pads[1], 0, old[5], pads[2], pads[3]])
        return attrs
    attrs["pads"] = py_attr(list(pads))
    attrs.pop("auto_pad", None)  # VALID at most (`rf.windows`): the explicit pads say it
    if "ceil_mode" in attrs:  # a tile's window count is exact: floor mode
        attrs["ceil_mode"] = py_attr(0)
    return attrs


def materialize(module: ModuleOp) -> int:
    """Rewrites the marked stage; returns the number of patches (0 when nothing is marked)."""
    g = rf.graph(module)
    found = rf.find_split(g, GRID_ATTR)
    if found is None:
        return 0
    split, grid = found
    rf.check_split(g, split, grid)
    a = rf.analyze(g, split, grid)
    stage = [op for op in a.stage if op.results[0] in a.regions]
    for op in stage:
        if not isinstance(op, q.QuantOp):
            raise QccError(f"materialize-patches: {op.name} in the patch stage is not quantized; the generated C "
                           "runs patches of quant ops only")
    if q.qparams_of(g.input.type) is None:
        raise QccError("materialize-patches: the stage input is not quantized (its quant.quantize has other uses)")
    split_op = g.ops[split]
    y = split_op.results[0]
    x = g.input
    xs = rf.shape_of(x)
    new_ops: list[Operation] = []
    dest: SSAValue | None = None
    for i in range(grid[0]):
        for j in range(grid[1]):
            # value -> (its tile, tile origin h, w, tile extent h, w)
            tiles: dict[SSAValue, tuple[SSAValue, int, int, int, int]] = {x: (x, 0, 0, xs[2], xs[3])}

            def fetch(v: SSAValue, h0: int, h1: int, w0: int, w1: int) -> SSAValue:
                if v not in g.runtime:
                    return v  # a constant: weights, or an operand broadcast over H and W
                t, th, tw, hh, ww = tiles[v]
                if (th, tw, hh, ww) == (h0, w0, h1 - h0, w1 - w0):
                    return t
                sl = q.SliceOp([t], [_tile_type(v, h1 - h0, w1 - w0)],
                               {"offsets": py_attr([0, 0, h0 - th, w0 - tw])})
                new_ops.append(sl)
                return sl.results[0]

            for op in stage:
                r = op.results[0]
                (hl, hh), (wl, wh) = a.regions[r]
                h0, h1, w0, w1 = int(hl[i]), int(hh[i]), int(wl[j]), int(wh[j])
                wins = g.wins.get(op)
                if wins is None:  # pointwise: the same region of every operand
                    operands = [fetch(v, h0, h1, w0, w1) for v in op.operands]
                    attrs = dict(op.attributes)
                    k = rf.attr_of(op, EPILOGUE_OF)
                    if k is not None and isinstance(operands[int(k)].owner, q.SliceOp):
                        del attrs[EPILOGUE_OF]  # the convolution's tile is cut: no longer fusable
                else:
                    xsh = rf.shape_of(op.operands[0])
                    (uh0, uh1), (uw0, uw1) = wins[0].needs(h0, h1), wins[1].needs(w0, w1)
                    ch0, ch1, cw0, cw1 = max(0, uh0), min(xsh[2], uh1), max(0, uw0), min(xsh[3], uw1)
                    pads = (ch0 - uh0, cw0 - uw0, uh1 - ch1, uw1 - cw1)
                    operands = [fetch(op.operands[0], ch0, ch1, cw0, cw1), *op.operands[1:]]
                    attrs = _window_attrs(op, pads)
                attrs.pop(GRID_ATTR, None)
                name = op.attributes.get(QCC_NAME)
                attrs[QCC_NAME] = StringAttr(f"{name.data if name else op.name}@patch{i}_{j}")
                clone = type(op)(operands, [_tile_type(r, h1 - h0, w1 - w0)], attrs)
                new_ops.append(clone)
                tiles[r] = (clone.results[0], h0, w0, h1 - h0, w1 - w0)
            t, th, tw, _, _ = tiles[y]
            ins = q.InsertSliceOp([t] if dest is None else [dest, t], [y.type],
                                  {"offsets": py_attr([0, 0, th, tw]), QCC_NAME: StringAttr(f"patch{i}_{j}")})
            new_ops.append(ins)
            dest = ins.results[0]
    assert dest is not None
    split_op.parent_block().insert_ops_before(new_ops, split_op)
    y.replace_all_uses_with(dest)
    for op in reversed(a.stage):
        if any(r.uses for r in op.results):
            raise QccError(f"materialize-patches: {op.name} of the stage is used after the split")
        op.detach()
        op.erase()
    return grid[0] * grid[1]


@dataclass(frozen=True)
class MaterializePatchesPass(ModulePass):
    name = "materialize-patches"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        materialize(op)


def for_code(module: ModuleOp) -> tuple[ModuleOp, int]:
    """What a backend compiles: a clone with the marked stage materialized and the
    number of patches, or `module` itself and 0 when nothing is marked or the stage
    is not quantized (a --float build runs layer by layer)."""
    if not any(GRID_ATTR in op.attributes for op in module.walk()):
        return module, 0
    g = rf.graph(module)
    found = rf.find_split(g, GRID_ATTR)
    if found is None or q.qparams_of(g.input.type) is None or \
            not all(isinstance(op, q.QuantOp) for op in g.ops[g.first:found[0] + 1]):
        return module, 0
    clone = module.clone()
    n = materialize(clone)
    clone.verify()
    return clone, n


def unmarked(module: ModuleOp) -> ModuleOp:
    """A clone of `module` without the tile-patches marks: what runs layer by layer."""
    clone = module.clone()
    for op in clone.walk():
        op.attributes.pop(GRID_ATTR, None)
    return clone
