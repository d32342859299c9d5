"""convert-func-to-llvm: func.func / func.call / func.return -> llvm.

A memref argument becomes a pointer, `index` becomes `i{qcc.index_bits}`.
Public functions get external linkage and `noalias` pointers (the ABI of model.h:
the caller's arrays overlap neither each other nor the internal arena); private
ones are internal and promise nothing (qcc_body's arguments may point into the
arena, whose bytes other tensors reuse).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func, llvm
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, MemRefType, ModuleOp, UnitAttr
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from .llvm_lowering import TypeConverter, index_bits


@dataclass
class FuncToLLVM(RewritePattern):
    types: TypeConverter

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.FuncOp, rewriter: PatternRewriter) -> None:
        tc = self.types
        ft = op.function_type
        ins = [tc(t) for t in ft.inputs]
        outs = [tc(t) for t in ft.outputs]
        if len(outs) > 1:
            return
        fty = llvm.LLVMFunctionType(ins, outs[0] if outs else None)
        private = op.sym_visibility is not None and op.sym_visibility.data == "private"
        body = rewriter.move_region_contents_to_new_regions(op.body)
        if body.blocks:
            tc.convert_block_args(body.blocks[0])
        new = llvm.FuncOp(op.sym_name, fty, linkage=llvm.LinkageAttr("internal" if private else "external"),
                          body=body)
        attrs = [DictionaryAttr({"llvm.noalias": UnitAttr()} if isinstance(t, MemRefType) else {})
                 for t in ft.inputs]
        if not private and any(a.data for a in attrs):
            new.arg_attrs = ArrayAttr(attrs)
        rewriter.replace(op, new)


@dataclass
class CallToLLVM(RewritePattern):
    types: TypeConverter

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.CallOp, rewriter: PatternRewriter) -> None:
        args = self.types.operands(rewriter, op.arguments)
        rt = [self.types(r.type) for r in op.results]
        self.types.replace(rewriter, op, [llvm.CallOp(op.callee, *args, return_type=rt[0] if rt else None)])


@dataclass
class ReturnToLLVM(RewritePattern):
    types: TypeConverter

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.ReturnOp, rewriter: PatternRewriter) -> None:
        args = self.types.operands(rewriter, op.arguments)
        rewriter.replace(op, llvm.ReturnOp(args[0] if args else None))


@dataclass(frozen=True)
class ConvertFuncToLLVMPass(ModulePass):
    name = "convert-func-to-llvm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tc = TypeConverter(index_bits(op))
        PatternRewriteWalker(GreedyRewritePatternApplier([FuncToLLVM(tc), CallToLLVM(tc), ReturnToLLVM(tc)]),
                             apply_recursively=False).rewrite_module(op)
