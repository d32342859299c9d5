"""Runs LLVM output in-process on the host (llvmlite MCJIT), through the same
entry points a C program calls: `qcc_model_run` on float32 arrays and
`qcc_model_run_q` on integer codes, one sample per call."""

from __future__ import annotations

import ctypes

import numpy as np
import llvmlite.binding as llvm

from qcc.backends.c.run import io_meta
from qcc.errors import QccError

from .emit import LLVMModel, optimized, target_machine


class JitModel:
    def __init__(self, model: LLVMModel | dict[str, str]):
        """From emit_llvm's result, or from the files of an OUT/ directory (model.ll, model.h)."""
        files = model.files if isinstance(model, LLVMModel) else model
        target = model.target if isinstance(model, LLVMModel) else "host"
        if target != "host":
            raise QccError(f"the JIT runs host code only, not --target {target}")
        tm = target_machine("host", jit=True)
        ir = optimized(files["model.ll"], tm)
        if ir.triple != tm.triple:
            raise QccError(f"model.ll is for {ir.triple}, the JIT runs host code ({tm.triple}) only")
        self.engine = llvm.create_mcjit_compiler(ir, tm)
        self.engine.finalize_object()
        self.meta = io_meta(files)
        self.has_run_q = bool(self.meta["run_q"])
        n = len(self.meta["inputs"]) + len(self.meta["outputs"])
        proto = ctypes.CFUNCTYPE(ctypes.c_int32, *([ctypes.c_void_p] * n))
        self._run = proto(self.engine.get_function_address("qcc_model_run"))
        self._run_q = proto(self.engine.get_function_address("qcc_model_run_q")) if self.has_run_q else None

    def run(self, inputs: dict[str, np.ndarray], codes: bool = False) -> dict[str, np.ndarray]:
        """Every sample (first axis) through the model; float32 in/out, or codes with `codes=True`."""
        ins, outs = self.meta["inputs"], self.meta["outputs"]
        fn = self._run_q if codes else self._run
        if fn is None:
            raise QccError("this model has no integer entry point (qcc_model_run_q)")
        dt_in = [np.dtype(d["code_dtype"]) if codes else np.dtype(np.float32) for d in ins]
        dt_out = [np.dtype(d["code_dtype"]) if codes else np.dtype(np.float32) for d in outs]
        arrays = [np.ascontiguousarray(inputs[d["name"]], dt).reshape(-1, d["size"]) for d, dt in zip(ins, dt_in)]
        n = arrays[0].shape[0] if arrays else 1
        res = [np.zeros((n, d["size"]), dt) for d, dt in zip(outs, dt_out)]
        for s in range(n):
            ptrs = [a[s].ctypes.data for a in arrays] + [r[s].ctypes.data for r in res]
            if fn(*ptrs) != 0:
                raise QccError("qcc_model_run returned an error")
        return {d["name"]: r.reshape(n, *(d["shape"][1:] if d["shape"][:1] == [1] else d["shape"]))
                for d, r in zip(outs, res)}
