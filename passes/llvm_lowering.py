"""Shared pieces of qcc's conversions to xDSL's `llvm` dialect (convert-*-to-llvm).

Types: `index` becomes `i{qcc.index_bits}` (the module attribute lower-to-loops sets;
64 when absent), every memref a `!llvm.ptr` to its first element (the loop-level
stage uses flat, identity-layout memrefs only). As in MLIR's dialect conversion, a
pattern that meets an operand of an unconverted type casts it with
`builtin.unrealized_conversion_cast`, and casts its results back for users not yet
converted; `reconcile-unrealized-casts` removes the pairs once every dialect is
converted, so the IR verifies after each pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import llvm
from xdsl.dialects.builtin import IndexType, IntegerAttr, IntegerType, MemRefType, ModuleOp, UnrealizedConversionCastOp
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint, Rewriter

PTR = llvm.LLVMPointerType()


def index_bits(module: ModuleOp) -> int:
    a = module.attributes.get("qcc.index_bits")
    return a.value.data if isinstance(a, IntegerAttr) else 64


class TypeConverter:
    def __init__(self, bits: int):
        self.index = IntegerType(bits)

    def __call__(self, t: Attribute) -> Attribute:
        if isinstance(t, IndexType):
            return self.index
        if isinstance(t, MemRefType):
            return PTR
        return t

    def legal(self, t: Attribute) -> bool:
        return self(t) == t

    def operands(self, rewriter: PatternRewriter, values: Sequence[SSAValue]) -> list[SSAValue]:
        """The values in converted types, casting where needed (before the matched op)."""
        out = []
        for v in values:
            t = self(v.type)
            if t == v.type:
                out.append(v)
            elif isinstance(v.owner, UnrealizedConversionCastOp) and v.owner.inputs[0].type == t:
                out.append(v.owner.inputs[0])  # undo an earlier cast
            else:
                cast = UnrealizedConversionCastOp.get([v], [t])
                rewriter.insert_op(cast)
                out.append(cast.results[0])
        return out

    def replace(self, rewriter: PatternRewriter, op: Operation, new_ops: Sequence[Operation],
                new_results: Sequence[SSAValue] | None = None) -> None:
        """Replaces op; results whose type changed are cast back for remaining users."""
        new_ops = list(new_ops)
        if new_results is None:
            new_results = list(new_ops[-1].results) if new_ops else []
        final = []
        for old, new in zip(op.results, new_results):
            if old.type != new.type:
                cast = UnrealizedConversionCastOp.get([new], [old.type])
                new_ops.append(cast)
                final.append(cast.results[0])
            else:
                final.append(new)
        rewriter.replace(op, new_ops, final)

    def convert_block_args(self, block: Block) -> None:
        """Block arguments in converted types, cast back at the block's start for their users."""
        for arg in list(block.args):
            t = self(arg.type)
            if t == arg.type:
                continue
            new = block.insert_arg(t, arg.index)
            cast = UnrealizedConversionCastOp.get([new], [arg.type])
            Rewriter.insert_op(cast, InsertPoint.at_start(block))
            arg.replace_all_uses_with(cast.results[0])
            block.erase_arg(arg)
