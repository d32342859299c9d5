"""`lower-to-quant`: calibrated `onnx` IR -> integer `quant` IR.

Every op with an integer form and a calibrated range becomes quant ops at the
widths it carries (`qcc.w_bits`, `qcc.a_bits`; 8 when absent): weights
symmetric per output channel and packed, bias int32 at s_x·s_w, activations
per tensor (asymmetric at 4/8 bits, symmetric at 16), accumulator width proven
from the constant weights. Data-movement ops (pooling, reshape, transpose, pad,
nearest resize, clamp) keep their input's quantization and lower only when
their input is already integer. Quantize and dequantize appear only at the
edges of integer regions; an op with no integer form stays float and is listed
in `qcc.float_ops` on the module (the report shows it), never an error.

One walk in program order with a value map: O(number of ops).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    Float32Type,
    IntegerAttr,
    ModuleOp,
    NoneType,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from qcc import numerics as nx
from qcc.dialects import onnx as donnx
from qcc.dialects import quant as q
from qcc.float_kernels import KERNELS
from qcc.passes.calibrate import arg_value_attrs, tensor_range

W_BITS = "qcc.w_bits"
A_BITS = "qcc.a_bits"
FLOAT_OPS = "qcc.float_ops"

_LOOKUP = {"Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Swish", "Elu", "Gelu", "LeakyRelu", "Softplus",
           "Selu", "Celu", "Mish", "Softsign", "Exp", "Erf", "Neg", "Abs", "Sqrt", "Reciprocal", "Log"}
_RESHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}


def bits_of(op: Operation, key: str, default: int = 8) -> int:
    a = op.attributes.get(key)
    return int(a.value.data) if isinstance(a, IntegerAttr) else default


def activation_qparams(lo: float, hi: float, bits: int) -> nx.QParams:
    return nx.choose_qparams(lo, hi, bits, signed=True, symmetric=(bits == 16))


def softmax_table(x_qp: nx.QParams, n: int) -> np.ndarray | None:
    """quant.softmax's exp table for rows of `n` codes: round(2^Q exp(-S_x k)) for every
    code distance k, Q = min(21, 30 - bitlength(n - 1)) so that the row sum stays in
    int32; None when that leaves fewer than 8 bits (docs/numerics.md)."""
    q_bits = min(21, 30 - max(n - 1, 1).bit_length())
    if q_bits < 8:
        return None
    k = np.arange(1 << x_qp.bits, dtype=np.float64)
    return nx.round_half_away(np.exp(-x_qp.scale[0] * k) * (1 << q_bits)).astype(np.int32)


def range_source(op: Operation) -> Operation:
    """A result consumed only by a ReLU/Clip takes that activation's range: the
    clamp then costs no resolution (all codes cover what survives it), as in
    TFLite's fused activations."""
    uses = list(op.results[0].uses) if len(op.results) == 1 else []
    if len(uses) == 1:
        user = uses[0].operation
        if isinstance(user, donnx.OnnxOp) and user.onnx_type in ("Relu", "Clip") \
                and user.inputs[0] is op.results[0] and bits_of(user, A_BITS) == bits_of(op, A_BITS):
            return user
    return op


class _Lowering:
    def __init__(self, module: ModuleOp):
        self.module = module
        self.fn = next(o for o in module.ops if isinstance(o, func.FuncOp) and o.sym_name.data == "main")
        self.block = self.fn.body.block
        self.qmap: dict[SSAValue, SSAValue] = {}  # float value -> its integer version
        self.quantized: dict[tuple[SSAValue, int], SSAValue] = {}
        self.dequantized: dict[SSAValue, SSAValue] = {}
        self.lowered: list[Operation] = []
        self.float_ops: list[str] = []

    # ---------------------------------------------------------- helpers
    def insert(self, new: Operation, before: Operation) -> Operation:
        Rewriter.insert_op(new, InsertPoint.before(before))
        return new

    def range_of(self, v: SSAValue, bits: int) -> tuple[float, float] | None:
        return tensor_range(arg_value_attrs(self.module, v), bits)

    def qval(self, v: SSAValue, bits: int, before: Operation) -> SSAValue | None:
        """Integer version of float value `v`: the lowered producer's result, or a
        quant.quantize at `bits` with v's calibrated range (None without one)."""
        if v in self.qmap:
            return self.qmap[v]
        key = (v, bits)
        if key in self.quantized:
            return self.quantized[key]
        c = donnx.constant_array(v)
        if c is not None and c.dtype.kind == "f":
            qp = activation_qparams(float(c.min(initial=0)), float(c.max(initial=0)), bits)
            new = q.ConstantOp.from_values(nx.quantize(c, qp), qp)
            self.insert(new, before)
        else:
            r = self.range_of(v, bits)
            if r is None or not isinstance(v.type, TensorType) or v.type.element_type != Float32Type():
                return None
            qp = activation_qparams(*r, bits)
            new = q.QuantizeOp([v], [q.qtensor(qp, v.type.get_shape())])
            self.insert(new, before)
        self.quantized[key] = new.results[0]
        return new.results[0]

    def fval(self, v: SSAValue) -> SSAValue:
        """Float version of a value whose producer was lowered."""
        qv = self.qmap.get(v)
        if qv is None:
            return v
        if v not in self.dequantized:
            new = q.DequantizeOp([qv], [v.type])
            Rewriter.insert_op(new, InsertPoint.after(qv.owner) if isinstance(qv.owner, Operation)
                               else InsertPoint.at_start(self.block))
            self.dequantized[v] = new.results[0]
        return self.dequantized[v]

    def out_qparams(self, op: Operation, bits: int) -> nx.QParams | None:
        r = tensor_range(range_source(op).attributes, bits)
        return None if r is None else activation_qparams(*r, bits)

    def emit(self, op: donnx.OnnxOp, new: Operation) -> None:
        name = op.attributes.get(donnx.QCC_NAME)
        if name is not None:
            new.attributes[donnx.QCC_NAME] = name
        for k in (W_BITS, A_BITS):
            if k in op.attributes:
                new.attributes[k] = op.attributes[k]
        self.insert(new, op)
        self.qmap[op.results[0]] = new.results[0]
        self.lowered.append(op)

    # ---------------------------------------------------------- the walk
    def run(self) -> None:
        for op in list(self.block.ops):
            if isinstance(op, func.ReturnOp):
                for i, v in enumerate(op.operands):
                    if v in self.qmap:
                        op.operands[i] = self.fval(v)
                continue
            if not isinstance(op, donnx.OnnxOp) or op.onnx_type == "Constant":
                continue
            handler = getattr(self, f"lower_{op.onnx_type}", None)
            if op.onnx_type in _LOOKUP:
                handler = self.lower_lookup
            elif op.onnx_type in _RESHAPES:
                handler = self.lower_reshape
            done = handler is not None and len(op.results) == 1 and handler(op)
            if not done:
                if op.onnx_type != "NoValue":
                    self.float_ops.append(f"{op.node_name or op.onnx_type} ({op.onnx_type})")
                for i, v in enumerate(op.operands):
                    if v in self.qmap:
                        op.operands[i] = self.fval(v)
        for op in reversed(self.lowered):
            for r in op.results:
                if r.uses:
                    r.replace_all_uses_with(self.fval(r))
            Rewriter.erase_op(op)
        for op in list(self.block.ops):  # constants only the float graph used
            if isinstance(op, donnx.OnnxOp) and op.onnx_type == "Constant" and not op.results[0].uses:
                Rewriter.erase_op(op)
        self.module.attributes[FLOAT_OPS] = ArrayAttr([StringAttr(s) for s in self.float_ops])

    # ---------------------------------------------------------- dot products
    def _weights_bias(self, op, w: np.ndarray, b: np.ndarray | None, x_qp: nx.QParams, w_bits: int,
                      name: str):
        wq_p = nx.weight_qparams(w, w_bits, axis=0)
        wq = nx.quantize(w, wq_p, narrow=True)
        w_op = q.ConstantOp.from_values(wq, wq_p, f"{name}.weight")
        self.insert(w_op, op)
        bias_scales = tuple(x_qp.scale[0] * s for s in wq_p.scale)
        b_qp = nx.QParams(32, True, bias_scales, tuple(0 for _ in bias_scales), 0)
        bvals = np.zeros(w.shape[0]) if b is None else b.astype(np.float64).reshape(-1)
        bq = np.clip(nx.round_half_away(bvals / np.asarray(bias_scales)), nx.INT32_MIN, nx.INT32_MAX).astype(np.int32)
        b_op = q.ConstantOp.from_values(bq, b_qp, f"{name}.bias")
        self.insert(b_op, op)
        bound = nx.dot_bound_exact(wq.reshape(w.shape[0], -1), x_qp.qmin, x_qp.qmax, x_qp.zero_point[0], bq)
        return w_op, b_op, nx.accumulator_bits(bound)

    def lower_Conv(self, op) -> bool:
        w = donnx.constant_array(op.inputs[1])
        b = donnx.constant_array(op.inputs[2]) if len(op.inputs) > 2 and not isinstance(
            op.inputs[2].type, NoneType) else None
        if w is None or (len(op.inputs) > 2 and not isinstance(op.inputs[2].type, NoneType) and b is None):
            return False
        a_bits, w_bits = bits_of(op, A_BITS), bits_of(op, W_BITS)
        y_qp = self.out_qparams(op, a_bits)
        x = self.qval(op.inputs[0], a_bits, op)
        if y_qp is None or x is None:
            return False
        x_qp = q.qparams_of(x.type)
        w_op, b_op, acc = self._weights_bias(op, w, b, x_qp, w_bits, op.node_name)
        attrs = {k: v for k, v in op.attributes.items() if k in ("strides", "pads", "dilations", "group",
                                                                 "auto_pad", "kernel_shape")}
        attrs["acc_bits"] = IntegerAttr(acc, i64)
        self.emit(op, q.ConvOp([x, w_op.results[0], b_op.results[0]],
                               [q.qtensor(y_qp, op.results[0].type.get_shape())], attrs))
        return True

    def _fc(self, op, x_in: SSAValue, w: np.ndarray, b: np.ndarray | None) -> bool:
        a_bits, w_bits = bits_of(op, A_BITS), bits_of(op, W_BITS)
        y_qp = self.out_qparams(op, a_bits)
        x = self.qval(x_in, a_bits, op)
        if y_qp is None or x is None:
            return False
        x_qp = q.qparams_of(x.type)
        w_op, b_op, acc = self._weights_bias(op, w, b, x_qp, w_bits, op.node_name)
        self.emit(op, q.FullyConnectedOp([x, w_op.results[0], b_op.results[0]],
                                         [q.qtensor(y_qp, op.results[0].type.get_shape())],
                                         {"acc_bits": IntegerAttr(acc, i64)}))
        return True

    def lower_Gemm(self, op) -> bool:
        a = op.onnx_attrs()
        w = donnx.constant_array(op.inputs[1])
        if w is None or a.get("transA", 0) or len(op.inputs[0].type.get_shape()) != 2:
            return False
        w = w.astype(np.float64) * a.get("alpha", 1.0)
        w = w if a.get("transB", 0) else w.T
        b = None
        if len(op.inputs) > 2 and not isinstance(op.inputs[2].type, NoneType):
            c = donnx.constant_array(op.inputs[2])
            if c is None or c.size not in (1, w.shape[0]):
                return False
            b = np.broadcast_to(c.astype(np.float64).reshape(-1), (w.shape[0],)) * a.get("beta", 1.0)
        return self._fc(op, op.inputs[0], w, b)

    def lower_MatMul(self, op) -> bool:
        w = donnx.constant_array(op.inputs[1])
        if w is None or w.ndim != 2 or len(op.inputs[0].type.get_shape()) < 2:
            return False
        return self._fc(op, op.inputs[0], w.astype(np.float64).T, None)

    # ---------------------------------------------------------- elementwise
    def _binary(self, op, cls, order: tuple[int, int] = (0, 1)) -> bool:
        a_bits = bits_of(op, A_BITS)
        y_qp = self.out_qparams(op, a_bits)
        if y_qp is None:
            return False
        ins = [self.qval(op.inputs[i], a_bits, op) for i in order]
        if any(v is None for v in ins) or any(q.qparams_of(v.type).axis is not None for v in ins):
            return False
        self.emit(op, cls(ins, [q.qtensor(y_qp, op.results[0].type.get_shape())], {}))
        return True

    def lower_Add(self, op) -> bool:
        return self._binary(op, q.AddOp)

    def lower_Mul(self, op) -> bool:
        shapes = [tuple(v.type.get_shape()) for v in op.inputs]
        y = tuple(op.results[0].type.get_shape())
        for i in (0, 1):  # squeeze-excite: x [N, C, ...] * s [N, C, 1, ...]
            if len(y) >= 3 and shapes[i] == y and shapes[1 - i] == (*y[:2], *[1] * (len(y) - 2)):
                return self._binary(op, q.ChannelScaleOp, order=(i, 1 - i))
        return self._binary(op, q.MulOp)

    def lower_Softmax(self, op) -> bool:
        """Integer softmax (docs/numerics.md) for inputs of at most 8 bits, along one
        axis other than the sample axis."""
        shape = op.inputs[0].type.get_shape()
        rank = len(shape)
        a = op.onnx_attrs()
        axis = int(a.get("axis", -1 if _opset(self.module) >= 13 else 1)) % max(rank, 1)
        if rank < 2 or axis == 0 or (_opset(self.module) < 13 and axis != rank - 1):
            return False  # opset < 13 flattens from axis: one axis only when it is the last
        bits = min(bits_of(op, A_BITS), 8)
        x = self.qmap.get(op.inputs[0]) or self.qval(op.inputs[0], bits, op)
        if x is None:
            return False
        x_qp = q.qparams_of(x.type)
        if x_qp.bits > 8 or x_qp.axis is not None or not x_qp.signed:
            return False
        table = softmax_table(x_qp, shape[axis])
        if table is None:
            return False
        y_qp = q.softmax_qparams(8)  # probabilities keep 8 bits even after a 4-bit input: one small tensor
        self.emit(op, q.SoftmaxOp([x], [q.qtensor(y_qp, shape)],
                                  {"axis": IntegerAttr(axis, i64), "table": donnx.DenseAttr(table)}))
        return True

    def lower_Relu(self, op) -> bool:
        return self._clamp(op, 0.0, None)

    def lower_Clip(self, op) -> bool:
        a = op.onnx_attrs()
        lo, hi = a.get("min"), a.get("max")
        if len(op.inputs) > 1 and not isinstance(op.inputs[1].type, NoneType):
            c = donnx.constant_array(op.inputs[1])
            if c is None:
                return False
            lo = float(c)
        if len(op.inputs) > 2 and not isinstance(op.inputs[2].type, NoneType):
            c = donnx.constant_array(op.inputs[2])
            if c is None:
                return False
            hi = float(c)
        return self._clamp(op, lo, hi)

    def _clamp(self, op, lo: float | None, hi: float | None) -> bool:
        x = self.qmap.get(op.inputs[0])
        if x is None:
            return False
        qp = q.qparams_of(x.type)
        if qp.axis is not None:
            return False
        qlo = qp.qmin if lo is None else int(np.clip(nx.quantize(np.array(lo), qp), qp.qmin, qp.qmax))
        qhi = qp.qmax if hi is None else int(np.clip(nx.quantize(np.array(hi), qp), qp.qmin, qp.qmax))
        self.emit(op, q.ClampOp([x], [x.type], {"act_min": IntegerAttr(qlo, i64), "act_max": IntegerAttr(qhi, i64)}))
        return True

    def lower_lookup(self, op) -> bool:
        x = self.qmap.get(op.inputs[0])
        a_bits = bits_of(op, A_BITS)
        if x is None:
            x = self.qval(op.inputs[0], min(a_bits, 8), op)
        if x is None or len(op.inputs) != 1:
            return False
        x_qp = q.qparams_of(x.type)
        if x_qp.bits > 8 or x_qp.axis is not None:
            return False
        y_qp = self.out_qparams(op, a_bits)
        if y_qp is None:
            return False
        codes = np.arange(x_qp.qmin, x_qp.qmax + 1)
        real = nx.dequantize(codes, x_qp)
        f = KERNELS[op.onnx_type]([real.astype(np.float32)], op.onnx_attrs(), _opset(self.module))[0]
        table = nx.quantize(np.asarray(f, np.float64), y_qp)
        self.emit(op, q.LookupOp([x], [q.qtensor(y_qp, op.results[0].type.get_shape())],
                                 {"table": donnx.DenseAttr(table)}))
        return True

    # ---------------------------------------------------------- pooling and data movement
    def _same(self, op, cls, attrs: dict[str, Attribute], per_tensor: bool = True) -> bool:
        x = self.qmap.get(op.inputs[0])
        if x is None or (per_tensor and q.qparams_of(x.type).axis is not None):
            return False
        self.emit(op, cls([x], [TensorType(x.type.element_type, op.results[0].type.get_shape())], attrs))
        return True

    def lower_MaxPool(self, op) -> bool:
        if len(op.results) != 1:
            return False
        return self._same(op, q.MaxPoolOp, _copy(op, "kernel_shape", "strides", "pads", "dilations", "ceil_mode",
                                                 "auto_pad", "storage_order"))

    def lower_AveragePool(self, op) -> bool:
        a = op.onnx_attrs()
        if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [])) or a.get("auto_pad", "NOTSET") \
                not in ("NOTSET", "VALID"):
            return False
        return self._same(op, q.AvgPoolOp, _copy(op, "kernel_shape", "strides", "pads", "count_include_pad"))

    def _global_pool(self, op) -> bool:
        a_bits = bits_of(op, A_BITS)
        x = self.qval(op.inputs[0], a_bits, op)
        y_qp = self.out_qparams(op, a_bits)
        if x is None or y_qp is None or q.qparams_of(x.type).axis is not None:
            return False
        self.emit(op, q.GlobalAvgPoolOp([x], [q.qtensor(y_qp, op.results[0].type.get_shape())], {}))
        return True

    def lower_GlobalAveragePool(self, op) -> bool:
        return self._global_pool(op)

    def lower_ReduceMean(self, op) -> bool:
        a = op.onnx_attrs()
        axes = a.get("axes")
        if len(op.inputs) > 1 and not isinstance(op.inputs[1].type, NoneType):
            c = donnx.constant_array(op.inputs[1])
            axes = None if c is None else [int(v) for v in c.reshape(-1)]
        rank = len(op.inputs[0].type.get_shape())
        if axes is None or rank < 3 or not a.get("keepdims", 1):
            return False
        if sorted(ax % rank for ax in axes) != list(range(2, rank)):
            return False
        return self._global_pool(op)

    def lower_Concat(self, op) -> bool:
        a_bits = bits_of(op, A_BITS)
        y_qp = self.out_qparams(op, a_bits)
        if y_qp is None:
            return False
        ins = []
        for v in op.inputs:
            x = self.qval(v, a_bits, op)
            if x is None or q.qparams_of(x.type).axis is not None:
                return False
            if q.qparams_of(x.type).bits != y_qp.bits:
                r = q.RequantizeOp([x], [q.qtensor(y_qp, x.type.get_shape())])
                self.insert(r, op)
                x = r.results[0]
            ins.append(x)
        axis = op.onnx_attrs()["axis"] % len(op.results[0].type.get_shape())
        self.emit(op, q.ConcatOp(ins, [q.qtensor(y_qp, op.results[0].type.get_shape())],
                                 {"axis": IntegerAttr(axis, i64)}))
        return True

    def lower_reshape(self, op) -> bool:
        return self._same(op, q.ReshapeOp, {})

    def lower_Transpose(self, op) -> bool:
        perm = op.onnx_attrs().get("perm")
        if perm is None:
            perm = list(reversed(range(len(op.inputs[0].type.get_shape()))))
        return self._same(op, q.TransposeOp, {"perm": donnx.py_attr([int(p) for p in perm])})

    def lower_Pad(self, op) -> bool:
        a = op.onnx_attrs()
        if a.get("mode", "constant") != "constant":
            return False
        pads = a.get("pads")
        if len(op.inputs) > 1:
            c = donnx.constant_array(op.inputs[1])
            pads = None if c is None else [int(v) for v in c]
        value = a.get("value", 0.0)
        if len(op.inputs) > 2 and not isinstance(op.inputs[2].type, NoneType):
            c = donnx.constant_array(op.inputs[2])
            value = None if c is None else float(c)
        if len(op.inputs) > 3 or pads is None or value != 0.0:
            return False
        return self._same(op, q.PadOp, {"pads": donnx.py_attr(pads)})

    def lower_Resize(self, op) -> bool:
        a = op.onnx_attrs()
        if a.get("mode", "nearest") != "nearest" or a.get("coordinate_transformation_mode") == "tf_crop_and_resize":
            return False
        return self._same(op, q.ResizeOp, _copy(op, "mode", "coordinate_transformation_mode", "nearest_mode"))


def _copy(op, *keys: str) -> dict[str, Attribute]:
    return {k: op.attributes[k] for k in keys if k in op.attributes}


def _opset(module: ModuleOp) -> int:
    a = module.attributes.get("onnx.opset")
    return int(a.value.data) if isinstance(a, IntegerAttr) else 18


@dataclass(frozen=True)
class LowerToQuantPass(ModulePass):
    name = "lower-to-quant"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        _Lowering(op).run()
