"""The `onnx` dialect: ONNX operators as typed xDSL operations.

Owns the op classes (one per supported ONNX op type, generated from one table),
the `#onnx.dense` attribute that holds constant tensors as raw bytes, and the
conversions between xDSL attributes/types and numpy/Python values. Attribute
names, types, and operand/result counts are verified against the ONNX operator
schemas shipped with the pinned `onnx` package, so the dialect follows ONNX
semantics without restating them.

Textual form (the ONNX attributes live in the attribute dictionary):

    %y = onnx.Conv %x, %w, %b {group = 1 : i64, strides = array<i64: 2, 2>}
           : (tensor<1x3x32x32xf32>, tensor<8x3x3x3xf32>, tensor<8xf32>) -> tensor<1x8x16x16xf32>

An omitted optional ONNX input is an operand produced by `onnx.NoValue`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import numpy as np
from xdsl.dialects.builtin import (
    ArrayAttr,
    BFloat16Type,
    DenseArrayBase,
    Float16Type,
    Float32Type,
    Float64Type,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    NoneType,
    Signedness,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, Data, Dialect, SSAValue, TypeAttribute
from xdsl.irdl import (
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    result_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

# --------------------------------------------------------------------------- types

_NP_TO_ELEM: dict[np.dtype, TypeAttribute] = {
    np.dtype(np.float32): Float32Type(),
    np.dtype(np.float64): Float64Type(),
    np.dtype(np.float16): Float16Type(),
    np.dtype(np.int8): IntegerType(8),
    np.dtype(np.int16): IntegerType(16),
    np.dtype(np.int32): IntegerType(32),
    np.dtype(np.int64): IntegerType(64),
    np.dtype(np.uint8): IntegerType(8, Signedness.UNSIGNED),
    np.dtype(np.uint16): IntegerType(16, Signedness.UNSIGNED),
    np.dtype(np.uint32): IntegerType(32, Signedness.UNSIGNED),
    np.dtype(np.uint64): IntegerType(64, Signedness.UNSIGNED),
    np.dtype(np.bool_): IntegerType(1),
}
_ELEM_TO_NP: dict[Attribute, np.dtype] = {v: k for k, v in _NP_TO_ELEM.items()}

try:  # bfloat16 is optional: numpy has none, ml_dtypes (an onnx dependency) does
    import ml_dtypes

    _BF16 = np.dtype(ml_dtypes.bfloat16)
    _NP_TO_ELEM[_BF16] = BFloat16Type()
    _ELEM_TO_NP[BFloat16Type()] = _BF16
    # the ONNX sub-byte and 8-bit float types (one element per byte in numpy)
    from xdsl.dialects import builtin as _b

    for _np_t, _elem in (
        (ml_dtypes.float8_e4m3fn, _b.Float8E4M3FNType()),
        (ml_dtypes.float8_e4m3fnuz, _b.Float8E4M3FNUZType()),
        (ml_dtypes.float8_e5m2, _b.Float8E5M2Type()),
        (ml_dtypes.float8_e5m2fnuz, _b.Float8E5M2FNUZType()),
        (ml_dtypes.float8_e8m0fnu, _b.Float8E8M0FNUType()),
        (ml_dtypes.float4_e2m1fn, _b.Float4E2M1FNType()),
        (ml_dtypes.int4, IntegerType(4)),
        (ml_dtypes.uint4, IntegerType(4, Signedness.UNSIGNED)),
        (ml_dtypes.int2, IntegerType(2)),
        (ml_dtypes.uint2, IntegerType(2, Signedness.UNSIGNED)),
    ):
        _NP_TO_ELEM[np.dtype(_np_t)] = _elem
        _ELEM_TO_NP[_elem] = np.dtype(_np_t)
except ImportError:  # pragma: no cover
    pass


def element_type(dtype: np.dtype | type) -> TypeAttribute:
    dt = np.dtype(dtype)
    if dt not in _NP_TO_ELEM:
        raise ValueError(f"element type {dt} is not supported")
    return _NP_TO_ELEM[dt]


def numpy_dtype(elem: Attribute) -> np.dtype:
    if elem not in _ELEM_TO_NP:
        raise ValueError(f"element type {elem} has no numpy equivalent")
    return _ELEM_TO_NP[elem]


def tensor_type(dtype: np.dtype | type, shape: Sequence[int]) -> TensorType:
    return TensorType(element_type(dtype), [int(d) for d in shape])


def static_shape(t: Attribute) -> tuple[int, ...]:
    assert isinstance(t, TensorType)
    return tuple(int(d) for d in t.get_shape())


# ------------------------------------------------------------------ constant data


@dataclass(frozen=True, eq=False)
class Blob:
    """An immutable numpy array usable as xDSL attribute data.

    Equality compares contents; the hash only looks at a prefix so that hashing
    a multi-megabyte weight stays O(1).
    """

    array: np.ndarray

    def __post_init__(self) -> None:
        self.array.setflags(write=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Blob):
            return NotImplemented
        a, b = self.array, other.array
        return (
            a is b
            or a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )

    def __hash__(self) -> int:
        a = self.array
        return hash((a.dtype.str, a.shape, a.reshape(-1)[:16].tobytes()))


_ELIDE_LARGER_THAN: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "qcc_elide_larger_than", default=None
)


@contextlib.contextmanager
def elide_constants(larger_than: int | None) -> Iterator[None]:
    """While active, constants with more elements than `larger_than` print elided.

    Elided IR is for people; it does not parse back (the parser says so).
    """
    token = _ELIDE_LARGER_THAN.set(larger_than)
    try:
        yield
    finally:
        _ELIDE_LARGER_THAN.reset(token)


@irdl_attr_definition
class DenseAttr(Data[Blob]):
    """A constant tensor stored as raw little-endian bytes, printed as hex.

    `#onnx.dense<tensor<2x2xf32>, "0x0000803F...">`; elided form
    `#onnx.dense<tensor<64x3x3x3xf32>, elided>`.
    """

    name = "onnx.dense"

    def __init__(self, array: np.ndarray | Blob):
        if not isinstance(array, Blob):
            arr = np.asarray(array)
            element_type(arr.dtype)  # reject unsupported dtypes early
            arr = np.asarray(arr, dtype=arr.dtype.newbyteorder("<"), order="C")  # keeps 0-d shape
            array = Blob(arr)
        super().__init__(array)

    @property
    def array(self) -> np.ndarray:
        return self.data.array

    @property
    def type(self) -> TensorType:
        return tensor_type(self.array.dtype, self.array.shape)

    @classmethod
    def parse_parameter(cls, parser: AttrParser) -> Blob:
        with parser.in_angle_brackets():
            ty = parser.parse_type()
            if not isinstance(ty, TensorType):
                parser.raise_error("#onnx.dense expects a ranked tensor type")
            parser.parse_punctuation(",")
            if parser.parse_optional_keyword("elided") is not None:
                parser.raise_error(
                    "constant data was elided when this IR was printed; "
                    "print it again with --print-large-constants"
                )
            text = parser.parse_str_literal("hex constant data")
        dtype = numpy_dtype(ty.element_type)
        shape = static_shape(ty)
        if not text.startswith("0x"):
            parser.raise_error("#onnx.dense data must be a 0x-prefixed hex string")
        raw = bytes.fromhex(text[2:])
        if dtype == np.bool_:
            arr = np.frombuffer(raw, dtype=np.uint8).astype(np.bool_)
        else:
            arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
        if arr.size != int(np.prod(shape)):
            parser.raise_error(
                f"#onnx.dense holds {arr.size} elements, its type {ty} needs "
                f"{int(np.prod(shape))}"
            )
        return Blob(arr.reshape(shape).astype(dtype, copy=False))

    def print_parameter(self, printer: Printer) -> None:
        arr = self.array
        limit = _ELIDE_LARGER_THAN.get()
        with printer.in_angle_brackets():
            printer.print_attribute(self.type)
            printer.print_string(", ")
            if limit is not None and arr.size > limit:
                printer.print_string("elided")
            else:
                raw = arr.astype(np.uint8) if arr.dtype == np.bool_ else arr
                printer.print_string('"0x' + raw.tobytes().hex().upper() + '"')


# ---------------------------------------------------------- attribute <-> Python

QCC_NAME = "qcc.name"
"""Attribute key for the ONNX node name (kept for messages and reports only)."""


def py_attr(value: Any) -> Attribute:
    """Converts a Python/numpy value of an ONNX attribute into an xDSL attribute."""
    if isinstance(value, np.ndarray):
        return DenseAttr(value)
    if isinstance(value, bool | int | np.integer):
        return IntegerAttr(int(value), i64)
    if isinstance(value, float | np.floating):
        # float32 attributes go through their shortest repr so they print short
        # and convert back to the identical float32
        return FloatAttr(float(str(np.float32(value))), Float64Type())
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, list | tuple):
        if all(isinstance(v, str) for v in value) and value:
            return ArrayAttr([StringAttr(v) for v in value])
        if all(isinstance(v, int | np.integer) for v in value):
            return DenseArrayBase.from_list(i64, [int(v) for v in value])
        if all(isinstance(v, int | float | np.number) for v in value):
            return DenseArrayBase.from_list(
                Float32Type(), [float(np.float32(v)) for v in value]
            )
    raise ValueError(f"cannot represent attribute value {value!r}")


def attr_py(attr: Attribute) -> Any:
    """Inverse of `py_attr`."""
    if isinstance(attr, DenseAttr):
        return attr.array
    if isinstance(attr, IntegerAttr):
        return int(attr.value.data)
    if isinstance(attr, FloatAttr):
        return float(attr.value.data)
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, DenseArrayBase):
        vals = tuple(attr.iter_values())
        if isinstance(attr.elt_type, IntegerType):
            return [int(v) for v in vals]
        return [float(v) for v in vals]
    if isinstance(attr, ArrayAttr):
        return [attr_py(a) for a in attr.data]
    raise ValueError(f"attribute {attr} has no Python value")


def constant_array(v: SSAValue) -> np.ndarray | None:
    """The value of `v` when an onnx.Constant defines it, else None."""
    owner = v.owner
    if isinstance(owner, OPS["Constant"]):
        a = owner.attributes.get("value")
        if isinstance(a, DenseAttr):
            return a.array
    return None


def make_constant(array: np.ndarray, name: str = "") -> OnnxOp:
    arr = np.asarray(array)
    attrs: dict[str, Attribute] = {"value": DenseAttr(arr)}
    if name:
        attrs[QCC_NAME] = StringAttr(name)
    return OPS["Constant"](operands=[[]], result_types=[[tensor_type(arr.dtype, arr.shape)]], attributes=attrs)


# -------------------------------------------------------------- schema checks

_ATTR_KINDS = {
    "INT": (IntegerAttr,),
    "FLOAT": (FloatAttr,),
    "STRING": (StringAttr,),
    "INTS": (DenseArrayBase,),
    "FLOATS": (DenseArrayBase,),
    "STRINGS": (ArrayAttr,),
    "TENSOR": (DenseAttr,),
}


@dataclass(frozen=True)
class OpSignature:
    """What every opset version of an ONNX op allows, merged."""

    attrs: dict[str, str]  # attribute name -> ONNX attribute kind ("INT", ...)
    min_inputs: int
    max_inputs: int
    min_outputs: int
    max_outputs: int


@cache
def _all_signatures() -> dict[str, OpSignature]:
    import onnx.defs

    merged: dict[str, dict[str, Any]] = {}
    for s in onnx.defs.get_all_schemas_with_history():
        if s.domain not in ("", "ai.onnx"):
            continue
        m = merged.setdefault(
            s.name,
            {"attrs": {}, "mi": 1 << 30, "xi": 0, "mo": 1 << 30, "xo": 0},
        )
        for name, a in s.attributes.items():
            m["attrs"][name] = a.type.name
        m["mi"] = min(m["mi"], s.min_input)
        m["xi"] = max(m["xi"], s.max_input)
        m["mo"] = min(m["mo"], s.min_output)
        m["xo"] = max(m["xo"], s.max_output)
    return {
        k: OpSignature(v["attrs"], v["mi"], v["xi"], v["mo"], v["xo"])
        for k, v in merged.items()
    }


def onnx_signature(op_type: str) -> OpSignature:
    return _all_signatures()[op_type]


# ------------------------------------------------------------------------ ops


class OnnxOp(IRDLOperation):
    """Base of every generated ONNX op: variadic operands and results."""

    inputs = var_operand_def()
    outputs = var_result_def()

    assembly_format = "$inputs attr-dict `:` functional-type($inputs, $outputs)"

    @property
    def onnx_type(self) -> str:
        return self.name[5:]  # after "onnx."

    def onnx_attrs(self) -> dict[str, Any]:
        """The ONNX attributes of this op as Python values (qcc's own keys excluded)."""
        return {
            k: attr_py(v) for k, v in self.attributes.items() if not k.startswith("qcc.")
        }

    @property
    def node_name(self) -> str:
        n = self.attributes.get(QCC_NAME)
        return n.data if isinstance(n, StringAttr) else ""

    def verify_(self) -> None:
        sig = onnx_signature(self.onnx_type)
        where = f"{self.onnx_type}" + (f" '{self.node_name}'" if self.node_name else "")
        n_in, n_out = len(self.inputs), len(self.outputs)
        if not sig.min_inputs <= n_in <= sig.max_inputs:
            raise VerifyException(
                f"{where}: takes {sig.min_inputs}..{sig.max_inputs} inputs, got {n_in}"
            )
        if not sig.min_outputs <= n_out <= sig.max_outputs:
            raise VerifyException(
                f"{where}: has {sig.min_outputs}..{sig.max_outputs} results, got {n_out}"
            )
        for v in (*self.inputs, *self.outputs):
            if not isinstance(v.type, TensorType | NoneType):
                raise VerifyException(f"{where}: {v.type} is not a tensor or none")
        for r in self.outputs:
            if isinstance(r.type, NoneType):
                raise VerifyException(f"{where}: results must be tensors")
        for k, v in self.attributes.items():
            if k.startswith("qcc."):
                continue
            kind = sig.attrs.get(k)
            if kind is None:
                raise VerifyException(f"{where}: unknown attribute '{k}'")
            if kind in _ATTR_KINDS and not isinstance(v, _ATTR_KINDS[kind]):
                raise VerifyException(
                    f"{where}: attribute '{k}' must be {kind.lower()}, got {v}"
                )
        check = _STRUCTURE_CHECKS.get(self.onnx_type)
        if check is not None:
            problem = check(self)
            if problem:
                raise VerifyException(f"{where}: {problem}")


# ------------------------------------------------------- structural checks
# Type/shape rules the schemas cannot express as attribute kinds. A check sees
# only what the IR states: any dynamic dimension skips the shape comparison.


def _known(t: Attribute) -> tuple[int, ...] | None:
    if not isinstance(t, TensorType):
        return None
    shape = tuple(t.get_shape())
    return None if any(d < 0 for d in shape) else shape


def _same_as_input(op: OnnxOp) -> str | None:
    x, y = op.inputs[0].type, op.outputs[0].type
    if isinstance(x, TensorType) and isinstance(y, TensorType):
        if x.element_type != y.element_type:
            return f"result element type {y.element_type} differs from input {x.element_type}"
        if _known(x) is not None and _known(y) is not None and _known(x) != _known(y):
            return f"result shape {list(_known(y))} differs from input {list(_known(x))}"
    return None


def _broadcast(op: OnnxOp, *, same_elem: bool = True, result_elem: Attribute | None = None) -> str | None:
    types = [v.type for v in op.inputs if isinstance(v.type, TensorType)]
    y = op.outputs[0].type
    if same_elem and len({t.element_type for t in types}) > 1:
        return "operands must share one element type, got " + ", ".join(str(t.element_type) for t in types)
    want = result_elem or (types[0].element_type if same_elem and types else None)
    if want is not None and isinstance(y, TensorType) and y.element_type != want:
        return f"result element type must be {want}, got {y.element_type}"
    shapes = [_known(t) for t in types]
    if all(s is not None for s in shapes) and _known(y) is not None:
        try:
            b = np.broadcast_shapes(*shapes)
        except ValueError:
            return "operand shapes " + ", ".join(str(list(s)) for s in shapes) + " do not broadcast"
        if tuple(b) != _known(y):
            return f"result shape {list(_known(y))} is not the broadcast shape {list(b)}"
    return None


def _conv(op: OnnxOp) -> str | None:
    x, w = _known(op.inputs[0].type), _known(op.inputs[1].type)
    if x is None or w is None:
        return None
    group = op.attributes.get("group")
    g = group.value.data if isinstance(group, IntegerAttr) else 1
    if len(x) != len(w) or len(x) < 3:
        return f"input rank {len(x)} and weight rank {len(w)} must match and be at least 3"
    if g <= 0 or x[1] != w[1] * g or w[0] % g:
        return f"{x[1]} input channels do not match weight {list(w)} with group {g}"
    y = _known(op.outputs[0].type)
    if y is not None and (y[0] != x[0] or y[1] != w[0]):
        return f"result shape {list(y)} must be [{x[0]}, {w[0]}, ...]"
    if _spatial_output(op):
        return _spatial_output(op)
    if len(op.inputs) > 2 and isinstance(op.inputs[2].type, TensorType):
        b = _known(op.inputs[2].type)
        if b is not None and b != (w[0],):
            return f"bias shape {list(b)} must be [{w[0]}]"
    return None


def _spatial_output(op: OnnxOp) -> str | None:
    y = _known(op.outputs[0].type)
    if y is not None and len(y) > 2 and min(y[2:]) <= 0:
        return f"result shape {list(y)} is empty: kernel, pads and strides leave no output"
    return None


def _matmul(op: OnnxOp) -> str | None:
    a, b, y = (_known(v.type) for v in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if a is None or b is None or y is None:
        return None
    try:
        want = np.matmul(np.empty(a, np.int8), np.empty(b, np.int8)).shape
    except ValueError:
        return f"operand shapes {list(a)} and {list(b)} do not multiply"
    return None if tuple(want) == y else f"result shape {list(y)} must be {list(want)}"


def _gemm(op: OnnxOp) -> str | None:
    if len(op.inputs) < 3 or not isinstance(op.inputs[2].type, TensorType):
        return None
    c, y = _known(op.inputs[2].type), _known(op.outputs[0].type)
    if c is None or y is None:
        return None
    try:
        ok = np.broadcast_shapes(c, y) == y
    except ValueError:
        ok = False
    return None if ok else f"C of shape {list(c)} does not broadcast to the result shape {list(y)}"


def _constant(op: OnnxOp) -> str | None:
    v = op.attributes.get("value")
    if isinstance(v, DenseAttr) and v.type != op.outputs[0].type:
        return f"value of type {v.type} does not match result type {op.outputs[0].type}"
    return None


_STRUCTURE_CHECKS: dict[str, Any] = {
    **{t: _same_as_input for t in (
        "Relu LeakyRelu Elu Selu Celu Sigmoid HardSigmoid HardSwish Tanh Softmax LogSoftmax "
        "Abs Neg Exp Log Sqrt Reciprocal Floor Ceil Erf Softplus Softsign Mish Gelu "
        "BatchNormalization InstanceNormalization LRN").split()},
    **{t: _broadcast for t in "Add Sub Mul Div Max Min Sum Mean".split()},
    **{t: (lambda op: _broadcast(op, result_elem=IntegerType(1))) for t in
       "Equal Greater GreaterOrEqual Less LessOrEqual".split()},
    "Conv": _conv,
    "MatMul": _matmul,
    "Constant": _constant,
    "Gemm": _gemm,
    **{t: _spatial_output for t in "ConvTranspose MaxPool AveragePool LpPool".split()},
}


@irdl_op_definition
class NoValueOp(IRDLOperation):
    """Stands for an omitted optional input of an ONNX op."""

    name = "onnx.NoValue"
    output = result_def(NoneType)
    assembly_format = "attr-dict `:` type($output)"

    def __init__(self) -> None:
        super().__init__(result_types=[NoneType()])


# Every supported ONNX op type, default domain. Adding an op here gives it an IR
# form; the float interpreter needs a kernel in qcc.float_kernels as well.
ONNX_OP_TYPES: tuple[str, ...] = tuple(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool
    BatchNormalization BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor
    Cast CastLike Ceil Celu Clip Compress Concat Constant ConstantOfShape
    Conv ConvInteger ConvTranspose Cos Cosh CumProd CumSum DepthToSpace
    DequantizeLinear Div Dropout DynamicQuantizeLinear Einsum Elu Equal Erf
    Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu
    Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
    GroupNormalization HardSigmoid HardSwish Hardmax Identity
    InstanceNormalization IsInf IsNaN LRN LayerNormalization LeakyRelu Less
    LessOrEqual Log LogSoftmax LpNormalization LpPool MatMul MatMulInteger
    Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonZero
    Not OneHot Or PRelu Pad Pow QLinearConv QLinearMatMul QuantizeLinear
    Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
    ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu
    Reshape Resize ReverseSequence Round Scatter ScatterElements ScatterND
    Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
    Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Swish Tan Tanh
    ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
    AffineGrid Attention BitCast BlackmanWindow CenterCropPad Col2Im DFT Det
    HammingWindow HannWindow MaxUnpool MelWeightMatrix NegativeLogLikelihoodLoss
    RMSNormalization RotaryEmbedding STFT SoftmaxCrossEntropyLoss SwiGLU
    TensorScatter Unique
    CausalConvWithState DeformConv GRU GridSample LSTM LinearAttention
    NonMaxSuppression RNN RoiAlign TfIdfVectorizer
    """.split()
)


def _make_op(onnx_type: str) -> type[OnnxOp]:
    cls = type(
        f"{onnx_type}Op",
        (OnnxOp,),
        {
            "name": f"onnx.{onnx_type}",
            "__doc__": f"ONNX {onnx_type} (https://onnx.ai/onnx/operators/onnx__{onnx_type}.html).",
            "__module__": __name__,
        },
    )
    return irdl_op_definition(cls)


OPS: dict[str, type[OnnxOp]] = {t: _make_op(t) for t in ONNX_OP_TYPES}
globals().update({cls.__name__: cls for cls in OPS.values()})

ONNX = Dialect("onnx", [NoValueOp, *OPS.values()], [DenseAttr])
