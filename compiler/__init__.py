"""qcc: a quantizing compiler for neural networks on microcontrollers and small CPUs.

The package root holds the driver-level API; the IR lives in `qcc.dialects`,
transformations in `qcc.passes`, code generators in `qcc.backends`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from qcc.errors import QccError

__version__ = "0.1.0"
__all__ = ["QccError", "compile", "import_model", "interpret", "__version__"]


def import_model(model, input_shapes: Mapping[str, Sequence[int]] | None = None):
    """Imports an ONNX model (path or ModelProto) into a verified `onnx`-dialect module."""
    from qcc.importer import import_model as _import

    return _import(model, input_shapes)


def interpret(model, inputs: Mapping[str, np.ndarray], *,
              input_shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """Runs the float reference interpreter over samples (first axis of each input).

    `model` is an .onnx/.mlir path, an onnx.ModelProto or an imported module.
    """
    from xdsl.dialects.builtin import ModuleOp

    from qcc.interpreter import run_samples

    if isinstance(model, ModuleOp):
        module = model
    elif isinstance(model, str | os.PathLike) and os.fspath(model).endswith(".mlir"):
        from qcc.ir import parse_module_file

        module = parse_module_file(model)
    else:
        module = import_model(model, input_shapes)
    return run_samples(module, inputs)


def compile(model, out_dir: str, *, target: str = "host", emit: str = "c", calib=None, bits: Sequence[int] = (4, 8),
            sqnr_min: float = 0.0, size_budget_kb: float = 0.0, bitops_budget: float = 0.0,
            calib_method: str = "minmax", strategy: str = "greedy", float_only: bool = False,
            input_shapes: Mapping[str, Sequence[int]] | None = None, force: bool = False, quiet: bool = True,
            patch: str = "none"):
    """Compiles `model` into `out_dir` (model.mlir, report.json, report.html) and
    returns an Artifact with `.run(inputs)`, `.report` and `.module`.

    `calib` is a dict of arrays (first axis samples) or an .npz path; without it
    qcc calibrates on synthetic data and says so in the report."""
    from qcc.driver import Options, compile_model
    from qcc.passes.calibrate import parse_bits

    opts = Options(target=target, emit=emit, calib=calib, calib_method=calib_method, bits=parse_bits(list(bits)),
                   sqnr_min=sqnr_min, size_budget_kb=size_budget_kb, bitops_budget=bitops_budget,
                   strategy=strategy, float_only=float_only, input_shapes=dict(input_shapes or {}),
                   force=force, quiet=quiet, patch=patch)
    return compile_model(model, out_dir, opts)
