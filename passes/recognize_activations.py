"""`recognize-activations`: HardSigmoid, HardSwish and SiLU written out by exporters
become the single ONNX op, which lower-to-quant turns into one integer lookup table.

    clip(x + 3, 0, 6) / 6        (or * 1/6)              -> HardSigmoid(x; alpha = 1/6, beta = 0.5)
    clip(x * a + b, 0, 1)                                -> HardSigmoid(x; alpha = a, beta = b)
    x * clip(x + 3, 0, 6) / 6    (or * 1/6)              -> HardSwish(x)
    x * HardSigmoid(x; 1/6, 0.5)                         -> HardSwish(x)
    x * sigmoid(x)                                       -> Swish(x)   (ONNX opset 24's SiLU)

Clip(0, 6) is ReLU6 as PyTorch exports it; operands of Add and Mul match in either
order. Every intermediate value must have no other user (else nothing is saved)
and the result must have x's type. The new op is named after the ops it
replaces, joined by '+', so the report shows what fused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, NoneType, StringAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)

from qcc.dialects import onnx as donnx

_REL = 1e-6  # tolerance of a float32 constant that means 3, 6 or 1/6


def _op(v: SSAValue, kind: str, single_use: bool = True) -> donnx.OnnxOp | None:
    o = v.owner
    if isinstance(o, donnx.OnnxOp) and o.onnx_type == kind and len(o.results) == 1 \
            and (not single_use or len(list(v.uses)) == 1):
        return o
    return None


def _scalar(v: SSAValue) -> float | None:
    c = donnx.constant_array(v)
    if c is None or c.size != 1 or c.dtype.kind != "f":
        return None
    return float(c.reshape(-1)[0])


def _is(x: float | None, want: float) -> bool:
    return x is not None and abs(x - want) <= _REL * max(1.0, abs(want))


def _split(op: donnx.OnnxOp) -> tuple[SSAValue, float] | None:
    """(tensor operand, scalar constant) of a binary op, either order (Sub/Div: constant second)."""
    a, b = op.inputs
    c = _scalar(b)
    if c is not None:
        return a, c
    c = _scalar(a)
    if c is not None and op.onnx_type in ("Add", "Mul"):
        return b, c
    return None


def _clip_bounds(op: donnx.OnnxOp) -> tuple[float | None, float | None] | None:
    a = op.onnx_attrs()
    lo, hi = a.get("min"), a.get("max")
    for i, slot in ((1, "lo"), (2, "hi")):
        if len(op.inputs) > i and not isinstance(op.inputs[i].type, NoneType):
            c = _scalar(op.inputs[i])
            if c is None:
                return None
            lo, hi = (c, hi) if slot == "lo" else (lo, c)
    return lo, hi


def _relu6_of_x_plus_3(v: SSAValue) -> tuple[SSAValue, list[Operation]] | None:
    """x when v = clip(x + 3, 0, 6), with the ops that compute it."""
    clip = _op(v, "Clip")
    if clip is None or _clip_bounds(clip) is None:
        return None
    lo, hi = _clip_bounds(clip)
    add = _op(clip.inputs[0], "Add")
    if not (_is(lo, 0.0) and _is(hi, 6.0)) or add is None:
        return None
    s = _split(add)
    if s is None or not _is(s[1], 3.0):
        return None
    return s[0], [add, clip]


def _times_one_sixth(op: donnx.OnnxOp) -> SSAValue | None:
    """t when op is t / 6 or t * (1/6)."""
    if op.onnx_type not in ("Div", "Mul") or len(op.inputs) != 2:
        return None
    s = _split(op)
    if s is None or not _is(s[1], 6.0 if op.onnx_type == "Div" else 1 / 6):
        return None
    return s[0]


def _replace(rewriter: PatternRewriter, last: donnx.OnnxOp, kind: str, x: SSAValue, ops: list[Operation],
             attrs: dict | None = None) -> None:
    if x.type != last.results[0].type:
        return
    names = [o.node_name for o in (*ops, last) if isinstance(o, donnx.OnnxOp) and o.node_name]
    a = {k: donnx.py_attr(v) for k, v in (attrs or {}).items()}
    if names:
        a[donnx.QCC_NAME] = StringAttr("+".join(names))
    new = donnx.OPS[kind](operands=[[x]], result_types=[[x.type]], attributes=a)
    consts = [v.owner for o in (*ops, last) for v in o.operands if donnx.constant_array(v) is not None]
    rewriter.replace(last, [new], [new.outputs[0]])
    for o in reversed(ops):
        rewriter.erase(o)
    for c in dict.fromkeys(consts):
        if c.parent is not None and not list(c.results[0].uses):
            rewriter.erase(c)


class HardSigmoidFromRelu6(RewritePattern):
    """clip(x + 3, 0, 6) / 6 -> HardSigmoid(x; 1/6, 0.5)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, donnx.OnnxOp):
            return
        t = _times_one_sixth(op)
        inner = _relu6_of_x_plus_3(t) if t is not None else None
        if inner is not None:
            _replace(rewriter, op, "HardSigmoid", inner[0], inner[1], {"alpha": 1 / 6, "beta": 0.5})


class HardSigmoidFromAffineClip(RewritePattern):
    """clip(x * a + b, 0, 1) -> HardSigmoid(x; a, b)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, donnx.OnnxOp) or op.onnx_type != "Clip" or _clip_bounds(op) is None:
            return
        lo, hi = _clip_bounds(op)
        add = _op(op.inputs[0], "Add")
        if not (_is(lo, 0.0) and _is(hi, 1.0)) or add is None or _split(add) is None:
            return
        t, beta = _split(add)
        mul = _op(t, "Mul")
        if mul is None or _split(mul) is None:
            return
        x, alpha = _split(mul)
        _replace(rewriter, op, "HardSigmoid", x, [mul, add], {"alpha": alpha, "beta": beta})


class HardSwishFromProduct(RewritePattern):
    """x * clip(x + 3, 0, 6) / 6 -> HardSwish(x) (the division after the product)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, donnx.OnnxOp):
            return
        t = _times_one_sixth(op)
        mul = _op(t, "Mul") if t is not None else None
        if mul is None:
            return
        for i in (0, 1):
            inner = _relu6_of_x_plus_3(mul.inputs[1 - i])
            if inner is not None and inner[0] is mul.inputs[i]:
                _replace(rewriter, op, "HardSwish", inner[0], [*inner[1], mul])
                return


class HardSwishFromHardSigmoid(RewritePattern):
    """x * HardSigmoid(x; 1/6, 0.5) -> HardSwish(x); also x * sigmoid(x) -> Swish(x)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, donnx.OnnxOp) or op.onnx_type != "Mul" or len(op.inputs) != 2:
            return
        for i in (0, 1):
            x, other = op.inputs[i], op.inputs[1 - i]
            hs = _op(other, "HardSigmoid")
            if hs is not None and hs.inputs[0] is x:
                a = hs.onnx_attrs()
                if _is(a.get("alpha", 0.2), 1 / 6) and _is(a.get("beta", 0.5), 0.5):
                    _replace(rewriter, op, "HardSwish", x, [hs])
                    return
            sg = _op(other, "Sigmoid")
            if sg is not None and sg.inputs[0] is x:
                _replace(rewriter, op, "Swish", x, [sg])
                return


@dataclass(frozen=True)
class RecognizeActivationsPass(ModulePass):
    name = "recognize-activations"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([
            HardSwishFromProduct(), HardSigmoidFromRelu6(), HardSigmoidFromAffineClip(),
            HardSwishFromHardSigmoid(),
        ])).rewrite_module(op)
