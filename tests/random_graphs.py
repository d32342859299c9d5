"""Random small ONNX graphs for differential tests, and their compile at random widths.

`random_graph(rng)` builds a verified ONNX model (onnx.helper, opset 17): a chain
or small DAG on one image mixing Conv (regular, depthwise incl. multiplier 2,
grouped, strided, padded, dilated, with or without bias; the first layer is
always a Conv, as an op on the float input would stay float), residual blocks
(Conv, maybe an activation, Add with the block's input), Mul by a per-channel
constant, Relu / Clip /
HardSwish / HardSigmoid / Sigmoid / LeakyRelu, MaxPool / AveragePool, Add with a
same-shaped earlier tensor (residual) or itself, Concat with an earlier tensor of
the same spatial size, and sometimes a head: GlobalAveragePool or Flatten, then
Gemm or MatMul with constant weights and sometimes Softmax. Sometimes an
intermediate tensor is a second graph output. `graphs()` is the hypothesis
strategy over it.

`compile_random_widths(graph, out_dir, width_seed)` compiles with `qcc.compile`
(calibrated on `graph.calib`) while every op that assign-bit-widths chose widths
for gets random ones instead: weights from {2, 4, 8, 16}, activations from
{4, 8, 16} (activations have no 2-bit form), except that the producer of a
lookup activation (Sigmoid, HardSwish...) keeps at most 8 bits: a table takes
<= 8-bit codes, and the op would otherwise stay float, whose C agrees with the
interpreter only to float32 rounding, so a later quantize could flip a code.
The rest of the pipeline (lowering, fusion, C emission, report) is qcc's own.
`float_slices(module)` says which outputs such float ops (a float Softmax tail
after a 16-bit producer) compute.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from unittest import mock

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

W_WIDTHS = (2, 4, 8, 16)
A_WIDTHS = (4, 8, 16)
ACTIVATIONS = ("Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "LeakyRelu")
LOOKUP_OPS = ("HardSwish", "HardSigmoid", "Sigmoid", "LeakyRelu")
PASS_THROUGH = ("MaxPool", "AveragePool", "Relu", "Clip", "Flatten")
BODY = ("conv", "conv", "depthwise", "grouped", "act", "act", "mul", "maxpool", "avgpool", "add", "concat", "residual")


@dataclass
class RandomGraph:
    model: onnx.ModelProto
    input_shape: tuple[int, ...]
    layers: list[str] = field(default_factory=list)  # one line per node: op and shapes, for failure messages
    seed: int = 0

    def inputs(self, n: int, rng: np.random.Generator, spread: float = 1.0) -> dict[str, np.ndarray]:
        """n samples of the input (first axis); `spread` > 1 leaves the calibrated range."""
        x = rng.normal(0.0, spread, size=(n, *self.input_shape[1:])).astype(np.float32)
        return {"input": x}

    @property
    def calib(self) -> dict[str, np.ndarray]:
        return self.inputs(16, np.random.default_rng(self.seed ^ 0x5EED))

    def describe(self) -> str:
        return f"random graph seed={self.seed} input {list(self.input_shape)}:\n  " + "\n  ".join(self.layers)


class _Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.layers: list[str] = []
        self.shapes: dict[str, tuple[int, ...]] = {}

    def const(self, arr: np.ndarray) -> str:
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], shape: tuple[int, ...], **attrs) -> str:
        out = f"t{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op.lower()}_{len(self.nodes)}", **attrs))
        ins = ", ".join(str(list(self.shapes[i])) for i in inputs if i in self.shapes)
        extra = " ".join(f"{k}={v}" for k, v in attrs.items())
        self.layers.append(f"{out} = {op}({ins}) {extra} -> {list(shape)}".replace("  ", " "))
        self.shapes[out] = shape
        return out

    # ------------------------------------------------------------ layers
    def conv(self, x: str, kind: str) -> str:
        r = self.rng
        n, c, h, w = self.shapes[x]
        k = int(r.choice([1, 3, 3, 5])) if min(h, w) >= 5 else int(r.choice([1, min(h, w, 3)]))
        s = int(r.choice([1, 1, 2]))
        p = int(r.integers(0, k // 2 + 1))
        d = 2 if k == 3 and min(h, w) >= 7 and r.random() < 0.15 else 1
        if kind == "residual":  # shape-preserving conv, then Add with its input (fuse-residual-add)
            g = c if c > 1 and r.random() < 0.5 else 1
            k, s, p, d, m = 3, 1, 1, 1, c
        elif kind == "depthwise":
            g, m = c, c * int(r.choice([1, 1, 2]))
        elif kind == "grouped" and c >= 2 and c % 2 == 0:
            g = int(r.choice([d for d in (2, c // 2, c) if d >= 2 and c % d == 0]))
            m = g * int(r.integers(1, 3))
        else:
            g, m = 1, int(r.integers(1, 9)) if r.random() < 0.8 else int(r.integers(9, 21))
        wt = (r.normal(size=(m, c // g, k, k)) / np.sqrt(c // g * k * k)).astype(np.float32)
        ins = [x, self.const(wt)]
        if r.random() < 0.8:
            ins.append(self.const(r.normal(0, 0.3, size=m).astype(np.float32)))
        ek = d * (k - 1) + 1
        oh, ow = (h + 2 * p - ek) // s + 1, (w + 2 * p - ek) // s + 1
        attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, group=g)
        if d > 1:
            attrs["dilations"] = [d, d]
        y = self.node("Conv", ins, (n, m, oh, ow), **attrs)
        if kind == "residual":
            if r.random() < 0.5:
                y = self.act(y)
            y = self.node("Add", [x, y] if r.random() < 0.5 else [y, x], self.shapes[x])
        return y

    def act(self, x: str) -> str:
        op = str(self.rng.choice(ACTIVATIONS))
        shape = self.shapes[x]
        if op == "Clip":
            lo = float(self.rng.choice([0.0, -1.0]))
            return self.node("Clip", [x, self.const(np.float32(lo)), self.const(np.float32(lo + 6.0))], shape)
        if op == "LeakyRelu":
            return self.node(op, [x], shape, alpha=float(self.rng.choice([0.01, 0.1, 0.2])))
        return self.node(op, [x], shape)

    def mul(self, x: str) -> str:
        c = self.shapes[x][1]
        v = self.rng.uniform(0.25, 2.0, size=(c, 1, 1)) * self.rng.choice([-1, 1], size=(c, 1, 1))
        return self.node("Mul", [x, self.const(v.astype(np.float32))], self.shapes[x])

    def pool(self, x: str, op: str) -> str | None:
        n, c, h, w = self.shapes[x]
        if min(h, w) < 2:
            return None
        k = int(self.rng.choice([2, 3])) if min(h, w) >= 3 else 2
        s = int(self.rng.choice([1, 2]))
        p = int(self.rng.integers(0, 2)) if k == 3 else 0
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
        if op == "AveragePool" and p:
            attrs["count_include_pad"] = int(self.rng.integers(0, 2))
        return self.node(op, [x], (n, c, oh, ow), **attrs)

    def head(self, x: str) -> str:
        r = self.rng
        n, c, h, w = self.shapes[x]
        if r.random() < 0.6 or c * h * w > 512:
            v = self.node("GlobalAveragePool", [x], (n, c, 1, 1))
            v = self.node("Flatten", [v], (n, c), axis=1)
        else:
            v = self.node("Flatten", [x], (n, c * h * w), axis=1)
        f = self.shapes[v][1]
        m = int(r.integers(2, 11))
        wt = (r.normal(size=(m, f)) / np.sqrt(f)).astype(np.float32)
        if r.random() < 0.5:
            y = self.node("Gemm", [v, self.const(wt), self.const(r.normal(0, 0.3, size=m).astype(np.float32))],
                          (n, m), transB=1)
        else:
            y = self.node("MatMul", [v, self.const(np.ascontiguousarray(wt.T))], (n, m))
        if r.random() < 0.4:
            y = self.node("Softmax", [y], (n, m), axis=1)
        return y


def random_graph(rng: np.random.Generator, seed: int = 0) -> RandomGraph:
    """A random small model: 2-7 body layers on a 1x{1..4}x{4..10}x{4..10} image (one in five
    16..26 wide), then maybe a head."""
    b = _Builder(rng)
    big = rng.random() < 0.2  # >= 256 output positions / 576-pixel planes: the "pix" and planar depthwise kernels
    hw = (16, 27) if big else (4, 11)
    shape = (1, int(rng.integers(1, 5)), int(rng.integers(*hw)), int(rng.integers(*hw)))
    b.shapes["input"] = shape
    x, earlier = "input", ["input"]
    kinds = [str(rng.choice(["conv", "depthwise", "grouped"]))] + list(rng.choice(BODY, size=int(rng.integers(1, 7))))
    for kind in kinds:  # a data-movement op or activation on the float input would stay float: start with a conv
        if kind in ("conv", "depthwise", "grouped", "residual"):
            y = b.conv(x, kind)
        elif kind == "act":
            y = b.act(x)
        elif kind == "mul":
            y = b.mul(x)
        elif kind in ("maxpool", "avgpool"):
            y = b.pool(x, "MaxPool" if kind == "maxpool" else "AveragePool")
        elif kind == "add":
            same = [t for t in earlier[:-1] if b.shapes[t] == b.shapes[x]]
            other = str(rng.choice(same)) if same and rng.random() < 0.8 else x
            y = b.node("Add", [x, other], b.shapes[x])
        else:  # concat along channels with an earlier tensor of the same spatial size
            same = [t for t in earlier if b.shapes[t][2:] == b.shapes[x][2:]]
            other = str(rng.choice(same))
            ins = [x, other] if rng.random() < 0.5 else [other, x]
            n, c, h, w = b.shapes[x]
            y = b.node("Concat", ins, (n, c + b.shapes[other][1], h, w), axis=1)
        if y is None or min(b.shapes[y][2:]) < 1:
            continue
        x = y
        earlier.append(y)
    outputs = [x]
    if rng.random() < 0.6:
        outputs = [b.head(x)]
        if rng.random() < 0.3 and x != "input":
            outputs.append(x)  # an intermediate tensor is an output too
    if outputs == ["input"]:
        outputs = [b.act("input")]
    g = helper.make_graph(
        b.nodes, f"random_{seed}", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, list(b.shapes[o])) for o in outputs], b.inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return RandomGraph(model, shape, b.layers + [f"outputs {outputs}"], seed)


@st.composite
def graphs(draw) -> RandomGraph:
    seed = draw(st.integers(0, 2**32 - 1))
    return random_graph(np.random.default_rng(seed), seed)


@contextlib.contextmanager
def random_widths(width_seed: int, log: list | None = None):
    """Within the block, assign-bit-widths gives every op it measures random widths
    (`log` receives (op type, node name, w_bits, a_bits))."""
    from xdsl.dialects.builtin import IntegerAttr, StringAttr, i64

    import qcc.passes.assign_bit_widths as abw
    from qcc.passes.lower_to_quant import A_BITS, W_BITS

    real = abw.assign
    rng = np.random.default_rng(width_seed)

    def assign(module, bits, **kw):
        choices = real(module, bits, **kw)
        for ch in choices:
            ch.w, ch.a = int(rng.choice(W_WIDTHS)), int(rng.choice(A_WIDTHS))
        by_op = {ch.op: ch for ch in choices}
        for ch in choices:  # a lookup table takes <= 8-bit codes: a 16-bit input would leave the op float
            if ch.op.onnx_type not in LOOKUP_OPS:
                continue
            src = ch.op.operands[0].owner
            while getattr(src, "onnx_type", None) in PASS_THROUGH:  # these keep their input's quantization
                src = src.operands[0].owner
            if src in by_op and by_op[src].a > 8:
                by_op[src].a = int(rng.choice((4, 8)))
        for ch in choices:
            if ch.params:
                ch.op.attributes[W_BITS] = IntegerAttr(ch.w, i64)
            ch.op.attributes[A_BITS] = IntegerAttr(ch.a, i64)
            ch.op.attributes[abw.REASON] = StringAttr("random (test)")
            if log is not None:
                log.append((ch.op.onnx_type, ch.op.node_name, ch.w if ch.params else None, ch.a))
        return choices

    with mock.patch.object(abw, "assign", assign):
        yield


def compile_random_widths(graph: RandomGraph, out_dir, width_seed: int, *, target: str = "host"):
    """qcc.compile of `graph` at random per-op widths; returns (artifact, widths log)."""
    import qcc

    log: list = []
    with random_widths(width_seed, log):
        art = qcc.compile(graph.model, str(out_dir), target=target, calib=graph.calib, bits=W_WIDTHS, force=True,
                          quiet=True)
    return art, log


def float_slices(module) -> tuple[dict[int, bool], bool]:
    """({output index: whether a float op (one the lowering left in onnx form) computes part of it},
    whether a float op's result is quantized again for integer code downstream)."""
    from qcc.dialects import onnx as donnx
    from qcc.dialects import quant as q
    from qcc.interpreter import main_func

    def is_float_op(op) -> bool:
        return isinstance(op, donnx.OnnxOp) and op.onnx_type != "Constant"

    ret = list(main_func(module).body.block.ops)[-1]
    floaty: dict[int, bool] = {}
    for j, v in enumerate(ret.operands):
        seen, stack, found = set(), [v], False
        while stack and not found:
            op = stack.pop().owner
            if not hasattr(op, "operands") or id(op) in seen:
                continue
            seen.add(id(op))
            found = is_float_op(op)
            stack.extend(op.operands)
        floaty[j] = found
    requant = any(isinstance(op, q.QuantizeOp) and is_float_op(op.operands[0].owner) for op in module.walk())
    return floaty, requant
