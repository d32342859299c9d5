"""Links an LLVM backend object (model.o) with the C backend's harness and
runtime for a target (backends/c/targets.py) and runs it: the same programs,
inputs and outputs as for the generated C, with model.o in place of model.c."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

import numpy as np

from .emit import LLVMModel, object_code

# model.c of the harness build: the model itself is the object file
_NO_C = "/* the model is model.o (qcc's LLVM backend) */\ntypedef int qcc_model_is_an_object;\n"


def build(model: LLVMModel, workdir) -> pathlib.Path:
    """The executable for model.target (host, qemu-user or bare-metal firmware)."""
    from qcc.backends.c import targets

    work = pathlib.Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    (work / "model.o").write_bytes(object_code(model))
    files = {"model.h": model.files["model.h"], "model.c": _NO_C}
    return targets.build(files, model.target, work, extra_cflags=("model.o",))


def build_and_run(model: LLVMModel, inputs: Mapping[str, np.ndarray], workdir, *,
                  codes: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    from qcc.backends.c import targets

    exe = build(model, workdir)
    files = {"model.h": model.files["model.h"], "model.c": _NO_C}
    return targets.run(exe, model.target, files, inputs, codes=codes)


def run_out_dir(out_dir, inputs: Mapping[str, np.ndarray], on: str, target: str) -> tuple[dict[str, np.ndarray], dict]:
    """`qcc run` for an LLVM build: OUT/model.ll in the host JIT (`on="host"`), or
    OUT/model.o linked with the target's harness and run under qemu (`on="qemu"`)."""
    from qcc.backends.c import targets
    from qcc.errors import QccError

    from .jit import JitModel

    out = pathlib.Path(out_dir)
    header = (out / "model.h").read_text(encoding="utf-8")
    if on == "host":
        if not (out / "model.ll").is_file():
            raise QccError(f"{out_dir}: no model.ll to run on the host (compile with --emit llvm)")
        jit = JitModel({"model.ll": (out / "model.ll").read_text(encoding="utf-8"), "model.h": header})
        return jit.run(inputs), {"target": "host", "instructions": None, "backend": "llvm-jit"}
    if not (out / "model.o").is_file():
        raise QccError(f"{out_dir}: no model.o to run under qemu (compile with --emit obj --target ...)")
    why = targets.toolchain_missing(target)
    if why:
        raise QccError(why)
    import tempfile

    files = {"model.h": header, "model.c": _NO_C}
    with tempfile.TemporaryDirectory(prefix="qcc-run-") as work:
        (pathlib.Path(work) / "model.o").write_bytes((out / "model.o").read_bytes())
        exe = targets.build(files, target, work, extra_cflags=("model.o",))
        return targets.run(exe, target, files, inputs)
