"""`cancel-quantize-pairs`: removes the quantization round trips that are exact.

    quant.quantize(quant.dequantize(q))  with the same parameters  -> q
    quant.requantize(q) to q's own parameters                      -> q
    quant.requantize(quant.requantize(q))                          -> one quant.requantize,
                                                                      only if equal on every code

Why these and not `dequantize(quantize(x))`: quantizing a float rounds and clamps
it, so dequantize(quantize(x)) != x for almost every x; removing that pair would
change what the program computes (it is the quantization itself). The other
direction is exact: dequantize gives float32((q - Z) S), and for |q - Z| < 2^16
the float32 rounding moves (q - Z) S by less than 2^-8 S, so quantize rounds back
to q and the clamp is a no-op. A requantize to identical parameters multiplies
by m0 = 2^30, shift = 1: exactly the identity on in-range codes. Two requantizes
in a row round twice; they merge only when a check over all 2^B input codes
(B <= 16) shows the single requantize gives the same result for each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.utils.exceptions import VerifyException
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from qcc import int_kernels
from qcc import numerics as nx
from qcc.dialects import quant as q


def _erase_if_unused(rewriter: PatternRewriter, op: Operation | None) -> None:
    if isinstance(op, Operation) and op.parent is not None and not any(list(r.uses) for r in op.results):
        rewriter.erase(op)


class CancelDequantizeQuantize(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: q.QuantizeOp, rewriter: PatternRewriter) -> None:
        dq = op.operands[0].owner
        if not isinstance(dq, q.DequantizeOp):
            return
        src = dq.operands[0]
        qp = q.qparams_of(src.type)
        if src.type != op.results[0].type or qp.bits > 16:
            return
        rewriter.replace(op, [], [src])
        _erase_if_unused(rewriter, dq)


class CancelIdentityRequantize(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: q.RequantizeOp, rewriter: PatternRewriter) -> None:
        src = op.operands[0]
        if src.type == op.results[0].type and q.qparams_of(src.type).bits <= 16:
            rewriter.replace(op, [], [src])


class MergeRequantizeChain(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: q.RequantizeOp, rewriter: PatternRewriter) -> None:
        inner = op.operands[0].owner
        if not isinstance(inner, q.RequantizeOp) or len(list(op.operands[0].uses)) != 1:
            return
        src = inner.operands[0]
        a = q.qparams_of(src.type)
        if a.bits > 16:
            return
        merged = q.RequantizeOp([src], [op.results[0].type], dict(op.attributes))
        codes = np.arange(a.qmin, a.qmax + 1).astype(nx.storage_dtype(a.bits, a.signed))
        try:
            merged.verify()
        except VerifyException:  # a ratio with no fixed-point form cannot merge
            return
        two = int_kernels.prepare(op)([int_kernels.prepare(inner)([codes])])
        one = int_kernels.prepare(merged)([codes])
        if not np.array_equal(two, one):
            return
        rewriter.replace(op, [merged], [merged.results[0]])
        _erase_if_unused(rewriter, inner)


@dataclass(frozen=True)
class CancelQuantizePairsPass(ModulePass):
    name = "cancel-quantize-pairs"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([
            CancelDequantizeQuantize(), CancelIdentityRequantize(), MergeRequantizeChain(),
        ])).rewrite_module(op)
