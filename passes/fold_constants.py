"""`fold-constants`: every onnx op whose operands are all constants becomes a constant.

The importer folds shape computations but leaves ops that would expand a small
constant into a large one (ConstantOfShape, Expand, Tile, ...) in the IR to keep
it small. Before quantization the weights they produce must be constants, so the
compile pipeline runs this pass first. One walk in program order (later ops see
earlier results folded); QuantizeLinear/DequantizeLinear pairs of pre-quantized
graphs and random ops are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, NoneType
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from qcc.dialects import onnx as donnx
from qcc.float_kernels import KERNELS

_KEEP = {"Constant", "QuantizeLinear", "DequantizeLinear", "RandomNormal", "RandomNormalLike", "RandomUniform",
         "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout"}


def _opset(module: ModuleOp) -> int:
    a = module.attributes.get("onnx.opset")
    return int(a.value.data) if a is not None else 18


@dataclass(frozen=True)
class FoldConstantsPass(ModulePass):
    name = "fold-constants"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        opset = _opset(op)
        for o in list(op.walk()):
            if not isinstance(o, donnx.OnnxOp) or o.onnx_type in _KEEP or len(o.results) != 1 or not o.operands:
                continue
            vals = []
            for v in o.operands:
                if isinstance(v.type, NoneType):
                    vals.append(None)
                    continue
                c = donnx.constant_array(v)
                if c is None:
                    break
                vals.append(c)
            else:
                kernel = KERNELS.get(o.onnx_type)
                if kernel is None:
                    continue
                try:
                    with np.errstate(all="ignore"):
                        out = np.asarray(kernel(vals, o.onnx_attrs(), opset)[0])
                    out = out.astype(donnx.numpy_dtype(o.results[0].type.element_type), copy=False)
                except (ValueError, NotImplementedError, TypeError, IndexError):
                    continue  # left to fail, with its node named, where it runs
                if out.shape != tuple(o.results[0].type.get_shape()):
                    continue
                const = donnx.make_constant(out, o.node_name)
                Rewriter.insert_op(const, InsertPoint.before(o))
                o.results[0].replace_all_uses_with(const.results[0])
                dead = [v.owner for v in o.operands]
                Rewriter.erase_op(o)
                for d in dict.fromkeys(dead):
                    if isinstance(d, donnx.OnnxOp) and d.onnx_type == "Constant" and not list(d.results[0].uses):
                        Rewriter.erase_op(d)
