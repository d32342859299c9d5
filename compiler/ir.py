"""Parsing and printing whole modules with qcc's dialects loaded.

Owns the xDSL `Context` that knows every dialect qcc reads and writes, and the
text form of modules on disk (`model.mlir`): full constants, re-parseable.
"""

from __future__ import annotations

import contextlib
import gc
import os

from xdsl.context import Context
from xdsl.dialects import arith, builtin, func
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException

from qcc.dialects.onnx import ONNX, elide_constants
from qcc.dialects.quant import QUANT
from qcc.errors import QccError


def qcc_context() -> Context:
    ctx = Context()
    for d in (builtin.Builtin, func.Func, arith.Arith, ONNX, QUANT):
        ctx.load_dialect(d)
    return ctx


def parse_module(text: str, name: str = "<string>") -> ModuleOp:
    try:
        module = Parser(qcc_context(), text, name).parse_module()
        module.verify()
    except (ParseError, VerifyException) as e:
        raise QccError(f"{name}: {str(e).strip().splitlines()[-1] if str(e).strip() else e}") from None
    return module


def parse_module_file(path: str | os.PathLike[str]) -> ModuleOp:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise QccError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        return parse_module(f.read(), path)


def print_module(module: ModuleOp, elide_larger_than: int | None = None) -> str:
    import io

    out = io.StringIO()
    with elide_constants(elide_larger_than):
        Printer(stream=out).print_op(module)
    out.write("\n")
    return out.getvalue()


@contextlib.contextmanager
def gc_paused():
    """Pauses Python's cyclic garbage collector while building large IR.

    Creating tens of thousands of xDSL objects triggers full collections whose
    cost grows with the heap, so import time grew faster than the graph
    (tools/bench_import.py); nothing built inside needs collecting before it is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
