"""`fold-batchnorm`: inference-mode BatchNormalization folded into the Conv,
ConvTranspose or Gemm that only it uses.

    y = gamma (conv(x, W) + b - mean) / sqrt(var + eps) + beta
      = conv(x, W * k) + (b - mean) * k + beta,   k = gamma / sqrt(var + eps)

computed in float64 and stored as float32, so quantization later sees the
weights the device will multiply by. `fold_channel_affine` (y * k + c per
output channel into the producer's weights and bias) is shared with
`fold-constant-mul-div`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, NoneType, StringAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)
from xdsl.rewriter import InsertPoint

from qcc.dialects import onnx as donnx

AFFINE_PRODUCERS = ("Conv", "ConvTranspose", "Gemm")


def channel_axis(producer: donnx.OnnxOp) -> int:
    """Axis of the producer's result that indexes its output channels."""
    return len(producer.results[0].type.get_shape()) - 1 if producer.onnx_type == "Gemm" else 1


def single_use_affine_producer(v: SSAValue) -> donnx.OnnxOp | None:
    """The Conv/ConvTranspose/Gemm defining `v` when `v` has no other user and its
    weights (and bias) are constants."""
    p = v.owner
    if not isinstance(p, donnx.OnnxOp) or p.onnx_type not in AFFINE_PRODUCERS or len(list(v.uses)) != 1 \
            or len(p.results) != 1 or donnx.constant_array(p.inputs[1]) is None:
        return None
    if _has_bias(p) and donnx.constant_array(p.inputs[2]) is None:
        return None
    if p.onnx_type == "Gemm" and p.onnx_attrs().get("transA", 0):
        return None
    return p


def _has_bias(p: Operation) -> bool:
    return len(p.inputs) > 2 and not isinstance(p.inputs[2].type, NoneType)


def fold_channel_affine(rewriter: PatternRewriter, producer: donnx.OnnxOp, k: np.ndarray, c: np.ndarray,
                        replaced: Operation, tag: str) -> bool:
    """Replaces `replaced` (computing producer(x) * k + c, with k and c of one value per
    output channel or one for all) by a copy of `producer` with scaled weights and
    shifted bias; erases `producer` and the constants nothing else reads."""
    w = donnx.constant_array(producer.inputs[1])
    if w is None or w.dtype.kind != "f":
        return False
    attrs = dict(producer.attributes)
    a = producer.onnx_attrs()
    n_out = producer.results[0].type.get_shape()[channel_axis(producer)]
    k = np.broadcast_to(np.asarray(k, np.float64).reshape(-1), (n_out,))
    c = np.broadcast_to(np.asarray(c, np.float64).reshape(-1), (n_out,))
    wf = w.astype(np.float64)
    if producer.onnx_type == "Conv":
        new_w = wf * k.reshape(-1, *([1] * (w.ndim - 1)))
    elif producer.onnx_type == "ConvTranspose":  # W is [C_in, C_out / group, ...]
        g = int(a.get("group", 1))
        ws = wf.reshape(g, w.shape[0] // g, *w.shape[1:])
        new_w = (ws * k.reshape(g, 1, -1, *([1] * (w.ndim - 2)))).reshape(w.shape)
    else:  # Gemm: Y = alpha A B' + beta C, B' = B^T when transB
        if a.get("transB", 0):
            new_w = wf * k.reshape(-1, 1)
        else:
            new_w = wf * k.reshape(1, -1)
    b = np.zeros(n_out)
    if _has_bias(producer):
        bias = donnx.constant_array(producer.inputs[2])
        if bias is None:
            return False
        bias = bias.astype(np.float64)
        if producer.onnx_type == "Gemm":
            if bias.size not in (1, n_out) or (bias.ndim == 2 and bias.shape[-1] != bias.size):
                return False  # a bias per row of the batch is not a per-channel bias
            bias = bias * a.get("beta", 1.0)
        b = np.broadcast_to(bias.reshape(-1), (n_out,))
    attrs.pop("beta", None)  # the new bias is stored scaled
    name = producer.node_name
    w_op = donnx.make_constant(new_w.astype(w.dtype), f"{name}.weight_{tag}_folded")
    b_op = donnx.make_constant((b * k + c).astype(w.dtype), f"{name}.bias_{tag}_folded")
    other = replaced.node_name if isinstance(replaced, donnx.OnnxOp) else ""
    attrs[donnx.QCC_NAME] = StringAttr(f"{name}+{other}" if other else name)
    new = type(producer)(operands=[[producer.inputs[0], w_op.outputs[0], b_op.outputs[0]]],
                         result_types=[[replaced.results[0].type]], attributes=attrs)
    for op in (w_op, b_op, new):
        rewriter.insert(op, InsertPoint.before(producer))
    dead = [v.owner for v in (*replaced.operands, *producer.inputs[1:])]
    rewriter.replace(replaced, [], [new.outputs[0]])
    rewriter.erase(producer)
    for d in dict.fromkeys(dead):  # parameters nothing else reads
        if isinstance(d, Operation) and d is not producer and d.parent is not None \
                and not any(list(r.uses) for r in d.results):
            rewriter.erase(d)
    return True


class FoldBatchNormIntoProducer(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, donnx.OPS["BatchNormalization"]) or len(op.outputs) != 1:
            return
        producer = single_use_affine_producer(op.inputs[0])
        params = [donnx.constant_array(v) for v in op.inputs[1:5]]
        if producer is None or any(p is None for p in params) or op.attributes.get("training_mode") is not None \
                and donnx.attr_py(op.attributes["training_mode"]):
            return
        if channel_axis(producer) != 1:  # BatchNormalization normalizes axis 1
            return
        gamma, beta, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
        k = gamma / np.sqrt(var + float(op.onnx_attrs().get("epsilon", 1e-5)))
        fold_channel_affine(rewriter, producer, k, beta - mean * k, op, "bn")


@dataclass(frozen=True)
class FoldBatchNormPass(ModulePass):
    name = "fold-batchnorm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([FoldBatchNormIntoProducer()])).rewrite_module(op)
