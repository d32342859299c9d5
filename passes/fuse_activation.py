"""`fuse-activation`: a `quant.clamp` (ReLU, ReLU6, Clip) folds into the integer op
that produces its operand, as that op's `act_min`/`act_max`.

    %c = quant.conv ... -> T          %c = quant.conv ... {act_min = max(a, lo), act_max = min(b, hi)} -> T
    %r = quant.clamp %c {lo, hi}  =>

Exact by construction: clamp(clamp(v, a, b), lo, hi) = clamp(v, max(a, lo), min(b, hi)),
and the clamp keeps its operand's quantization. Applies only when the clamp is
the producer's single user.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from qcc.dialects import quant as q

FUSES_INTO = (q.ConvOp, q.FullyConnectedOp, q.AddOp, q.MulOp, q.ChannelScaleOp)
FUSED = "qcc.fused"


class FuseClampIntoProducer(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: q.ClampOp, rewriter: PatternRewriter) -> None:
        src = op.operands[0]
        producer = src.owner
        if not isinstance(producer, FUSES_INTO) or len(list(src.uses)) != 1:
            return
        qp = q.qparams_of(src.type)
        a, b = producer.attr("act_min", qp.qmin), producer.attr("act_max", qp.qmax)
        lo, hi = op.attr("act_min", qp.qmin), op.attr("act_max", qp.qmax)
        producer.attributes["act_min"] = IntegerAttr(max(a, lo), i64)
        producer.attributes["act_max"] = IntegerAttr(min(b, hi), i64)
        if op.node_name:
            before = producer.attributes.get(FUSED)
            names = ([before.data] if isinstance(before, StringAttr) else []) + [op.node_name]
            producer.attributes[FUSED] = StringAttr(", ".join(names))
        rewriter.notify_op_modified(producer)
        rewriter.replace(op, [], [src])


@dataclass(frozen=True)
class FuseActivationPass(ModulePass):
    name = "fuse-activation"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([FuseClampIntoProducer()])).rewrite_module(op)

