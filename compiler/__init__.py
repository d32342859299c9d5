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
__all__ = ["QccError", "import_model", "interpret", "__version__"]


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
