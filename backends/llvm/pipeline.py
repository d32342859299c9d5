"""The pass pipeline from quantized IR to xDSL's llvm dialect, then llvmlite IR."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp
from xdsl.transforms.convert_scf_to_cf import ConvertScfToCf
from xdsl.transforms.reconcile_unrealized_casts import ReconcileUnrealizedCastsPass

from qcc.passes.check_loop_legality import CheckLoopLegalityPass
from qcc.passes.convert_arith_to_llvm import ConvertArithToLLVMPass
from qcc.passes.convert_cf_to_llvm import ConvertCfToLLVMPass
from qcc.passes.convert_func_to_llvm import ConvertFuncToLLVMPass
from qcc.passes.convert_memref_to_llvm import ConvertMemrefToLLVMPass
from qcc.passes.lower_to_loops import Lowering, lower_module

LLVM_PASSES = (ConvertScfToCf(), ConvertArithToLLVMPass(), ConvertMemrefToLLVMPass(), ConvertCfToLLVMPass(),
               ConvertFuncToLLVMPass(), ReconcileUnrealizedCastsPass(), CheckLoopLegalityPass("llvm"))


def lower_to_llvm_dialect(module: ModuleOp, index_bits: int = 64, verify_each: bool = False,
                          dsp: bool = False) -> Lowering:
    """quant IR -> loops (checked, verified) -> llvm dialect, in place. The llvm
    stage is verified by LLVM itself (`emit_llvm`); xDSL's verifier counts a
    region's blocks per op, quadratic in the thousands of blocks of unstructured
    loops, so `verify_each` (every pass) is for tests on small modules."""
    from qcc.ir import qcc_context

    ctx = qcc_context()
    lw = lower_module(module, index_bits, dsp)
    CheckLoopLegalityPass("loops").apply(ctx, module)
    module.verify()
    for p in LLVM_PASSES:
        p.apply(ctx, module)
        if verify_each:
            module.verify()
    return lw
