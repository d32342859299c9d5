"""Registers qcc's dialects and passes with xDSL's tooling (`xdsl-opt`, `qcc-opt`).

Found through the `xdsl.universe` entry point declared in pyproject.toml.
"""

from xdsl.universe import Universe


def _onnx_dialect():
    from qcc.dialects.onnx import ONNX

    return ONNX


def _quant_dialect():
    from qcc.dialects.quant import QUANT

    return QUANT


QCC_DIALECTS = {"onnx": _onnx_dialect, "quant": _quant_dialect}


def all_passes() -> dict:
    """Pass name -> factory of the pass class; every qcc pass is listed here."""
    return {}


QCC_UNIVERSE = Universe(
    all_dialects=QCC_DIALECTS,
    all_passes=all_passes(),
)
