"""`fold-constant-mul-div`: a Mul, Div, Add or Sub by a constant after a Conv,
ConvTranspose or Gemm folds into that op's weights and bias.

    y = conv(x, W) + b;  z = y * k + c   =>   z = conv(x, W * k) + (b * k + c)

Legal only when the constant holds one value per output channel or one for all
(its broadcast shape is 1 on every axis but the channel axis) and the result has
the producer's shape; the producer must have no other user. Div by c is Mul by
1/c (never by a zero); c - y is y * -1 + c. Float, before calibration: the
quantizer then sees the folded weights and one op instead of two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)
from xdsl.ir import Operation

from qcc.dialects import onnx as donnx
from qcc.passes.fold_batchnorm import channel_axis, fold_channel_affine, single_use_affine_producer

_KINDS = ("Mul", "Div", "Add", "Sub")


def per_channel_values(c: np.ndarray, out_shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """`c` as one value per channel (or one value) when it broadcasts against a tensor of
    `out_shape` only along `axis`; None otherwise."""
    r = len(out_shape)
    if c.ndim > r:
        return None
    shape = (1,) * (r - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(shape) if i != axis) or shape[axis] not in (1, out_shape[axis]):
        return None
    return c.astype(np.float64).reshape(-1)


class FoldConstantIntoProducer(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, donnx.OnnxOp) or op.onnx_type not in _KINDS or len(op.inputs) != 2:
            return
        for side in (0, 1):
            producer = single_use_affine_producer(op.inputs[side])
            c = donnx.constant_array(op.inputs[1 - side])
            if producer is not None and c is not None and c.dtype.kind == "f":
                break
        else:
            return
        shape = tuple(producer.results[0].type.get_shape())
        if tuple(op.results[0].type.get_shape()) != shape or op.results[0].type != producer.results[0].type:
            return
        v = per_channel_values(c, shape, channel_axis(producer))
        if v is None:
            return
        kind = op.onnx_type
        if kind == "Mul":
            k, b = v, 0.0
        elif kind == "Div":
            if side == 1 or np.any(v == 0) or not np.all(np.isfinite(v)):
                return  # c / y is not affine in y
            k, b = 1.0 / v, 0.0
        elif kind == "Add":
            k, b = 1.0, v
        else:
            k, b = (1.0, -v) if side == 0 else (-1.0, v)
        fold_channel_affine(rewriter, producer, k, b, op, kind.lower())


@dataclass(frozen=True)
class FoldConstantMulDivPass(ModulePass):
    name = "fold-constant-mul-div"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([FoldConstantIntoProducer()])).rewrite_module(op)
