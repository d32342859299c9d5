"""Registers qcc's dialects and passes with xDSL's tooling (`xdsl-opt`, `qcc-opt`).

Found through the `xdsl.universe` entry point declared in pyproject.toml.
Pass name = file name in passes/ (with - for _) = FileCheck test name.
"""

from importlib import import_module

from xdsl.universe import Universe


def _onnx_dialect():
    from qcc.dialects.onnx import ONNX

    return ONNX


def _quant_dialect():
    from qcc.dialects.quant import QUANT

    return QUANT


QCC_DIALECTS = {"onnx": _onnx_dialect, "quant": _quant_dialect}

# pass name -> class name in qcc.passes.<name with _>
_PASSES = {
    "fold-constants": "FoldConstantsPass",
    "fold-batchnorm": "FoldBatchNormPass",
    "recognize-activations": "RecognizeActivationsPass",
    "fold-constant-mul-div": "FoldConstantMulDivPass",
    "calibrate": "CalibratePass",
    "measure-sensitivity": "MeasureSensitivityPass",
    "assign-bit-widths": "AssignBitWidthsPass",
    "lower-to-quant": "LowerToQuantPass",
    "fuse-activation": "FuseActivationPass",
    "fuse-residual-add": "FuseResidualAddPass",
    "tile-patches": "TilePatchesPass",
    "materialize-patches": "MaterializePatchesPass",
    "cancel-quantize-pairs": "CancelQuantizePairsPass",
    "lower-to-loops": "LowerToLoopsPass",
    "check-loop-legality": "CheckLoopLegalityPass",
    "convert-arith-to-llvm": "ConvertArithToLLVMPass",
    "convert-memref-to-llvm": "ConvertMemrefToLLVMPass",
    "convert-cf-to-llvm": "ConvertCfToLLVMPass",
    "convert-func-to-llvm": "ConvertFuncToLLVMPass",
}


def _factory(name: str, cls: str):
    def load():
        return getattr(import_module(f"qcc.passes.{name.replace('-', '_')}"), cls)

    return load


def all_passes() -> dict:
    """Pass name -> factory of the pass class; every qcc pass is listed here."""
    return {name: _factory(name, cls) for name, cls in _PASSES.items()}


QCC_UNIVERSE = Universe(
    all_dialects=QCC_DIALECTS,
    all_passes=all_passes(),
)
