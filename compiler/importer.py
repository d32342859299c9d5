"""ONNX model -> `onnx` dialect IR.

Owns everything between an `.onnx` file and a verified `builtin.module` holding
`func.func @main`: loading (external data included), opset/IR-version checks,
binding dynamic input dimensions, inlining model-local functions, one
topological pass that folds constant subgraphs (shape computations) and infers
every tensor's static type, and dropping Identity/Dropout.

Every failure caused by the file becomes a `QccError` naming the node (op
type, node name, opset) or the input at fault.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import onnx
import onnx.defs
import onnx.inliner
import onnx.shape_inference
from onnx import numpy_helper
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    i64,
)
from xdsl.ir import Block, Region, SSAValue

from qcc.dialects import onnx as donnx
from qcc.errors import QccError
from qcc.ir import gc_paused
from qcc.float_kernels import KERNELS, NUM_OUTPUTS

MIN_OPSET = 7
MAX_OPSET = onnx.defs.onnx_opset_version()

# Ops never folded even with constant inputs: QDQ pairs on weights carry the
# quantization that a pre-quantized model asks for.
_NO_FOLD = {"QuantizeLinear", "DequantizeLinear"}
# Folding these can blow a small constant up into a large one (a broadcast).
_EXPANDING = {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample"}
_EXPANDING_LIMIT = 1 << 16
_POOLS = {"MaxPool", "AveragePool", "LpPool"}

_REDUCE_OPS = (
    "ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin "
    "ReduceProd ReduceSum ReduceSumSquare"
).split()
# Inputs whose *values* (not just shapes) decide an op's output shape. When one
# of them is only known at run time the output type cannot be static.
_SHAPE_VALUE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4),
    "Range": (0, 1, 2), "ConstantOfShape": (0,), "Upsample": (1,), "Pad": (1, 3),
    "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "TopK": (1,), "OneHot": (1,),
    "NonZero": (0,), "Compress": (1,), "CenterCropPad": (1,), "Unique": (0,),
    "NonMaxSuppression": (0, 1, 2, 3, 4), "Col2Im": (1, 2), "DFT": (1, 2), "STFT": (1, 3),
    "MelWeightMatrix": (0, 1, 2), "HannWindow": (0,), "HammingWindow": (0,),
    "BlackmanWindow": (0,), "AffineGrid": (1,), "MaxUnpool": (2,),
    **{r: (1,) for r in _REDUCE_OPS},
}


class DynamicShapeError(QccError):
    """An output shape depends on the value of a tensor known only at run time.

    `tensor` names that tensor (a graph input or computed from graph inputs).
    """

    def __init__(self, message: str, tensor: str):
        super().__init__(message)
        self.tensor = tensor


def _shape_value_inputs(op_type: str, opset: int) -> tuple[int, ...]:
    if op_type == "Resize":
        return (1,) if opset < 11 else (2, 3)
    return _SHAPE_VALUE_INPUTS.get(op_type, ())


@dataclass(frozen=True)
class _Dyn:
    """A tensor known only by type: produced at run time."""

    dtype: np.dtype
    shape: tuple[int, ...]


def _np_dtype_of(elem_type: int, where: str) -> np.dtype:
    try:
        dt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        dt = None
    if dt is None or dt.kind in "OUS" or dt not in donnx._NP_TO_ELEM:
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else str(elem_type)
        raise QccError(f"{where}: element type {name} is not supported")
    return dt


def _to_array(t: onnx.TensorProto, where: str) -> np.ndarray:
    _np_dtype_of(t.data_type, where)
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:
        raise QccError(f"{where}: cannot read tensor data ({e})") from None
    return np.asarray(arr)


def _attr_value(a: onnx.AttributeProto, where: str) -> Any:
    T = onnx.AttributeProto
    if a.type == T.FLOAT:
        return float(a.f)
    if a.type == T.INT:
        return int(a.i)
    if a.type == T.STRING:
        return a.s.decode("utf-8", errors="replace")
    if a.type == T.TENSOR:
        return _to_array(a.t, f"{where} attribute '{a.name}'")
    if a.type == T.FLOATS:
        return [float(v) for v in a.floats]
    if a.type == T.INTS:
        return [int(v) for v in a.ints]
    if a.type == T.STRINGS:
        return [s.decode("utf-8", errors="replace") for s in a.strings]
    kind = T.AttributeType.Name(a.type) if a.type in T.AttributeType.values() else a.type
    raise QccError(f"{where}: attribute '{a.name}' of kind {kind} is not supported")


def _xdsl_attr(a: onnx.AttributeProto, value: Any):
    T = onnx.AttributeProto
    if a.type == T.FLOATS:
        from xdsl.dialects.builtin import DenseArrayBase, Float32Type

        return DenseArrayBase.from_list(Float32Type(), [float(np.float32(v)) for v in value])
    if a.type == T.STRINGS:
        return ArrayAttr([StringAttr(v) for v in value])
    if a.type == T.INTS:
        from xdsl.dialects.builtin import DenseArrayBase

        return DenseArrayBase.from_list(i64, value)
    return donnx.py_attr(value)


def parse_input_shapes(specs: Sequence[str]) -> dict[str, list[int]]:
    """Parses `NAME=D0,D1,...` options (the `--input-shape` syntax)."""
    shapes: dict[str, list[int]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        if not sep or not name:
            raise QccError(f"--input-shape '{spec}': expected NAME=D0,D1,...")
        try:
            shape = [int(d) for d in dims.split(",")] if dims.strip() else []
        except ValueError:
            raise QccError(f"--input-shape '{spec}': dimensions must be integers") from None
        if any(d <= 0 for d in shape):
            raise QccError(f"--input-shape '{spec}': dimensions must be positive")
        shapes[name] = shape
    return shapes


def load_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Reads an .onnx file and its external data, as a QccError on any failure."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise QccError(f"{path}: no such file")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise QccError(f"{path}: not a valid ONNX model ({type(e).__name__}: {e})") from None
    try:
        from onnx.external_data_helper import load_external_data_for_model, uses_external_data

        if any(uses_external_data(t) for t in model.graph.initializer):
            load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
    except Exception as e:
        raise QccError(f"{path}: cannot load external tensor data ({e})") from None
    return model


@functools.cache
def _schema_attr_types(op_type: str, opset: int) -> dict[str, int] | None:
    """Attribute name -> AttributeProto type that `op_type` declares at `opset`
    (None when the schema is unknown or accepts any attribute)."""
    try:
        schema = onnx.defs.get_schema(op_type, opset, "")
    except Exception:
        return None
    return {name: int(a.type) for name, a in schema.attributes.items()}


class _Importer:
    def __init__(self, model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]):
        self.model = model
        self.user_shapes = dict(input_shapes)
        self.opset = self._check_versions()
        self.env: dict[str, np.ndarray | _Dyn] = {}
        self.values: dict[str, SSAValue] = {}
        self.block = Block()
        self.novalue: SSAValue | None = None

    # ------------------------------------------------------------ checks
    def _check_versions(self) -> int:
        m = self.model
        if m.ir_version > onnx.IR_VERSION:
            raise QccError(
                f"model IR version {m.ir_version} is newer than the newest supported ({onnx.IR_VERSION})"
            )
        opset = None
        for imp in m.opset_import:
            if imp.domain in ("", "ai.onnx"):
                opset = int(imp.version)
        if opset is None:
            others = ", ".join(sorted(f"{i.domain} {i.version}" for i in m.opset_import))
            raise QccError(
                "model imports no version of the default ONNX opset"
                + (f" (only {others})" if others else "")
            )
        self.source_opset = opset
        if 1 <= opset < MIN_OPSET:
            # older opsets: let ONNX's version converter rewrite the legacy forms
            # (broadcast attributes, consumed_inputs, ...) into opset MIN_OPSET ones
            try:
                from onnx import version_converter

                self.model = version_converter.convert_version(m, MIN_OPSET)
            except Exception as e:
                raise QccError(
                    f"model uses ONNX opset {opset}, which qcc cannot convert to opset "
                    f"{MIN_OPSET} ({_first_line(e)})"
                ) from None
            return MIN_OPSET
        if not MIN_OPSET <= opset <= MAX_OPSET:
            raise QccError(
                f"model uses ONNX opset {opset}; qcc supports opsets {MIN_OPSET} to {MAX_OPSET}"
            )
        return opset

    # ------------------------------------------------------------ inputs
    def _bind_inputs(self, graph: onnx.GraphProto) -> list[tuple[str, _Dyn]]:
        init_names = {t.name for t in graph.initializer}
        real = [vi for vi in graph.input if vi.name not in init_names]
        known = {vi.name for vi in real}
        for name in self.user_shapes:
            if name not in known:
                raise QccError(
                    f"--input-shape names '{name}', which is not a graph input "
                    f"(inputs: {', '.join(sorted(known)) or 'none'})"
                )
        bound: list[tuple[str, _Dyn]] = []
        for vi in real:
            where = f"graph input '{vi.name}'"
            if not vi.type.HasField("tensor_type"):
                raise QccError(f"{where}: only tensor inputs are supported")
            tt = vi.type.tensor_type
            dtype = _np_dtype_of(tt.elem_type, where)
            user = self.user_shapes.get(vi.name)
            if not tt.HasField("shape"):
                if user is None:
                    raise QccError(f"{where}: rank unknown; give it with --input-shape {vi.name}=D0,D1,...")
                bound.append((vi.name, _Dyn(dtype, tuple(user))))
                continue
            dims = list(tt.shape.dim)
            if user is not None:
                if len(user) != len(dims):
                    raise QccError(
                        f"--input-shape {vi.name}: model input has rank {len(dims)}, got {len(user)} dimensions"
                    )
                for i, (d, u) in enumerate(zip(dims, user)):
                    if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != u:
                        raise QccError(
                            f"--input-shape {vi.name}: dimension {i} is fixed to {d.dim_value} by the model, got {u}"
                        )
                shape = tuple(user)
            else:
                shape_l = []
                for i, d in enumerate(dims):
                    if d.HasField("dim_value") and d.dim_value > 0:
                        shape_l.append(int(d.dim_value))
                    elif i == 0:
                        # the batch dimension: qcc compiles for one sample at a time
                        shape_l.append(1)
                    else:
                        sym = d.dim_param or "?"
                        raise QccError(
                            f"{where}: dimension {i} ('{sym}') is dynamic; bind it with "
                            f"--input-shape {vi.name}=D0,D1,..."
                        )
                shape = tuple(shape_l)
            bound.append((vi.name, _Dyn(dtype, shape)))
        return bound

    # ------------------------------------------------------------ order
    def _topological(self, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
        nodes = list(graph.node)
        produced_by: dict[str, int] = {}
        for i, n in enumerate(nodes):
            for o in n.output:
                if not o:
                    continue
                if o in produced_by or o in self.env:
                    raise QccError(f"node '{n.name}' ({n.op_type}): tensor '{o}' is produced twice")
                produced_by[o] = i
        in_order = True
        g = nx.DiGraph()
        g.add_nodes_from(range(len(nodes)))
        for i, n in enumerate(nodes):
            for x in _outer_reads(n):
                if not x:
                    continue
                if x in produced_by:
                    j = produced_by[x]
                    g.add_edge(j, i)
                    if j >= i:
                        in_order = False
                elif x not in self.env:
                    raise QccError(
                        f"node '{n.name}' ({n.op_type}): input '{x}' is produced by no node, "
                        "initializer or graph input"
                    )
        for o in graph.output:
            if o.name not in produced_by and o.name not in self.env:
                raise QccError(f"graph output '{o.name}' is produced by nothing")
        if in_order:
            return nodes
        try:
            return [nodes[i] for i in nx.lexicographical_topological_sort(g)]
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(g)
            names = " -> ".join(f"'{nodes[a].name or nodes[a].op_type}'" for a, _ in cycle)
            raise QccError(f"the graph has a cycle: {names}") from None

    # ------------------------------------------------------------ IR values
    def _value(self, name: str) -> SSAValue:
        if name in self.values:
            return self.values[name]
        v = self.env[name]
        assert isinstance(v, np.ndarray)
        op = donnx.OPS["Constant"](
            operands=[[]],
            result_types=[[donnx.tensor_type(v.dtype, v.shape)]],
            attributes={"value": donnx.DenseAttr(v)},
        )
        self.block.add_op(op)
        _name_hint(op.results[0], name)
        self.values[name] = op.results[0]
        return op.results[0]

    def _none(self) -> SSAValue:
        if self.novalue is None:
            op = donnx.NoValueOp()
            self.block.add_op(op)
            self.novalue = op.output
        return self.novalue

    # ------------------------------------------------------------ nodes
    def _infer(self, node: onnx.NodeProto, where: str, attrs: dict[str, Any]) -> list[_Dyn]:
        if node.op_type == "STFT" and "onesided" not in attrs:
            # onnx 1.23's inference takes an absent onesided as 0; its default is 1
            return self._infer_by_running(node, where, attrs)
        if node.op_type in _POOLS and attrs.get("ceil_mode"):
            # onnx 1.23's inference keeps a last ceil-mode window that starts past the
            # input, which the spec (and onnxruntime) drop; the kernel follows the spec.
            return self._infer_by_running(node, where, attrs)
        try:
            schema = onnx.defs.get_schema(node.op_type, self.opset, "")
        except Exception:
            raise QccError(f"{where}: op {node.op_type} does not exist in opset {self.opset}") from None
        types: dict[str, onnx.TypeProto] = {}
        data: dict[str, onnx.TensorProto] = {}
        for x in node.input:
            if not x:
                continue
            v = self.env[x]
            if isinstance(v, np.ndarray):
                types[x] = onnx.helper.make_tensor_type_proto(
                    onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape
                )
                if v.size <= 4096:
                    data[x] = numpy_helper.from_array(v, x)
            else:
                types[x] = onnx.helper.make_tensor_type_proto(
                    onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape
                )
        try:
            out = onnx.shape_inference.infer_node_outputs(
                schema, node, types, data, opset_imports=list(self.model.opset_import)
            )
        except Exception as e:
            raise QccError(f"{where}: {_first_line(e)}") from None
        result: list[_Dyn] = []
        for o in node.output:
            if not o:
                result.append(_Dyn(np.dtype(np.float32), ()))
                continue
            tp = out.get(o)
            if tp is None or not tp.tensor_type.HasField("shape") or any(
                not d.HasField("dim_value") for d in tp.tensor_type.shape.dim
            ):
                return self._infer_by_running(node, where, attrs)
            tt = tp.tensor_type
            shape = tuple(d.dim_value for d in tt.shape.dim)
            if any(d < 0 for d in shape):
                raise QccError(f"{where}: output '{o}' would have shape {list(shape)}; "
                               "the attributes leave no valid output")
            result.append(_Dyn(_np_dtype_of(tt.elem_type, where), shape))
        return result

    def _infer_by_running(self, node: onnx.NodeProto, where: str, attrs: dict[str, Any]) -> list[_Dyn]:
        """Shapes ONNX inference leaves open: run the kernel on zeros of the input types."""
        for i in _shape_value_inputs(node.op_type, self.opset):
            x = node.input[i] if i < len(node.input) else ""
            if x and isinstance(self.env.get(x), _Dyn):
                raise DynamicShapeError(
                    f"{where}: the output shape depends on the value of input '{x}', "
                    "which is only known at run time; qcc compiles static shapes and "
                    "needs it to be a constant",
                    x,
                )
        ins = []
        for x in node.input:
            v = self.env.get(x) if x else None
            ins.append(np.zeros(v.shape, v.dtype) if isinstance(v, _Dyn) else v)
        outs = self._run_kernel(node, where, ins, attrs)
        return [_Dyn(o.dtype, tuple(o.shape)) for o in outs]

    def _run_kernel(self, node, where, ins, attrs) -> list[np.ndarray]:
        kernel = KERNELS.get(node.op_type)
        if kernel is None:
            raise QccError(f"{where}: op {node.op_type} has no reference implementation")
        try:
            with np.errstate(all="ignore"):
                outs = kernel(ins, attrs, self.opset)
        except QccError:
            raise
        except NotImplementedError as e:
            raise QccError(f"{where}: {e}") from None
        except Exception as e:
            raise QccError(f"{where}: cannot evaluate ({type(e).__name__}: {_first_line(e)})") from None
        return [np.asarray(o) for o in outs]

    def _node(self, node: onnx.NodeProto) -> None:
        label = f" '{node.name}'" if node.name else ""
        where = f"node{label} ({node.op_type}, opset {self.opset})"
        if node.domain == "ai.onnx.preview" and node.op_type == "FlexAttention":
            self._flex_attention(node, where)
            return
        if node.domain not in ("", "ai.onnx"):
            raise QccError(f"{where}: ops of domain '{node.domain}' are not supported")
        if node.op_type in ("If", "Loop", "Scan"):
            self._control_flow(node, where)
            return
        if node.op_type not in donnx.OPS:
            raise QccError(f"{where}: unsupported op {node.op_type}")
        attrs: dict[str, Any] = {}
        xattrs: dict[str, Any] = {}
        declared = _schema_attr_types(node.op_type, self.opset)
        for a in node.attribute:
            if a.ref_attr_name:
                raise QccError(f"{where}: attribute '{a.name}' refers to a function attribute")
            want = declared.get(a.name) if declared is not None else None
            if declared is not None and want is None:
                raise QccError(f"{where}: {node.op_type} has no attribute '{a.name}' in opset {self.opset}")
            if want is not None and a.type != want:
                raise QccError(f"{where}: attribute '{a.name}' must be "
                               f"{onnx.AttributeProto.AttributeType.Name(want)}, got "
                               f"{onnx.AttributeProto.AttributeType.Name(a.type)}")
            v = _attr_value(a, where)
            attrs[a.name] = v
            xattrs[a.name] = _xdsl_attr(a, v)
        if node.op_type == "Split":
            attrs[NUM_OUTPUTS] = len(node.output)
        ins = [self.env[x] if x else None for x in node.input]
        if node.op_type == "PRelu" and self.source_opset < 7:
            node, ins = self._legacy_prelu(node, ins)

        if node.op_type == "Identity" or (node.op_type == "Dropout" and not _training(attrs, ins)):
            self.env[node.output[0]] = ins[0]
            if node.input[0] in self.values:
                self.values[node.output[0]] = self.values[node.input[0]]
            for extra in node.output[1:]:
                if extra:  # Dropout's mask: all ones at inference
                    self.env[extra] = np.ones(ins[0].shape, np.bool_)
            return

        const = all(v is None or isinstance(v, np.ndarray) for v in ins)
        if node.op_type == "CastLike" and len(ins) == 2 and isinstance(ins[0], np.ndarray) \
                and isinstance(ins[1], _Dyn):
            # Only the type of the second input matters (exporters build zero biases
            # as CastLike(constant, activation)): an empty array of that type stands in.
            ins = [ins[0], np.zeros((0,), ins[1].dtype)]
            const = True
        if node.op_type in ("Shape", "Size") and ins and isinstance(ins[0], _Dyn):
            arr = np.zeros(ins[0].shape, np.uint8)  # only the shape matters
            outs = self._run_kernel(node, where, [arr], attrs)
            self.env[node.output[0]] = outs[0]
            return
        if const and node.op_type not in _NO_FOLD:
            outs = self._run_kernel(node, where, list(ins), attrs)
            in_size = sum(v.size for v in ins if v is not None)
            big = node.op_type in _EXPANDING and any(
                o.size > max(_EXPANDING_LIMIT, 4 * in_size) for o in outs
            )
            if not big:
                if len(outs) < sum(1 for o in node.output if o):
                    raise QccError(f"{where}: produced {len(outs)} outputs, the node names {len(node.output)}")
                for name, o in zip(node.output, outs):
                    if name:
                        donnx.element_type(o.dtype)
                        self.env[name] = o
                return

        types = self._infer(node, where, attrs)
        operands = [self._value(x) if x else self._none() for x in node.input]
        # trailing omitted inputs are dropped, as ONNX allows
        while operands and node.input[len(operands) - 1] == "":
            operands.pop()
        # Unnamed nodes are known by their first output, a name the file does define.
        xattrs[donnx.QCC_NAME] = StringAttr(node.name or next((o for o in node.output if o), node.op_type))
        n_out = len(node.output)
        try:
            result_types = [donnx.tensor_type(t.dtype, t.shape) for t in types[:n_out]]
        except ValueError as e:
            raise QccError(f"{where}: {e}") from None
        op = donnx.OPS[node.op_type](
            operands=[operands], result_types=[result_types], attributes=xattrs
        )
        self.block.add_op(op)
        for name, r, t in zip(node.output, op.results, types):
            if name:
                _name_hint(r, name)
                self.env[name] = t
                self.values[name] = r

    # ------------------------------------------------------------ control flow
    # If, Loop and Scan are unrolled while importing: the branch, trip count
    # and scan length must be static, and the bodies are imported like the
    # main graph (one copy per iteration, names prefixed with the iteration).

    def _alias(self, name: str, src: str) -> None:
        self.env[name] = self.env[src]
        if src in self.values:
            self.values[name] = self.values[src]

    def _static(self, name: str, where: str, what: str) -> np.ndarray:
        v = self.env[name]
        if not isinstance(v, np.ndarray):
            raise DynamicShapeError(
                f"{where}: {what} depends on the value of '{name}', which is only known "
                "at run time; qcc unrolls control flow and needs it to be a constant",
                name,
            )
        return v

    def _inline_graph(self, g: onnx.GraphProto, bindings: dict[str, str], tag: str) -> list[str]:
        """Imports the nodes of subgraph `g` with its inputs bound to outer
        tensors; returns the outer names of its outputs."""
        names = dict(bindings)
        for t in g.initializer:
            names[t.name] = f"{tag}/{t.name}"
            self.env[names[t.name]] = _to_array(t, f"initializer '{t.name}' of {tag}")
        for n in g.node:
            c = onnx.NodeProto()
            c.CopyFrom(n)
            c.name = f"{tag}/{n.name or n.op_type}"
            for i, x in enumerate(n.input):
                if x:
                    c.input[i] = names.get(x, x)
                    if c.input[i] not in self.env:
                        raise QccError(
                            f"node '{c.name}' ({n.op_type}): input '{x}' is defined nowhere "
                            "before it (subgraph nodes must be in topological order)"
                        )
            for i, o in enumerate(n.output):
                if o:
                    names[o] = c.output[i] = f"{tag}/{o}"
            for a in c.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    _rename_outer_refs(a.g, names)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        _rename_outer_refs(sg, names)
            self._node(c)
        return [names.get(o.name, o.name) for o in g.output]

    def _const_input(self, value: np.ndarray, name: str) -> str:
        self.env[name] = value
        return name

    def _stack(self, pieces: list[str], axis: int, out: str, tag: str, where: str) -> None:
        """out = the pieces stacked along a new axis (Unsqueeze + Concat)."""
        if not pieces:
            raise QccError(f"{where}: no iterations, so the scan output '{out}' has no static type")
        parts = []
        for k, p in enumerate(pieces):
            name = f"{tag}/stack{k}"
            if self.opset >= 13:
                axes = self._const_input(np.array([axis], np.int64), f"{tag}/stack_axes")
                self._node(onnx.helper.make_node("Unsqueeze", [p, axes], [name], name=name))
            else:
                self._node(onnx.helper.make_node("Unsqueeze", [p], [name], name=name, axes=[axis]))
            parts.append(name)
        self._node(onnx.helper.make_node("Concat", parts, [out], name=f"{tag}/concat", axis=axis))

    def _control_flow(self, node: onnx.NodeProto, where: str) -> None:
        graphs = {a.name: a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH}
        ints = {a.name: a.i for a in node.attribute if a.type == onnx.AttributeProto.INT}
        lists = {a.name: list(a.ints) for a in node.attribute if a.type == onnx.AttributeProto.INTS}
        # scope of the tensors made while unrolling: an output name is unique, a node name may not be
        tag = next((o for o in node.output if o), node.name or node.op_type)
        if node.op_type == "If":
            cond = self._static(node.input[0], where, "the branch taken")
            g = graphs["then_branch" if bool(cond.reshape(-1)[0]) else "else_branch"]
            outs = self._inline_graph(g, {}, tag)
            for name, src in zip(node.output, outs):
                if name:
                    self._alias(name, src)
            return
        if node.op_type == "Loop":
            body = graphs["body"]
            trip = None
            if node.input[0]:
                trip = int(self._static(node.input[0], where, "the trip count").reshape(-1)[0])
            cond = True
            if len(node.input) > 1 and node.input[1]:
                cond = bool(self._static(node.input[1], where, "the loop condition").reshape(-1)[0])
            carried = list(node.input[2:])
            n_scan = len(body.output) - 1 - len(carried)
            pieces: list[list[str]] = [[] for _ in range(n_scan)]
            it = 0
            while cond and (trip is None or it < trip):
                if it >= _MAX_UNROLL:
                    raise QccError(f"{where}: more than {_MAX_UNROLL} iterations to unroll")
                t = f"{tag}#{it}"
                binds = {
                    body.input[0].name: self._const_input(np.array(it, np.int64), f"{t}/iter"),
                    body.input[1].name: self._const_input(np.array(cond), f"{t}/cond"),
                }
                binds.update({vi.name: x for vi, x in zip(body.input[2:], carried)})
                outs = self._inline_graph(body, binds, t)
                cond = bool(self._static(outs[0], where, "the loop condition").reshape(-1)[0])
                carried = outs[1:1 + len(carried)]
                for k in range(n_scan):
                    pieces[k].append(outs[1 + len(carried) + k])
                it += 1
            for name, src in zip(node.output, carried):
                if name:
                    self._alias(name, src)
            for k, name in enumerate(node.output[len(carried):]):
                if name:
                    self._stack(pieces[k], 0, name, f"{tag}/out{k}", where)
            return
        body = graphs["body"]
        n_in = ints["num_scan_inputs"]
        if self.opset >= 9:
            n_state = len(node.input) - n_in
            n_out = len(body.output) - n_state
            self._scan(
                body, list(node.input[:n_state]), list(node.input[n_state:]),
                lists.get("scan_input_axes") or [0] * n_in,
                lists.get("scan_input_directions") or [0] * n_in,
                lists.get("scan_output_axes") or [0] * n_out,
                lists.get("scan_output_directions") or [0] * n_out,
                list(node.output), tag, where,
            )
            return
        # Scan-8: a leading batch axis on every state and scan tensor, and
        # optional sequence lengths (which must then all be the full length)
        seq_lens = node.input[0]
        n_state = len(node.input) - 1 - n_in
        states, scans = list(node.input[1:1 + n_state]), list(node.input[1 + n_state:])
        batch, steps = self.env[scans[0]].shape[:2]
        if seq_lens:
            lens = self._static(seq_lens, where, "the scan length")
            if np.any(lens.reshape(-1) != steps):
                raise QccError(f"{where}: sequence_lens shorter than the scan axis are not supported")
        dirs = lists.get("directions") or [0] * n_in
        n_out = len(body.output) - n_state
        per_out: list[list[str]] = [[] for _ in node.output]
        for b in range(batch):
            t = f"{tag}@{b}"
            index = self._const_input(np.array(b, np.int64), f"{t}/batch_index")
            pick = []
            for j, x in enumerate(states + scans):
                name = f"{t}/in{j}"
                self._node(onnx.helper.make_node("Gather", [x, index], [name], name=name, axis=0))
                pick.append(name)
            outs = [f"{t}/out{k}" for k in range(len(node.output))]
            self._scan(body, pick[:n_state], pick[n_state:], [0] * n_in, dirs,
                       [0] * n_out, [0] * n_out, outs, t, where)
            for k, o in enumerate(outs):
                per_out[k].append(o)
        for k, name in enumerate(node.output):
            if name:
                self._stack(per_out[k], 0, name, f"{tag}/batch{k}", where)

    def _scan(self, body, states, scans, in_axes, in_dirs, out_axes, out_dirs,
              out_names, tag, where) -> None:
        """Unrolls a Scan-9+ body over the scan axis of `scans`."""
        n_state = len(states)
        n_out = len(body.output) - n_state
        shape0 = self.env[scans[0]].shape
        steps = shape0[in_axes[0] % len(shape0)]
        if steps > _MAX_UNROLL:
            raise QccError(f"{where}: more than {_MAX_UNROLL} iterations to unroll")
        pieces: list[list[str]] = [[] for _ in range(n_out)]
        for it in range(steps):
            t = f"{tag}#{it}"
            binds = {vi.name: x for vi, x in zip(body.input[:n_state], states)}
            for j, x in enumerate(scans):
                idx = it if not in_dirs[j] else steps - 1 - it
                sl = f"{t}/scan_in{j}"
                index = self._const_input(np.array(idx, np.int64), f"{t}/index{j}")
                self._node(onnx.helper.make_node("Gather", [x, index], [sl], name=sl, axis=in_axes[j]))
                binds[body.input[n_state + j].name] = sl
            outs = self._inline_graph(body, binds, t)
            states = outs[:n_state]
            for k in range(n_out):
                pieces[k].append(outs[n_state + k])
        for name, src in zip(out_names, states):
            if name:
                self._alias(name, src)
        for k, name in enumerate(out_names[n_state:]):
            if name:
                ps = pieces[k][::-1] if out_dirs[k] else pieces[k]
                self._stack(ps, out_axes[k], name, f"{tag}/out{k}", where)

    def _flex_attention(self, node: onnx.NodeProto, where: str) -> None:
        """ai.onnx.preview FlexAttention, expanded into default-domain ops:
        softmax(score_mod(Q K^T * scale)) -> prob_mod -> @ V, with grouped K/V
        heads repeated and the softmax in softmax_precision (float32 for
        16-bit inputs)."""
        a = {x.name: x for x in node.attribute}
        q, k, v = node.input[:3]
        qt, kt, vt = (self.env[x] for x in (q, k, v))
        if len(qt.shape) != 4 or len(kt.shape) != 4 or len(vt.shape) != 4:
            raise QccError(f"{where}: Q, K and V must have rank 4")
        tag = node.output[0]
        count = iter(range(1 << 30))

        def emit(op: str, ins: list[str], **kw) -> str:
            name = f"{tag}/{op}_{next(count)}"
            self._node(onnx.helper.make_node(op, ins, [name], name=name, **kw))
            return name

        def const(arr: np.ndarray) -> str:
            return self._const_input(arr, f"{tag}/const_{next(count)}")

        e = qt.shape[3]
        scale = a["scale"].f if "scale" in a else 1.0 / np.sqrt(e)
        sq = const(np.array(np.sqrt(np.float32(scale)), dtype=qt.dtype))
        hq, hkv = qt.shape[1], kt.shape[1]
        if hq != hkv:
            idx = const(np.repeat(np.arange(hkv), hq // hkv).astype(np.int64))
            k, v = emit("Gather", [k, idx], axis=1), emit("Gather", [v, idx], axis=1)
        s = emit("MatMul", [emit("Mul", [q, sq]),
                            emit("Transpose", [emit("Mul", [k, sq])], perm=[0, 1, 3, 2])])
        if "softmax_precision" in a:
            cd = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(a["softmax_precision"].i))
        else:
            cd = np.dtype(np.float32) if qt.dtype.itemsize < 4 else qt.dtype
        to = onnx.helper.np_dtype_to_tensor_dtype(cd)
        if cd != qt.dtype:
            s = emit("Cast", [s], to=to)
        for mod in ("score_mod", "prob_mod"):
            if mod == "prob_mod":
                s = emit("Softmax", [s], axis=-1)
            if mod in a:
                g = a[mod].g
                if len(g.input) != 1 or len(g.output) != 1:
                    raise QccError(f"{where}: {mod} must take and return one tensor")
                s = self._inline_graph(g, {g.input[0].name: s}, f"{tag}/{mod}")[0]
                if self.env[s].dtype != cd:
                    s = emit("Cast", [s], to=to)
        if vt.dtype != cd:
            v = emit("Cast", [v], to=to)
        y = emit("MatMul", [s, v])
        if vt.dtype != cd:
            y = emit("Cast", [y], to=onnx.helper.np_dtype_to_tensor_dtype(vt.dtype))
        self._alias(node.output[0], y)

    def _legacy_prelu(self, node: onnx.NodeProto, ins: list) -> tuple[onnx.NodeProto, list]:
        """PRelu before opset 7 applies a 1-D slope per channel (axis 1); the
        version converter leaves it 1-D, which opset 7 would broadcast on the last axis."""
        x, slope = ins[0], ins[1] if len(ins) > 1 else None
        if not isinstance(slope, np.ndarray) or slope.ndim != 1 or slope.size == 1 or len(x.shape) <= 2:
            return node, ins
        name = f"{node.input[1]}__per_channel_{len(x.shape)}d"
        self.env[name] = slope.reshape((-1,) + (1,) * (len(x.shape) - 2))
        fixed = onnx.NodeProto()
        fixed.CopyFrom(node)
        fixed.input[1] = name
        return fixed, [x, self.env[name], *ins[2:]]

    # ------------------------------------------------------------ driver
    def run(self) -> ModuleOp:
        model = self.model
        if model.functions:
            try:
                model = onnx.inliner.inline_local_functions(model)
            except Exception as e:
                raise QccError(f"cannot inline model-local functions ({_first_line(e)})") from None
        graph = model.graph
        for t in graph.initializer:
            self.env[t.name] = _to_array(t, f"initializer '{t.name}'")
        for st in graph.sparse_initializer:
            try:
                self.env[st.values.name] = _sparse_to_dense(st)
            except Exception as e:
                raise QccError(f"sparse initializer '{st.values.name}': {e}") from None
        inputs = self._bind_inputs(graph)
        args = []
        for name, dyn in inputs:
            self.env[name] = dyn
        order = self._topological(graph)
        arg_types = [donnx.tensor_type(d.dtype, d.shape) for _, d in inputs]
        self.block = Block(arg_types=arg_types)
        for (name, _), arg in zip(inputs, self.block.args):
            _name_hint(arg, name)
            self.values[name] = arg
            args.append(arg)
        for node in order:
            self._node(node)
        outs = []
        out_attrs = []
        for o in graph.output:
            if o.name in self.values and not isinstance(self.env.get(o.name), np.ndarray):
                outs.append(self.values[o.name])
            else:
                outs.append(self._value(o.name))
            out_attrs.append(DictionaryAttr({donnx.QCC_NAME: StringAttr(o.name)}))
        self.block.add_op(func.ReturnOp(*outs))
        fn = func.FuncOp(
            "main",
            (arg_types, [v.type for v in outs]),
            Region(self.block),
            arg_attrs=ArrayAttr(
                [DictionaryAttr({donnx.QCC_NAME: StringAttr(n)}) for n, _ in inputs]
            ),
            res_attrs=ArrayAttr(out_attrs),
        )
        module = ModuleOp([fn])
        module.attributes["onnx.opset"] = IntegerAttr(self.opset, i64)
        if model.producer_name:
            module.attributes["qcc.producer"] = StringAttr(
                f"{model.producer_name} {model.producer_version}".strip()
            )
        try:
            module.verify()
        except Exception as e:
            raise QccError(f"imported IR does not verify: {_first_line(e)}") from None
        return module


_MAX_UNROLL = 4096


def _outer_reads(n: onnx.NodeProto) -> list[str]:
    """The tensors node `n` reads: its inputs, and what its subgraphs take
    from the enclosing scope (If/Loop/Scan bodies may use outer tensors)."""
    reads = list(n.input)
    for a in n.attribute:
        subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else (
            list(a.graphs) if a.type == onnx.AttributeProto.GRAPHS else [])
        for g in subs:
            local = {vi.name for vi in g.input} | {t.name for t in g.initializer}
            local |= {o for m in g.node for o in m.output if o}
            inner = [x for m in g.node for x in _outer_reads(m)]
            inner += [o.name for o in g.output]
            reads += [x for x in inner if x and x not in local]
    return reads


def _rename_outer_refs(g: onnx.GraphProto, names: dict[str, str]) -> None:
    """Renames, in place, the tensors subgraph `g` (and its own subgraphs)
    takes from enclosing scopes, after `names`."""
    local = {vi.name for vi in g.input} | {t.name for t in g.initializer}
    local |= {o for n in g.node for o in n.output if o}
    outer = {k: v for k, v in names.items() if k not in local}
    for n in g.node:
        for i, x in enumerate(n.input):
            if x in outer:
                n.input[i] = outer[x]
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _rename_outer_refs(a.g, outer)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sg in a.graphs:
                    _rename_outer_refs(sg, outer)
    for o in g.output:
        if o.name in outer:
            o.name = outer[o.name]


def _sparse_to_dense(st: onnx.SparseTensorProto) -> np.ndarray:
    vals = numpy_helper.to_array(st.values)
    idx = numpy_helper.to_array(st.indices)
    shape = tuple(st.dims)
    dense = np.zeros(int(np.prod(shape)), vals.dtype)
    if idx.ndim == 2:
        idx = np.ravel_multi_index(idx.T, shape)
    dense[idx] = vals
    return dense.reshape(shape)


def _training(attrs: dict[str, Any], ins: list) -> bool:
    if attrs.get("is_test", 1) == 0 and "is_test" in attrs:
        return True
    if len(ins) >= 3 and isinstance(ins[2], np.ndarray):
        return bool(ins[2])
    return len(ins) >= 3 and ins[2] is not None


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__


_HINT_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _name_hint(v: SSAValue, name: str) -> None:
    """Readable SSA names from ONNX tensor names, restricted to [A-Za-z0-9_]."""
    s = "".join(c if c in _HINT_OK else "_" for c in name)[:48].strip("_")
    if s and not s[0].isdigit():
        v.name_hint = s


def import_model(
    model: onnx.ModelProto | str | os.PathLike[str],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> ModuleOp:
    """Imports an ONNX model (a path or a ModelProto) into the `onnx` dialect."""
    if not isinstance(model, onnx.ModelProto):
        model = load_model(model)
    try:
        with gc_paused():
            return _Importer(model, input_shapes or {}).run()
    except QccError:
        raise
    except RecursionError:
        raise QccError("the model is too deeply nested to import") from None
