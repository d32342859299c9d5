"""The LLVM backend: quantized IR -> loop-level stage -> xDSL llvm dialect ->
llvmlite IR (OUT/model.ll), object code for the target (OUT/model.o) through
llvmlite's target machine, and an in-process MCJIT runner for the host."""

from .emit import TARGETS, LLVMModel, emit_llvm, object_code
from .jit import JitModel

__all__ = ["TARGETS", "LLVMModel", "emit_llvm", "object_code", "JitModel"]
