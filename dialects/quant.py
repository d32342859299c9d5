"""The `quant` dialect: integer tensors and the integer ops that compute on them.

Owns the quantized element type `!quant.uniform` and the ops of quantized IR.
Their meaning is fixed by `qcc.numerics` (docs/numerics.md) and executed by
`qcc.int_kernels`; every backend must reproduce that bit for bit. Requantization
multipliers are not stored: they follow from the operand and result types through
`qcc.numerics`, so the IR cannot hold a multiplier that disagrees with its scales.

    %q = quant.quantize %x : (tensor<1x8xf32>) -> tensor<1x8x!quant.uniform<i8, 0.05, -3>>
    %w = quant.constant {packed = #onnx.dense<tensor<16xui8>, "0x...">}
           : () -> tensor<4x8x!quant.uniform<i4:0, [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0]>>
    %y = quant.fully_connected %q, %w {acc_bits = 32 : i64} : (...) -> tensor<1x4x!quant.uniform<i8, 0.1, 2>>

A per-channel type names its channel axis after the width (`i4:0`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from xdsl.dialects.builtin import (
    BytesAttr,
    DenseArrayBase,
    Float32Type,
    IntAttr,
    TensorType,
    f64,
    i64,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, TypeAttribute
from xdsl.irdl import (
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from qcc import numerics
from qcc.dialects.onnx import QCC_NAME, DenseAttr, attr_py

# ------------------------------------------------------------------- the type


def _float_text(x: float) -> str:
    t = repr(float(x))  # shortest text that reads back to the same double
    if "e" in t and "." not in t.split("e")[0]:
        t = t.replace("e", ".0e")
    return t


_QPARAMS: dict = {}


def _packed(elem, values: np.ndarray) -> DenseArrayBase:
    """A dense array from little-endian numpy data (what DenseArrayBase.from_list
    builds element by element)."""
    return DenseArrayBase(elem, BytesAttr(values.tobytes()))


@irdl_attr_definition
class UniformType(ParametrizedAttribute, TypeAttribute):
    """`!quant.uniform<i8, SCALE, ZP>` or per channel `!quant.uniform<i4:AXIS, [S...], [ZP...]>`:
    real = (q - zp) * scale, q an `i`(signed) or `u`(unsigned) integer of 2, 4, 8, 16 or 32 bits."""

    name = "quant.uniform"

    bits: IntAttr
    signed: IntAttr
    axis: IntAttr  # -1: per tensor
    # packed arrays, not one attribute per channel: a 1024-channel type is one object
    scales: DenseArrayBase
    zero_points: DenseArrayBase

    @staticmethod
    def from_qparams(qp: numerics.QParams) -> UniformType:
        return UniformType(
            IntAttr(qp.bits), IntAttr(int(qp.signed)), IntAttr(-1 if qp.axis is None else qp.axis),
            _packed(f64, np.asarray(qp.scale, "<f8")), _packed(i64, np.asarray(qp.zero_point, "<i8")),
        )

    @property
    def qparams(self) -> numerics.QParams:
        # types are immutable: decode (and validate) each object once. Keyed by identity
        # (hashing a per-channel type hashes every scale); the entry keeps the type alive
        # so the id cannot be reused while cached.
        hit = _QPARAMS.get(id(self))
        if hit is not None and hit[0] is self:
            return hit[1]
        qp = numerics.QParams(
            self.bits.data, bool(self.signed.data),
            tuple(float(x) for x in self.scales.iter_values()),
            tuple(int(z) for z in self.zero_points.iter_values()),
            None if self.axis.data < 0 else self.axis.data,
        )
        if len(_QPARAMS) > 1 << 16:
            _QPARAMS.clear()
        _QPARAMS[id(self)] = (self, qp)
        return qp

    def verify(self) -> None:
        try:
            self.qparams
        except ValueError as e:
            raise VerifyException(f"!quant.uniform: {e}") from None
        if self.axis.data < -1:
            raise VerifyException(f"!quant.uniform: axis {self.axis.data} is negative")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        with parser.in_angle_brackets():
            kind = parser.parse_identifier()
            if len(kind) < 2 or kind[0] not in "iu" or not kind[1:].isdigit():
                parser.raise_error(f"expected a storage type like i8 or u4, got '{kind}'")
            bits, signed = int(kind[1:]), kind[0] == "i"
            axis = -1
            if parser.parse_optional_punctuation(":") is not None:
                axis = parser.parse_integer(allow_negative=False)
            parser.parse_punctuation(",")
            if axis >= 0:
                scales = parser.parse_comma_separated_list(parser.Delimiter.SQUARE, parser.parse_float)
                parser.parse_punctuation(",")
                zps = parser.parse_comma_separated_list(parser.Delimiter.SQUARE, parser.parse_integer)
            else:
                scales = [parser.parse_float()]
                parser.parse_punctuation(",")
                zps = [parser.parse_integer()]
        return [IntAttr(bits), IntAttr(int(signed)), IntAttr(axis),
                _packed(f64, np.asarray(scales, "<f8")), _packed(i64, np.asarray(zps, "<i8"))]

    def print_parameters(self, printer: Printer) -> None:
        kind = f"{'i' if self.signed.data else 'u'}{self.bits.data}"
        s = [_float_text(x) for x in self.scales.iter_values()]
        z = [str(int(x)) for x in self.zero_points.iter_values()]
        if self.axis.data < 0:
            printer.print_string(f"<{kind}, {s[0]}, {z[0]}>")
        else:
            printer.print_string(f"<{kind}:{self.axis.data}, [{', '.join(s)}], [{', '.join(z)}]>")


def qtensor(qp: numerics.QParams, shape: Sequence[int]) -> TensorType:
    return TensorType(UniformType.from_qparams(qp), list(shape))


def qparams_of(t: Attribute) -> numerics.QParams | None:
    """The quantization of a tensor type, or None for a float/plain-integer tensor."""
    if isinstance(t, TensorType) and isinstance(t.element_type, UniformType):
        return t.element_type.qparams
    return None


def _shape(t: Attribute) -> tuple[int, ...]:
    assert isinstance(t, TensorType)
    return tuple(t.get_shape())


# --------------------------------------------------------------------- ops


@dataclass(frozen=True)
class Sig:
    n_in: tuple[int, int] = (1, 1)
    quant_in: tuple[int, ...] = ()
    float_in: tuple[int, ...] = ()
    quant_out: bool = True


class QuantOp(IRDLOperation):
    """Base of the quant ops: operands and results in order, parameters in the
    attribute dictionary (`qcc.name` keeps the ONNX node it came from)."""

    operands_ = var_operand_def()
    results_ = var_result_def()

    assembly_format = "$operands_ attr-dict `:` functional-type($operands_, $results_)"

    # Operand contract checked by verify_: operand count range, which operands are
    # quantized / f32, and whether the result is quantized.
    SIG: ClassVar[Sig] = None  # type: ignore[assignment]

    def __init__(self, operands: Sequence[Any], result_types: Sequence[Attribute],
                 attributes: dict[str, Attribute] | None = None):
        super().__init__(operands=[list(operands)], result_types=[list(result_types)],
                         attributes=attributes or {})

    @property
    def node_name(self) -> str:
        n = self.attributes.get(QCC_NAME)
        return getattr(n, "data", "")

    def attr(self, key: str, default: Any = None) -> Any:
        a = self.attributes.get(key)
        return default if a is None else attr_py(a)

    def where(self) -> str:
        return f"{self.name}" + (f" '{self.node_name}'" if self.node_name else "")

    def verify_(self) -> None:
        sig = self.SIG
        lo, hi = sig.n_in
        n = len(self.operands)
        if not lo <= n <= hi:
            raise VerifyException(f"{self.where()}: takes {lo}..{hi} operands, got {n}")
        if len(self.results) != 1:
            raise VerifyException(f"{self.where()}: has exactly one result")
        for i, v in enumerate(self.operands):
            if not isinstance(v.type, TensorType):
                raise VerifyException(f"{self.where()}: operand {i} must be a tensor")
            self._check_axis(v.type, f"operand {i}")
            if i in sig.quant_in and qparams_of(v.type) is None:
                raise VerifyException(f"{self.where()}: operand {i} must be a quantized tensor, got {v.type}")
            if i in sig.float_in and v.type.element_type != Float32Type():
                raise VerifyException(f"{self.where()}: operand {i} must be f32, got {v.type}")
        y = self.results[0].type
        if not isinstance(y, TensorType):
            raise VerifyException(f"{self.where()}: result must be a tensor")
        self._check_axis(y, "result")
        if sig.quant_out and qparams_of(y) is None:
            raise VerifyException(f"{self.where()}: result must be a quantized tensor, got {y}")
        if not sig.quant_out and y.element_type != Float32Type():
            raise VerifyException(f"{self.where()}: result must be f32, got {y}")
        self.verify_op()

    def verify_op(self) -> None:
        pass

    def _check_axis(self, t: TensorType, what: str) -> None:
        qp = qparams_of(t)
        if qp is None or qp.axis is None:
            return
        shape = _shape(t)
        if qp.axis >= len(shape):
            raise VerifyException(f"{self.where()}: {what} axis {qp.axis} is out of range for rank {len(shape)}")
        if len(qp.scale) != shape[qp.axis]:
            raise VerifyException(
                f"{self.where()}: {what} has {len(qp.scale)} scales for {shape[qp.axis]} channels on axis {qp.axis}")

    # helpers for verifiers
    def _qp(self, v) -> numerics.QParams:
        qp = qparams_of(v.type)
        assert qp is not None
        return qp

    def _per_tensor(self, *idx: int) -> None:
        for i in idx:
            v = self.results[0] if i < 0 else self.operands[i]
            if self._qp(v).axis is not None:
                what = "result" if i < 0 else f"operand {i}"
                raise VerifyException(f"{self.where()}: {what} must be quantized per tensor")

    def _activation_width(self, *idx: int) -> None:
        for i in idx:
            v = self.results[0] if i < 0 else self.operands[i]
            qp = self._qp(v)
            if qp.bits not in (4, 8, 16) or not qp.signed:
                what = "result" if i < 0 else f"operand {i}"
                raise VerifyException(f"{self.where()}: {what} must be a signed 4, 8 or 16-bit activation")

    def _same_qparams(self, a, b) -> None:
        if qparams_of(a.type) != qparams_of(b.type):
            raise VerifyException(f"{self.where()}: result must keep the operand's quantization "
                                  f"({a.type.element_type} vs {b.type.element_type})")

    def _clamp_range(self) -> tuple[int, int]:
        qp = self._qp(self.results[0])
        lo, hi = self.attr("act_min", qp.qmin), self.attr("act_max", qp.qmax)
        if not qp.qmin <= lo <= hi <= qp.qmax:
            raise VerifyException(f"{self.where()}: activation range [{lo}, {hi}] must lie within "
                                  f"[{qp.qmin}, {qp.qmax}] of the result")
        return lo, hi


@irdl_op_definition
class QuantizeOp(QuantOp):
    """q = clamp(round_half_away(x / scale) + zp): float -> integer at the edge of an integer region."""

    name = "quant.quantize"
    SIG: ClassVar[Sig] = Sig(float_in=(0,))

    def verify_op(self) -> None:
        if _shape(self.operands[0].type) != _shape(self.results[0].type):
            raise VerifyException(f"{self.where()}: result shape must equal the operand's")


@irdl_op_definition
class DequantizeOp(QuantOp):
    """x = (q - zp) * scale: integer -> float at the edge of an integer region."""

    name = "quant.dequantize"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,), quant_out=False)

    def verify_op(self) -> None:
        if _shape(self.operands[0].type) != _shape(self.results[0].type):
            raise VerifyException(f"{self.where()}: result shape must equal the operand's")


@irdl_op_definition
class RequantizeOp(QuantOp):
    """Changes scale, zero point or width: y = clamp(requant(q - zp_in, s_in/s_out) + zp_out)."""

    name = "quant.requantize"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        self._per_tensor(0, -1)
        if _shape(self.operands[0].type) != _shape(self.results[0].type):
            raise VerifyException(f"{self.where()}: result shape must equal the operand's")
        ratio = self._qp(self.operands[0]).scale[0] / self._qp(self.results[0]).scale[0]
        if ratio >= 2 ** 30:
            raise VerifyException(f"{self.where()}: scale ratio {ratio} is too large to requantize")
        _check_multipliers(self, ratio)


@irdl_op_definition
class ConstantOp(QuantOp):
    """An integer tensor held packed (`packed`: 2/4-bit values two or four to a
    byte, element 0 in the low bits; 8/16/32-bit values as little-endian bytes)."""

    name = "quant.constant"
    SIG: ClassVar[Sig] = Sig(n_in=(0, 0))

    def verify_op(self) -> None:
        p = self.attributes.get("packed")
        if not isinstance(p, DenseAttr) or p.array.dtype != np.uint8 or p.array.ndim != 1:
            raise VerifyException(f"{self.where()}: 'packed' must be a 1-D #onnx.dense of ui8")
        qp = self._qp(self.results[0])
        n = int(np.prod(_shape(self.results[0].type)))
        want = numerics.packed_size(n, qp.bits)
        if p.array.size != want:
            raise VerifyException(f"{self.where()}: {n} values of {qp.bits} bits pack into {want} bytes, "
                                  f"'packed' holds {p.array.size}")

    def values(self) -> np.ndarray:
        qp = self._qp(self.results[0])
        shape = _shape(self.results[0].type)
        vals = numerics.unpack(self.attributes["packed"].array, qp.bits, int(np.prod(shape)), qp.signed)
        return vals.reshape(shape)

    @staticmethod
    def from_values(values: np.ndarray, qp: numerics.QParams, name: str = "") -> ConstantOp:
        attrs: dict[str, Attribute] = {"packed": DenseAttr(numerics.pack(values, qp.bits))}
        if name:
            from xdsl.dialects.builtin import StringAttr

            attrs[QCC_NAME] = StringAttr(name)
        return ConstantOp([], [qtensor(qp, values.shape)], attrs)


def _check_multipliers(op: QuantOp, reals: Any, acc_bits: int = 32) -> None:
    """Every requantization multiplier the op implies must have a fixed-point form
    (`numerics.quantize_multiplier`), below 128 for the 64-bit requantization."""
    r = np.asarray(reals, np.float64).reshape(-1)
    try:
        _, shift = numerics.quantize_multipliers(r)
    except ValueError as e:
        raise VerifyException(f"{op.where()}: {e}") from None
    if acc_bits == 64 and np.any(shift >= 8):
        raise VerifyException(f"{op.where()}: requantization multiplier {float(r[shift >= 8][0])} must be below "
                              f"128 with acc_bits = 64")


def _weight_checks(op: QuantOp, w_index: int, out_channel_axis: int) -> None:
    """Weights: symmetric (zero point 0), per tensor or per output channel;
    bias: 32-bit, zero point 0, scale = s_x * s_w[c] (to 1e-6 relative)."""
    x, w, y = op._qp(op.operands[0]), op._qp(op.operands[w_index]), op._qp(op.results[0])
    if any(z != 0 for z in w.zero_point) or not w.signed:
        raise VerifyException(f"{op.where()}: weights must be signed with zero point 0 (symmetric)")
    if w.axis is not None and w.axis != out_channel_axis:
        raise VerifyException(f"{op.where()}: weights must be quantized along the output-channel "
                              f"axis {out_channel_axis}, not {w.axis}")
    if w.bits not in (2, 4, 8, 16):
        raise VerifyException(f"{op.where()}: weights must be 2, 4, 8 or 16-bit")
    w_shape = _shape(op.operands[w_index].type)
    if len(w_shape) < 2:
        raise VerifyException(f"{op.where()}: weights must have rank 2 or more, got {list(w_shape)}")
    if len(op.operands) > w_index + 1:
        b = qparams_of(op.operands[w_index + 1].type)
        if b is None or b.bits != 32 or not b.signed or any(z != 0 for z in b.zero_point):
            raise VerifyException(f"{op.where()}: bias must be !quant.uniform<i32, ...> with zero point 0")
        b_shape = _shape(op.operands[w_index + 1].type)
        if math.prod(b_shape) not in (1, w_shape[0]):
            raise VerifyException(f"{op.where()}: bias of shape {list(b_shape)} must hold one value "
                                  f"per output channel ({w_shape[0]}) or one for all")
        want = np.asarray(x.scale[0] * np.asarray(w.scale))
        got = np.asarray(b.scale)
        if want.size != got.size and want.size != 1 and got.size != 1 or not np.allclose(got, want, rtol=1e-6,
                                                                                              atol=0):
            raise VerifyException(f"{op.where()}: bias scales must equal input scale x weight scales")
    acc = op.attr("acc_bits")
    if acc not in (32, 64):
        raise VerifyException(f"{op.where()}: acc_bits must be 32 or 64, got {acc}")
    bound = accumulator_bound(op)
    if bound is not None:
        try:
            need = numerics.accumulator_bits(bound)
        except ValueError as e:
            raise VerifyException(f"{op.where()}: {e}") from None
        if need > acc:
            raise VerifyException(f"{op.where()}: accumulator may reach {bound} > 2^31-1; acc_bits must be 64")
    _check_multipliers(op, x.scale[0] * np.asarray(w.scale, np.float64) / y.scale[0], acc)


def accumulator_bound(op: QuantOp) -> int | None:
    """Proven bound of |acc| for conv/fully_connected with constant weights and bias
    (None if either is not a constant): the largest |acc| any input reaches
    (`numerics.dot_bound_exact`)."""
    w_op = op.operands[1].owner
    if not isinstance(w_op, ConstantOp):
        return None
    if len(op.operands) > 2 and not isinstance(op.operands[2].owner, ConstantOp):
        return None
    w = w_op.values().astype(np.int64)
    w = w.reshape(w.shape[0], -1)
    x = op._qp(op.operands[0])
    bias = 0
    if len(op.operands) > 2:
        bias = op.operands[2].owner.values().astype(np.int64).reshape(-1)
    return numerics.dot_bound_exact(w, x.qmin, x.qmax, x.zero_point[0], bias)


@irdl_op_definition
class ConvOp(QuantOp):
    """Integer convolution (groups and depthwise included), ONNX Conv attributes:
    acc[c] = Σ (x - zp_x) w[c] + bias[c] (padding contributes 0), then
    y = clamp(requant(acc, s_x s_w[c] / s_y) + zp_y, act_min, act_max)."""

    name = "quant.conv"
    SIG: ClassVar[Sig] = Sig(quant_in=(0, 1, 2), n_in=(2, 3))

    def verify_op(self) -> None:
        self._per_tensor(0, -1)
        self._activation_width(0, -1)
        _weight_checks(self, 1, 0)
        self._clamp_range()
        x, w, y = (_shape(v.type) for v in (self.operands[0], self.operands[1], self.results[0]))
        g = self.attr("group", 1)
        if (len(x) != len(w) or len(x) < 3 or len(y) != len(x) or not isinstance(g, int) or g < 1
                or x[1] != w[1] * g or w[0] % g or y[1] != w[0]):
            raise VerifyException(f"{self.where()}: shapes {list(x)} * {list(w)} -> {list(y)} "
                                  f"do not form a convolution with group {g}")


@irdl_op_definition
class FullyConnectedOp(QuantOp):
    """y[..., n] = clamp(requant(Σ_k (x[..., k] - zp_x) w[n, k] + bias[n]) + zp_y): Gemm and
    MatMul with a constant right-hand side (weights stored [N, K])."""

    name = "quant.fully_connected"
    SIG: ClassVar[Sig] = Sig(quant_in=(0, 1, 2), n_in=(2, 3))

    def verify_op(self) -> None:
        self._per_tensor(0, -1)
        self._activation_width(0, -1)
        _weight_checks(self, 1, 0)
        self._clamp_range()
        x, w, y = (_shape(v.type) for v in (self.operands[0], self.operands[1], self.results[0]))
        if len(w) != 2 or not x or x[-1] != w[1] or y != (*x[:-1], w[0]):
            raise VerifyException(f"{self.where()}: shapes {list(x)} x {list(w)}^T -> {list(y)} do not multiply")


@irdl_op_definition
class AddOp(QuantOp):
    """TFLite's integer add: both inputs rescaled to 2·max(s_a, s_b) with 20 (16-bit: 15)
    bits of headroom, summed, requantized to the result, clamped. Broadcasts like ONNX."""

    name = "quant.add"
    SIG: ClassVar[Sig] = Sig(quant_in=(0, 1), n_in=(2, 2))

    def verify_op(self) -> None:
        self._per_tensor(0, 1, -1)
        self._activation_width(0, 1, -1)
        self._clamp_range()
        _check_broadcast(self)


@irdl_op_definition
class MulOp(QuantOp):
    """y = clamp(requant((a - zp_a)(b - zp_b), s_a s_b / s_y) + zp_y). Broadcasts like ONNX."""

    name = "quant.mul"
    SIG: ClassVar[Sig] = Sig(quant_in=(0, 1), n_in=(2, 2))

    def verify_op(self) -> None:
        self._per_tensor(0, 1, -1)
        self._activation_width(0, 1, -1)
        self._clamp_range()
        _check_broadcast(self)
        # the product is requantized as an int32 accumulator (requantize32)
        bound = (numerics.input_max_abs(self._qp(self.operands[0]))
                 * numerics.input_max_abs(self._qp(self.operands[1])))
        if bound > numerics.INT32_MAX:
            raise VerifyException(f"{self.where()}: the product (a - zp_a)(b - zp_b) may reach {bound}, "
                                  f"beyond int32; 16-bit operands need zero points nearer 0")
        a, b, y = (self._qp(v) for v in (self.operands[0], self.operands[1], self.results[0]))
        _check_multipliers(self, a.scale[0] * b.scale[0] / y.scale[0])


def _check_broadcast(op: QuantOp) -> None:
    shapes = [_shape(v.type) for v in op.operands]
    try:
        b = np.broadcast_shapes(*shapes)
    except ValueError:
        raise VerifyException(f"{op.where()}: operand shapes {shapes} do not broadcast") from None
    if tuple(b) != _shape(op.results[0].type):
        raise VerifyException(f"{op.where()}: result shape must be the broadcast shape {list(b)}")


@irdl_op_definition
class ConcatOp(QuantOp):
    """Concatenation along `axis`; an input whose quantization differs from the
    result's is requantized to it first (as quant.requantize)."""

    name = "quant.concat"
    SIG: ClassVar[Sig] = Sig(n_in=(1, 1 << 20))

    def verify_op(self) -> None:
        for i, v in enumerate(self.operands):
            if qparams_of(v.type) is None:
                raise VerifyException(f"{self.where()}: operand {i} must be a quantized tensor")
        self._per_tensor(*range(len(self.operands)), -1)
        bits = {self._qp(v).bits for v in (*self.operands, self.results[0])}
        if len(bits) != 1:
            raise VerifyException(f"{self.where()}: inputs and result must share one bit width, got {sorted(bits)}")
        y = self._qp(self.results[0])
        _check_multipliers(self, [self._qp(v).scale[0] / y.scale[0] for v in self.operands if self._qp(v) != y])
        shapes = [_shape(v.type) for v in self.operands]
        out = _shape(self.results[0].type)
        axis = self.attr("axis", 0)
        if -len(out) <= axis < 0:
            axis += len(out)
        if not 0 <= axis < len(out) or any(len(sh) != len(out) for sh in shapes):
            raise VerifyException(f"{self.where()}: axis {axis} and operand ranks do not fit the result {list(out)}")
        want = list(shapes[0])
        want[axis] = sum(sh[axis] for sh in shapes)
        if any(sh[:axis] + sh[axis + 1:] != out[:axis] + out[axis + 1:] for sh in shapes) or tuple(want) != out:
            raise VerifyException(f"{self.where()}: operand shapes {[list(x) for x in shapes]} do not concatenate "
                                  f"to {list(out)} along axis {axis}")


def _check_pool_shape(op: QuantOp) -> None:
    """kernel_shape is required and the result shape must follow the ONNX pooling formula."""
    from qcc.float_kernels import _pool_geometry

    a, b = _shape(op.operands[0].type), _shape(op.results[0].type)
    ks = op.attr("kernel_shape")
    if not ks or len(a) != len(ks) + 2:
        raise VerifyException(f"{op.where()}: kernel_shape must give one size per spatial axis of {list(a)}")
    attrs = {k: op.attr(k) for k in ("kernel_shape", "strides", "pads", "dilations", "ceil_mode", "auto_pad")
             if k in op.attributes}
    try:
        out = _pool_geometry(attrs, a[2:])[3]
    except (KeyError, ValueError, IndexError, TypeError) as e:
        raise VerifyException(f"{op.where()}: bad pooling attributes ({e})") from None
    want = (*a[:2], *out)
    if b != want:
        raise VerifyException(f"{op.where()}: result shape {list(b)} must be {list(want)}")


@irdl_op_definition
class MaxPoolOp(QuantOp):
    """Max over windows (ONNX MaxPool attributes); quantization unchanged."""

    name = "quant.max_pool"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        self._same_qparams(self.operands[0], self.results[0])
        _check_pool_shape(self)


@irdl_op_definition
class AvgPoolOp(QuantOp):
    """y = zp + round_half_away(Σ_window (x - zp) / count) (ONNX AveragePool
    attributes, count per count_include_pad); quantization unchanged."""

    name = "quant.avg_pool"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        self._same_qparams(self.operands[0], self.results[0])
        self._per_tensor(0)
        if self.attr("ceil_mode", 0) or self.attr("dilations") not in (None, [1] * len(self.attr("kernel_shape", []))):
            raise VerifyException(f"{self.where()}: the integer form has no ceil_mode or dilations")
        _check_pool_shape(self)


@irdl_op_definition
class GlobalAvgPoolOp(QuantOp):
    """y = clamp(requant(Σ_{H,W} (x - zp_x), s_x / (s_y · H·W)) + zp_y)."""

    name = "quant.global_avg_pool"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        self._per_tensor(0, -1)
        self._activation_width(0, -1)
        x = _shape(self.operands[0].type)
        if len(x) < 3 or _shape(self.results[0].type) != (*x[:2], *[1] * (len(x) - 2)):
            raise VerifyException(f"{self.where()}: result shape must be {[*x[:2], *[1] * (len(x) - 2)]}")
        # the window sum is requantized as an int32 accumulator (requantize32)
        bound = numerics.input_max_abs(self._qp(self.operands[0])) * math.prod(x[2:])
        if bound > numerics.INT32_MAX:
            raise VerifyException(f"{self.where()}: the sum over {math.prod(x[2:])} positions may reach "
                                  f"{bound}, beyond int32")
        if math.prod(x[2:]) > 0:
            _check_multipliers(self, self._qp(self.operands[0]).scale[0]
                               / (self._qp(self.results[0]).scale[0] * math.prod(x[2:])))


@irdl_op_definition
class ClampOp(QuantOp):
    """y = clamp(x, act_min, act_max): ReLU, ReLU6 and Clip at unchanged quantization."""

    name = "quant.clamp"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        self._same_qparams(self.operands[0], self.results[0])
        self._clamp_range()


@irdl_op_definition
class LookupOp(QuantOp):
    """y = table[x - qmin(x)]: any elementwise function of an input of at most 8 bits
    (sigmoid, tanh, hard-swish, SiLU, ...), tabulated at lowering time."""

    name = "quant.lookup"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        x, y = self._qp(self.operands[0]), self._qp(self.results[0])
        self._per_tensor(0, -1)
        if x.bits > 8:
            raise VerifyException(f"{self.where()}: lookup tables take inputs of at most 8 bits, got {x.bits}")
        t = self.attributes.get("table")
        if not isinstance(t, DenseAttr) or t.array.shape != (1 << x.bits,):
            raise VerifyException(f"{self.where()}: 'table' must hold {1 << x.bits} entries")
        if t.array.dtype != numerics.storage_dtype(y.bits, y.signed):
            raise VerifyException(f"{self.where()}: 'table' entries must be "
                                  f"{numerics.storage_dtype(y.bits, y.signed)}, got {t.array.dtype}")
        if t.array.min(initial=y.qmin) < y.qmin or t.array.max(initial=y.qmax) > y.qmax:
            raise VerifyException(f"{self.where()}: 'table' entries leave the result's range")
        if _shape(self.operands[0].type) != _shape(self.results[0].type):
            raise VerifyException(f"{self.where()}: result shape must equal the operand's")


@irdl_op_definition
class PadOp(QuantOp):
    """Constant padding (ONNX `pads` order) with the integer `value` (default the zero point)."""

    name = "quant.pad"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        self._same_qparams(self.operands[0], self.results[0])
        a, b = _shape(self.operands[0].type), _shape(self.results[0].type)
        pads = self.attr("pads")
        if pads is None or len(pads) != 2 * len(a) or min(pads, default=0) < 0:
            raise VerifyException(f"{self.where()}: pads must hold {2 * len(a)} non-negative values")
        want = tuple(a[i] + pads[i] + pads[i + len(a)] for i in range(len(a)))
        if b != want:
            raise VerifyException(f"{self.where()}: result shape {list(b)} must be {list(want)}")


@irdl_op_definition
class ResizeOp(QuantOp):
    """Nearest-neighbour resize (ONNX Resize attributes, `scales`/`sizes` as attributes);
    quantization unchanged."""

    name = "quant.resize"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        self._same_qparams(self.operands[0], self.results[0])
        if self.attr("mode", "nearest") != "nearest":
            raise VerifyException(f"{self.where()}: only mode 'nearest' has an integer form")


@irdl_op_definition
class ReshapeOp(QuantOp):
    """Same values, new shape (Reshape, Flatten, Squeeze, Unsqueeze)."""

    name = "quant.reshape"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        self._same_qparams(self.operands[0], self.results[0])
        self._per_tensor(0)
        a, b = _shape(self.operands[0].type), _shape(self.results[0].type)
        if math.prod(a) != math.prod(b):
            raise VerifyException(f"{self.where()}: cannot reshape {list(a)} to {list(b)}")


@irdl_op_definition
class TransposeOp(QuantOp):
    """Permutes dimensions by `perm`; quantization unchanged."""

    name = "quant.transpose"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        self._same_qparams(self.operands[0], self.results[0])
        self._per_tensor(0)
        perm = self.attr("perm")
        a, b = _shape(self.operands[0].type), _shape(self.results[0].type)
        if perm is None or sorted(perm) != list(range(len(a))) or tuple(a[p] for p in perm) != b:
            raise VerifyException(f"{self.where()}: perm {perm} does not map {list(a)} to {list(b)}")


@irdl_op_definition
class ChannelScaleOp(QuantOp):
    """Squeeze-excite's channel scaling: x [N, C, ...] times s [N, C, 1, ...], one
    scale per (sample, channel). The arithmetic is quant.mul's,
    y = clamp(requant((x - zp_x)(s - zp_s), s_x s_s / s_y) + zp_y, act_min, act_max),
    with the scale loaded once per channel."""

    name = "quant.channel_scale"
    SIG: ClassVar[Sig] = Sig(quant_in=(0, 1), n_in=(2, 2))

    def verify_op(self) -> None:
        self._per_tensor(0, 1, -1)
        self._activation_width(0, 1, -1)
        self._clamp_range()
        x, sc, y = (_shape(v.type) for v in (self.operands[0], self.operands[1], self.results[0]))
        if len(x) < 3 or sc != (*x[:2], *[1] * (len(x) - 2)) or y != x:
            raise VerifyException(f"{self.where()}: shapes {list(x)} * {list(sc)} -> {list(y)} must be "
                                  f"[N, C, ...] * [N, C, 1, ...] -> [N, C, ...]")
        bound = (numerics.input_max_abs(self._qp(self.operands[0]))
                 * numerics.input_max_abs(self._qp(self.operands[1])))
        if bound > numerics.INT32_MAX:
            raise VerifyException(f"{self.where()}: the product (x - zp_x)(s - zp_s) may reach {bound}, beyond int32")
        a, b, r = (self._qp(v) for v in (self.operands[0], self.operands[1], self.results[0]))
        _check_multipliers(self, a.scale[0] * b.scale[0] / r.scale[0])


def _window_checks(op: QuantOp, full: tuple[int, ...], window: tuple[int, ...]) -> None:
    """`offsets` places `window` inside `full`: one non-negative offset per axis, the window inside."""
    offs = op.attr("offsets")
    if not isinstance(offs, list) or len(offs) != len(full) or any(not isinstance(o, int) or o < 0 for o in offs):
        raise VerifyException(f"{op.where()}: offsets must hold {len(full)} non-negative values, got {offs}")
    if len(window) != len(full) or any(o + w > f for o, w, f in zip(offs, window, full)):
        raise VerifyException(f"{op.where()}: a window {list(window)} at offsets {offs} does not fit in "
                              f"{list(full)}")


@irdl_op_definition
class SliceOp(QuantOp):
    """y = x[o0:o0+d0, o1:o1+d1, ...]: a static window of `x` at `offsets`, the
    result's shape d (patch-based inference: one patch's input region)."""

    name = "quant.slice"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        self._same_qparams(self.operands[0], self.results[0])
        _window_checks(self, _shape(self.operands[0].type), _shape(self.results[0].type))


@irdl_op_definition
class InsertSliceOp(QuantOp):
    """y = dest with y[o0:o0+d0, ...] = tile (d the tile's shape); without `dest`,
    y holds the zero point outside the window. Patch-based inference assembles the
    split tensor from its patches this way; the C backend writes the tile into
    dest's buffer in place."""

    name = "quant.insert_slice"
    SIG: ClassVar[Sig] = Sig(quant_in=(0, 1), n_in=(1, 2))

    def verify_op(self) -> None:
        self._per_tensor(-1)
        for v in self.operands:
            self._same_qparams(v, self.results[0])
        y = _shape(self.results[0].type)
        if len(self.operands) == 2 and _shape(self.operands[0].type) != y:
            raise VerifyException(f"{self.where()}: result shape {list(y)} must equal dest's "
                                  f"{list(_shape(self.operands[0].type))}")
        _window_checks(self, y, _shape(self.operands[-1].type))


SOFTMAX_RECIPROCAL_BITS = 46


def softmax_qparams(bits: int) -> numerics.QParams:
    """The fixed result quantization of quant.softmax: scale 2^-B, zero point -2^(B-1)
    (TFLite's int8 softmax output), so codes cover [0, 1)."""
    return numerics.QParams(bits, True, (2.0 ** -bits,), (-(1 << (bits - 1)),), None)


@irdl_op_definition
class SoftmaxOp(QuantOp):
    """Integer softmax along `axis` (docs/numerics.md): E = table[max(x) - x] (exp by
    lookup, table[0] = 2^Q), sum in int32, one fixed-point reciprocal per row,
    y = clamp(zp_y + (E * recip + 2^(45 - B)) >> (46 - B)); result scale 2^-B."""

    name = "quant.softmax"
    SIG: ClassVar[Sig] = Sig(quant_in=(0,))

    def verify_op(self) -> None:
        self._per_tensor(0, -1)
        x, y = self._qp(self.operands[0]), self._qp(self.results[0])
        shape = _shape(self.operands[0].type)
        if _shape(self.results[0].type) != shape:
            raise VerifyException(f"{self.where()}: result shape must equal the operand's")
        if x.bits > 8 or not x.signed:
            raise VerifyException(f"{self.where()}: the input must be signed with at most 8 bits, got {x.bits}")
        if y.bits not in (4, 8) or y != softmax_qparams(y.bits):
            raise VerifyException(f"{self.where()}: the result must be {y.bits}-bit with scale 2^-{y.bits} "
                                  f"and zero point {-(1 << (y.bits - 1))}")
        axis = self.attr("axis")
        if not isinstance(axis, int) or not 0 <= axis < len(shape):
            raise VerifyException(f"{self.where()}: axis must be in [0, {len(shape)}), got {axis}")
        t = self.attributes.get("table")
        if not isinstance(t, DenseAttr) or t.array.shape != (1 << x.bits,) or t.array.dtype != np.int32:
            raise VerifyException(f"{self.where()}: 'table' must hold {1 << x.bits} int32 entries")
        e = t.array.astype(np.int64)
        if e[0] < 1 or np.any(e < 0) or np.any(np.diff(e) > 0):
            raise VerifyException(f"{self.where()}: 'table' must be positive at 0 and non-increasing")
        if e[0] * shape[axis] > numerics.INT32_MAX:
            raise VerifyException(f"{self.where()}: {shape[axis]} entries of up to {e[0]} overflow the int32 sum")


QUANT_OPS = [QuantizeOp, DequantizeOp, RequantizeOp, ConstantOp, ConvOp, FullyConnectedOp, AddOp, MulOp,
             ConcatOp, MaxPoolOp, AvgPoolOp, GlobalAvgPoolOp, ClampOp, LookupOp, PadOp, ResizeOp, ReshapeOp,
             TransposeOp, ChannelScaleOp, SoftmaxOp, SliceOp, InsertSliceOp]

QUANT = Dialect("quant", QUANT_OPS, [UniformType])

__all__ = ["QUANT", "QUANT_OPS", "UniformType", "qtensor", "qparams_of", "accumulator_bound", "softmax_qparams",
           *(c.__name__ for c in QUANT_OPS)]
