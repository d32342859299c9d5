"""convert-cf-to-llvm: cf.br / cf.cond_br -> llvm.br / llvm.cond_br.

Block arguments (the loop variables that convert-scf-to-cf turned into blocks)
take their converted types first; the branches then pass converted operands.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import cf, llvm
from xdsl.dialects.builtin import ModuleOp
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
class BranchToLLVM(RewritePattern):
    types: TypeConverter

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: cf.BranchOp, rewriter: PatternRewriter) -> None:
        args = self.types.operands(rewriter, op.arguments)
        rewriter.replace(op, llvm.BrOp(op.successor, *args))


@dataclass
class CondBranchToLLVM(RewritePattern):
    types: TypeConverter

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: cf.ConditionalBranchOp, rewriter: PatternRewriter) -> None:
        then_args = self.types.operands(rewriter, op.then_arguments)
        else_args = self.types.operands(rewriter, op.else_arguments)
        rewriter.replace(op, llvm.CondBrOp(op.cond, op.then_block, then_args, op.else_block, else_args))


@dataclass(frozen=True)
class ConvertCfToLLVMPass(ModulePass):
    name = "convert-cf-to-llvm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tc = TypeConverter(index_bits(op))
        for region_op in op.walk():
            for region in region_op.regions:
                for k, block in enumerate(region.blocks):
                    if k > 0:  # entry blocks belong to their function (convert-func-to-llvm)
                        tc.convert_block_args(block)
        PatternRewriteWalker(GreedyRewritePatternApplier([BranchToLLVM(tc), CondBranchToLLVM(tc)]),
                             apply_recursively=False).rewrite_module(op)
