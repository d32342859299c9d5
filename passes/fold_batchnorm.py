"""`fold-batchnorm`: inference-mode BatchNormalization folded into the Conv that
only it uses.

    y = gamma (conv(x, W) + b - mean) / sqrt(var + eps) + beta
      = conv(x, W * k) + (b - mean) * k + beta,   k = gamma / sqrt(var + eps)

computed in float64 and stored as float32, so quantization later sees the
weights the device will multiply by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, NoneType, StringAttr
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)
from xdsl.ir import Operation
from xdsl.rewriter import InsertPoint

from qcc.dialects import onnx as donnx


class FoldBatchNormIntoConv(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, donnx.OPS["BatchNormalization"]) or len(op.outputs) != 1:
            return
        conv = op.inputs[0].owner
        if not isinstance(conv, donnx.OPS["Conv"]) or len(list(op.inputs[0].uses)) != 1:
            return
        params = [donnx.constant_array(v) for v in op.inputs[1:5]]
        w = donnx.constant_array(conv.inputs[1])
        if w is None or any(p is None for p in params) or op.attributes.get("training_mode") is not None \
                and donnx.attr_py(op.attributes["training_mode"]):
            return
        gamma, beta, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
        eps = float(op.onnx_attrs().get("epsilon", 1e-5))
        k = gamma / np.sqrt(var + eps)
        has_bias = len(conv.inputs) > 2 and not isinstance(conv.inputs[2].type, NoneType)
        b = donnx.constant_array(conv.inputs[2]) if has_bias else np.zeros(w.shape[0])
        if b is None:
            return
        dtype = w.dtype
        new_w = (w.astype(np.float64) * k.reshape(-1, *([1] * (w.ndim - 1)))).astype(dtype)
        new_b = ((b.astype(np.float64) - mean) * k + beta).astype(dtype)
        name = conv.node_name
        w_op = donnx.make_constant(new_w, f"{name}.weight_bn_folded")
        b_op = donnx.make_constant(new_b, f"{name}.bias_bn_folded")
        attrs = dict(conv.attributes)
        attrs[donnx.QCC_NAME] = StringAttr(f"{name}+{op.node_name}" if op.node_name else name)
        new_conv = donnx.OPS["Conv"](operands=[[conv.inputs[0], w_op.outputs[0], b_op.outputs[0]]],
                                     result_types=[[op.outputs[0].type]], attributes=attrs)
        for new in (w_op, b_op, new_conv):
            rewriter.insert(new, InsertPoint.before(conv))
        dead = [v.owner for v in (*op.inputs[1:5], *conv.inputs[1:])]
        rewriter.replace(op, [], [new_conv.outputs[0]])
        rewriter.erase(conv)
        for c in dict.fromkeys(dead):  # parameters nothing else reads
            if isinstance(c, Operation) and not any(list(r.uses) for r in c.results):
                rewriter.erase(c)


@dataclass(frozen=True)
class FoldBatchNormPass(ModulePass):
    name = "fold-batchnorm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([FoldBatchNormIntoConv()])).rewrite_module(op)
