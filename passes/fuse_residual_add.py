"""`fuse-residual-add`: a residual `quant.add` whose one operand is a convolution's
result used nowhere else is marked to run in that convolution's epilogue.

    %c = quant.conv %x, %w, %b -> T                %c = quant.conv %x, %w, %b {qcc.fused = "add"} -> T
    %y = quant.add %c, %r -> U            =>       %y = quant.add %c, %r {qcc.epilogue_of = 0} -> U

The IR keeps both ops, so the semantics (docs/numerics.md) are unchanged: the
convolution still requantizes to its own codes (its act_min/act_max included),
then the add applies TFLite's arithmetic. `qcc.epilogue_of` (the index of the
convolution operand) tells the C backend to compute the add in the
convolution's epilogue, at the add's position, without writing the
convolution's result; `qcc.fused` on the convolution names the add for the
report. Legal when the convolution's result has the add as its single user, the
add does not broadcast (operands and result of one shape), and the other
operand is not produced by the same convolution. The other operand is defined
before the add (SSA), so it is live when the fused kernel runs.
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

EPILOGUE_OF = "qcc.epilogue_of"
FUSED = "qcc.fused"


def fused_conv_operand(add: q.AddOp) -> int | None:
    """The operand index of the convolution `add` runs in the epilogue of (None if not fused)."""
    a = add.attributes.get(EPILOGUE_OF)
    return a.value.data if isinstance(a, IntegerAttr) else None


class FuseAddIntoConvEpilogue(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: q.AddOp, rewriter: PatternRewriter) -> None:
        if EPILOGUE_OF in op.attributes:
            return
        shapes = {tuple(v.type.get_shape()) for v in (*op.operands, op.results[0])}
        if len(shapes) != 1 or op.operands[0] is op.operands[1]:
            return
        for i, v in enumerate(op.operands):
            conv = v.owner
            if isinstance(conv, q.ConvOp) and len(list(v.uses)) == 1:
                op.attributes[EPILOGUE_OF] = IntegerAttr(i, i64)
                if op.node_name:
                    before = conv.attributes.get(FUSED)
                    names = ([before.data] if isinstance(before, StringAttr) else []) + [op.node_name]
                    conv.attributes[FUSED] = StringAttr(", ".join(names))
                rewriter.notify_op_modified(op)
                rewriter.notify_op_modified(conv)
                return


@dataclass(frozen=True)
class FuseResidualAddPass(ModulePass):
    name = "fuse-residual-add"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([FuseAddIntoConvEpilogue()])).rewrite_module(op)
