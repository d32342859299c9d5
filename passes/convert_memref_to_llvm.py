"""convert-memref-to-llvm: the loop-level stage's memrefs -> pointers.

The loop-level stage uses flat, identity-layout memrefs only, so a memref is a
`!llvm.ptr` to its first element: `memref.global` is an internal `llvm.mlir.global`
(an array; constants keep their dense value, the arena has none and the backend
zero-initialises it), `memref.get_global` is `llvm.mlir.addressof`, `memref.view`
a byte GEP into its i8 source, `memref.load`/`store` a GEP plus load/store with the
element's natural alignment, and `memref.extract_aligned_pointer_as_index` a
`ptrtoint`. Any other memref op (or a non-flat memref) is left for the legality
check to report.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import llvm, memref
from xdsl.dialects.builtin import ModuleOp, i8
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from .llvm_lowering import PTR, TypeConverter, index_bits


def _elem_bytes(t) -> int:
    return max(1, (t.bitwidth + 7) // 8)


@dataclass
class GlobalToLLVM(RewritePattern):
    types: TypeConverter

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.GlobalOp, rewriter: PatternRewriter) -> None:
        t = op.type
        n = t.get_shape()[0] if t.get_num_dims() == 1 else 0
        value = op.initial_value if isinstance(op.initial_value, memref.DenseIntOrFPElementsAttr) else None
        align = op.alignment.value.data if op.alignment is not None else None
        rewriter.replace(op, llvm.GlobalOp(llvm.LLVMArrayType(n, t.element_type),
                                              op.sym_name, "internal", constant=op.constant is not None or None,
                                              value=value, alignment=align))


@dataclass
class GetGlobalToLLVM(RewritePattern):
    types: TypeConverter

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.GetGlobalOp, rewriter: PatternRewriter) -> None:
        self.types.replace(rewriter, op, [llvm.AddressOfOp(op.name_, PTR)])


@dataclass
class ViewToLLVM(RewritePattern):
    types: TypeConverter

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.ViewOp, rewriter: PatternRewriter) -> None:
        src, shift = self.types.operands(rewriter, [op.source, op.byte_shift])
        self.types.replace(rewriter, op, [llvm.GEPOp(src, [llvm.GEP_USE_SSA_VAL], i8, ssa_indices=[shift],
                                                     inbounds=True)])


@dataclass
class LoadToLLVM(RewritePattern):
    types: TypeConverter

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.LoadOp, rewriter: PatternRewriter) -> None:
        if len(op.indices) != 1:
            return
        et = op.res.type
        ptr, idx = self.types.operands(rewriter, [op.memref, op.indices[0]])
        gep = llvm.GEPOp(ptr, [llvm.GEP_USE_SSA_VAL], et, ssa_indices=[idx], inbounds=True)
        align = op.attributes.get("qcc.align")  # lower-to-loops' word loads of byte buffers: maybe unaligned
        self.types.replace(rewriter, op, [gep, llvm.LoadOp(gep, et, alignment=align.value.data if align is not None
                                                           else _elem_bytes(et))])


@dataclass
class StoreToLLVM(RewritePattern):
    types: TypeConverter

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.StoreOp, rewriter: PatternRewriter) -> None:
        if len(op.indices) != 1:
            return
        et = op.value.type
        val, ptr, idx = self.types.operands(rewriter, [op.value, op.memref, op.indices[0]])
        gep = llvm.GEPOp(ptr, [llvm.GEP_USE_SSA_VAL], et, ssa_indices=[idx], inbounds=True)
        rewriter.replace(op, [gep, llvm.StoreOp(val, gep, alignment=_elem_bytes(et))], [])


@dataclass
class PointerToLLVM(RewritePattern):
    types: TypeConverter

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.ExtractAlignedPointerAsIndexOp, rewriter: PatternRewriter) -> None:
        (ptr,) = self.types.operands(rewriter, [op.source])
        self.types.replace(rewriter, op, [llvm.PtrToIntOp(ptr, self.types.index)])


@dataclass(frozen=True)
class ConvertMemrefToLLVMPass(ModulePass):
    name = "convert-memref-to-llvm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tc = TypeConverter(index_bits(op))
        PatternRewriteWalker(GreedyRewritePatternApplier([
            GlobalToLLVM(tc), GetGlobalToLLVM(tc), ViewToLLVM(tc), LoadToLLVM(tc), StoreToLLVM(tc), PointerToLLVM(tc),
        ]), apply_recursively=False).rewrite_module(op)
