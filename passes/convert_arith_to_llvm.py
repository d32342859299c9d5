"""convert-arith-to-llvm: arith (and the math ops qcc emits) -> xDSL's llvm dialect.

Integer ops map one to one (`index` is `i{qcc.index_bits}`); min/max become
icmp + select (LLVM recognises smin/smax); `arith.index_cast` a sext/trunc or
nothing. Float ops carry no fast-math flags, so LLVM rounds every operation
like numpy. `arith.fptosi` becomes `llvm.fptosi.sat` (defined where arith's is
poison: a refinement). `math.exp` becomes the `llvm.exp` intrinsic.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, llvm, math
from xdsl.dialects.builtin import FloatAttr, IntegerAttr, IntegerType, ModuleOp, i64
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)

from .llvm_lowering import TypeConverter, index_bits

_BINARY = {
    arith.AddiOp: llvm.AddOp, arith.SubiOp: llvm.SubOp, arith.MuliOp: llvm.MulOp,
    arith.DivSIOp: llvm.SDivOp, arith.DivUIOp: llvm.UDivOp, arith.RemSIOp: llvm.SRemOp,
    arith.RemUIOp: llvm.URemOp, arith.ShLIOp: llvm.ShlOp, arith.ShRSIOp: llvm.AShrOp,
    arith.ShRUIOp: llvm.LShrOp, arith.AndIOp: llvm.AndOp, arith.OrIOp: llvm.OrOp, arith.XOrIOp: llvm.XOrOp,
    arith.AddfOp: llvm.FAddOp, arith.SubfOp: llvm.FSubOp, arith.MulfOp: llvm.FMulOp, arith.DivfOp: llvm.FDivOp,
}
_CASTS = {arith.ExtSIOp: llvm.SExtOp, arith.ExtUIOp: llvm.ZExtOp, arith.TruncIOp: llvm.TruncOp,
          arith.SIToFPOp: llvm.SIToFPOp, arith.ExtFOp: llvm.FPExtOp, arith.TruncFOp: llvm.FPTruncOp}
_MINMAX = {arith.MaxSIOp: "sgt", arith.MinSIOp: "slt", arith.MaxUIOp: "ugt", arith.MinUIOp: "ult"}
_FCMP = ["false", "oeq", "ogt", "oge", "olt", "ole", "one", "ord", "ueq", "ugt", "uge", "ult", "ule", "une",
         "uno", "true"]
_ICMP = ["eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge"]


def icmp(pred: str, a, b) -> llvm.ICmpOp:
    return llvm.ICmpOp(a, b, IntegerAttr(llvm.ICmpPredicateFlag(pred).to_int(), i64))


@dataclass
class ArithToLLVM(RewritePattern):
    types: TypeConverter

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        tc = self.types
        kind = type(op)
        if kind not in _BINARY and kind not in _CASTS and kind not in _MINMAX and kind not in (
                arith.ConstantOp, arith.CmpiOp, arith.CmpfOp, arith.SelectOp, arith.IndexCastOp, arith.FPToSIOp,
                arith.NegfOp, math.ExpOp):
            return
        ins = tc.operands(rewriter, op.operands)
        rt = [tc(r.type) for r in op.results]
        if kind is arith.ConstantOp:
            v = op.value
            attr = IntegerAttr(v.value.data, rt[0]) if isinstance(v, IntegerAttr) else v
            if not isinstance(attr, IntegerAttr | FloatAttr):
                return
            tc.replace(rewriter, op, [llvm.ConstantOp(attr, rt[0])])
        elif kind in _BINARY:
            tc.replace(rewriter, op, [_BINARY[kind](*ins)])
        elif kind in _CASTS:
            tc.replace(rewriter, op, [_CASTS[kind](ins[0], rt[0])])
        elif kind in _MINMAX:
            c = icmp(_MINMAX[kind], ins[0], ins[1])
            tc.replace(rewriter, op, [c, llvm.SelectOp(c, ins[0], ins[1])])
        elif kind is arith.CmpiOp:
            tc.replace(rewriter, op, [icmp(_ICMP[op.predicate.value.data], ins[0], ins[1])])
        elif kind is arith.CmpfOp:
            tc.replace(rewriter, op, [llvm.FCmpOp(ins[0], ins[1], _FCMP[op.predicate.value.data])])
        elif kind is arith.SelectOp:
            tc.replace(rewriter, op, [llvm.SelectOp(*ins)])
        elif kind is arith.IndexCastOp:
            src, dst = ins[0].type, rt[0]
            assert isinstance(src, IntegerType) and isinstance(dst, IntegerType)
            if src.width.data == dst.width.data:
                tc.replace(rewriter, op, [], [ins[0]])
            elif src.width.data < dst.width.data:
                tc.replace(rewriter, op, [llvm.SExtOp(ins[0], dst)])
            else:
                tc.replace(rewriter, op, [llvm.TruncOp(ins[0], dst)])
        elif kind is arith.FPToSIOp:
            name = f"llvm.fptosi.sat.i{rt[0].width.data}.{_fname(ins[0].type)}"
            tc.replace(rewriter, op, [llvm.CallIntrinsicOp(name, ins, rt)])
        elif kind is arith.NegfOp:
            tc.replace(rewriter, op, [llvm.FNegOp(ins[0])])
        elif kind is math.ExpOp:
            tc.replace(rewriter, op, [llvm.FExpOp(ins[0])])


def _fname(t) -> str:
    return {32: "f32", 64: "f64", 16: "f16"}[t.bitwidth]


@dataclass(frozen=True)
class ConvertArithToLLVMPass(ModulePass):
    name = "convert-arith-to-llvm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tc = TypeConverter(index_bits(op))
        PatternRewriteWalker(GreedyRewritePatternApplier([ArithToLLVM(tc)]), apply_recursively=False).rewrite_module(op)
