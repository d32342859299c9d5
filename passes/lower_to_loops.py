"""lower-to-loops: quantized IR (`func.func @main` of quant ops) -> the loop-level stage.

The loop-level stage is plain xDSL `func`/`memref`/`scf`/`arith`/`math`: every tensor is
a flat row-major 1-D memref, every op a loop nest of loads, integer arithmetic and
stores, every buffer explicit. Weights, bias, multiplier and lookup tables become
`memref.global` constants (2/4-bit weights stay packed and are unpacked in the loop);
activations are `memref.view`s at offsets of one static arena `@qcc_arena`, placed by
the C backend's planner (`qcc.backends.c.arena`) from tensor lifetimes.

The module then holds the same C ABI as the C backend's model.h:
`@qcc_body` (codes in, codes out), `@qcc_model_run` (float32 in/out, quantize and
dequantize at the edges; returns 0, or -1 for a null pointer) and, when every
input is quantized and every output dequantized per tensor, `@qcc_model_run_q`.

The arithmetic is docs/numerics.md's, written out as arith ops: int32 (or int64)
accumulation, `requantize32` (SRDHM + RDBP with the left shift saturated) and
`requantize64`, with multipliers from `qcc.numerics`; the integer interpreter
`qcc.int_kernels` is the oracle the tests compare with, bit for bit.
The module attribute `qcc.index_bits` (32 or 64) tells the llvm conversions how wide
`index` is on the target. With `dsp` (Arm DSP extension: Cortex-M4/M7) int8 1x1
convolutions and fully-connected layers take SXTB16/SMLAD dot products, written as
`llvm.call_intrinsic` ops (the one llvm op the loop-level stage admits).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith, func, llvm as xllvm, math as xmath, memref, scf
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    Float32Type,
    Float64Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    TensorType,
    UnitAttr,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass

from qcc import numerics as nx
from qcc.backends.c import arena
from qcc.dialects import onnx as donnx
from qcc.dialects import quant as q
from qcc.errors import QccError
from qcc.float_kernels import KERNELS, _conv_geometry, _pool_geometry
from qcc.interpreter import main_func, module_opset

INDEX = IndexType()
BLOCK = 4  # outputs per register block: pixels of a convolution row, neurons of a fully-connected layer
PW_BLOCK = 2  # output channels per block of the DSP pointwise kernel (x 4 pixels)
DSP_BLOCK = 2  # the same with SMLAD: each accumulator also holds two int16 pairs of weights; LLVM unrolls the loop
F32, F64 = Float32Type(), Float64Type()
_INT = {np.dtype(np.int8): i8, np.dtype(np.int16): i16, np.dtype(np.int32): i32, np.dtype(np.uint8): i8,
        np.dtype(np.uint16): i16, np.dtype(np.uint32): i32, np.dtype(np.float32): F32}


def _where(op) -> str:
    name = getattr(op, "node_name", "")
    return f"{op.name}{f' {name!r}' if name else ''}"


# ------------------------------------------------------------------ builder


class B:
    """Appends ops to one block; small helpers for the arithmetic the kernels spell out."""

    def __init__(self, block: Block):
        self.block = block

    def add(self, op: Operation) -> SSAValue:
        self.block.add_op(op)
        return op.results[0] if op.results else None

    def c(self, v: int, ty=i64) -> SSAValue:
        return self.add(arith.ConstantOp(IntegerAttr(int(v), ty)))

    def i(self, v: int) -> SSAValue:
        return self.c(v, INDEX)

    def f(self, v: float, ty=F64) -> SSAValue:
        return self.add(arith.ConstantOp(FloatAttr(float(v), ty)))

    def val(self, v, ty):
        return v if isinstance(v, SSAValue) else self.c(v, ty)

    def addi(self, a, b):
        return self.add(arith.AddiOp(a, b))

    def subi(self, a, b):
        return self.add(arith.SubiOp(a, b))

    def muli(self, a, b):
        return self.add(arith.MuliOp(a, b))

    def shr(self, a, b):
        return self.add(arith.ShRSIOp(a, b))

    def cmp(self, pred: str, a, b):
        return self.add(arith.CmpiOp(a, b, pred))

    def sel(self, c, a, b):
        return self.add(arith.SelectOp(c, a, b))

    def smax(self, a, b):
        return self.add(arith.MaxSIOp(a, b))

    def smin(self, a, b):
        return self.add(arith.MinSIOp(a, b))

    def sext(self, v, ty):
        return v if v.type == ty else self.add(arith.ExtSIOp(v, ty))

    def trunc(self, v, ty):
        return v if v.type == ty else self.add(arith.TruncIOp(v, ty))

    def to_index(self, v):
        return self.add(arith.IndexCastOp(v, INDEX))

    def load(self, mem, idx):
        return self.add(memref.LoadOp.get(mem, [idx]))

    def store(self, v, mem, idx):
        self.add(memref.StoreOp.get(v, mem, [idx]))

    def lin(self, terms: Sequence[tuple[SSAValue, int]], const: int = 0):
        """Σ iv * stride + const on index values (zero strides dropped)."""
        acc = None
        for v, s in terms:
            if s == 0:
                continue
            t = v if s == 1 else self.muli(v, self.i(s))
            acc = t if acc is None else self.addi(acc, t)
        if acc is None:
            return self.i(const)
        return acc if const == 0 else self.addi(acc, self.i(const))

    def loop(self, n, body: Callable, inits: Sequence[SSAValue] = (), lo=0, step: int = 1):
        """scf.for iv in [lo, n) step (bounds: ints or index values); body(b, iv, *carried)
        returns the new carried values."""
        blk = Block(arg_types=[INDEX, *[v.type for v in inits]])
        inner = B(blk)
        out = body(inner, *blk.args) or []
        inner.add(scf.YieldOp(*out))
        op = scf.ForOp(self.val(lo, INDEX), self.val(n, INDEX), self.i(step), list(inits), blk)
        self.block.add_op(op)
        return list(op.results)

    def loops(self, dims: Sequence[int], body: Callable) -> None:
        """Nested loops over `dims`; body(b, ivs)."""
        def rec(b: B, k: int, ivs: list):
            if k == len(dims):
                body(b, ivs)
                return
            b.loop(dims[k], lambda bb, iv: rec(bb, k + 1, [*ivs, iv]))
        rec(self, 0, [])


def _strides(shape) -> list[int]:
    out, acc = [], 1
    for d in reversed(list(shape)):
        out.append(acc)
        acc *= int(d)
    return list(reversed(out))


# -------------------------------------------------------------- numerics


def sat32(b: B, x):
    return b.smin(b.smax(x, b.c(nx.INT32_MIN)), b.c(nx.INT32_MAX))


@dataclass
class Requant:
    """requantize32/64 of docs/numerics.md with per-tensor constants or per-channel
    tables; `at(b, m)` binds the channel index, `apply(b, acc64)` emits the formula."""

    m0: np.ndarray
    shift: np.ndarray
    acc_bits: int
    lw: Lowering

    def __post_init__(self):
        self.m0 = np.asarray(self.m0, np.int64).reshape(-1)
        self.shift = np.asarray(self.shift, np.int64).reshape(-1)
        if self.acc_bits == 64 and np.any(self.shift >= 8):
            raise QccError("64-bit requantization needs multipliers below 128")
        self.uniform = bool(np.all(self.m0 == self.m0[0]) and np.all(self.shift == self.shift[0]))
        if self.acc_bits == 32:
            self.tabs = {"m0": self.m0, "l": np.int64(1) << np.maximum(self.shift, 0),
                         "r": np.maximum(-self.shift, 0)}
        else:
            m16 = np.where(self.m0 < 0x7FFF0000, (self.m0 + (1 << 15)) >> 16, 0x7FFF)
            total = 15 - self.shift
            self.tabs = {"m16": m16, "t": total, "h": np.int64(1) << (total - 1)}
        if not self.uniform:
            self.syms = {k: self.lw.global_const(v.astype(np.int64), np.dtype(np.int64), "rq") for k, v in
                         self.tabs.items()}

    def at(self, b: B, m) -> dict:
        if self.uniform:
            return {k: int(v[0]) for k, v in self.tabs.items()}
        return {k: b.load(self.lw.get_global(b, s), m) for k, s in self.syms.items()}

    def apply(self, b: B, acc, p: dict):
        if self.acc_bits == 64:
            v = b.addi(b.muli(acc, b.val(p["m16"], i64)), b.val(p["h"], i64))
            return sat32(b, b.shr(v, b.val(p["t"], i64)))
        x = acc
        if np.any(self.tabs["l"] > 1):
            shifted = sat32(b, b.muli(acc, b.val(p["l"], i64)))
            x = shifted if self.uniform or np.all(self.tabs["l"] > 1) else \
                b.sel(b.cmp("sgt", p["l"], b.c(1)), shifted, acc)
        s = b.shr(b.addi(b.muli(x, b.val(p["m0"], i64)), b.c(1 << 30)), b.c(31))
        r = self.tabs["r"]
        if not np.any(r > 0):
            return s
        neg = b.add(arith.ExtUIOp(b.cmp("slt", s, b.c(0)), i64))
        if self.uniform:
            e = int(r[0])
            return b.shr(b.subi(b.addi(s, b.c(1 << (e - 1))), neg), b.c(e))
        pos = b.cmp("sgt", p["r"], b.c(0))
        half = b.sel(pos, b.add(arith.ShLIOp(b.c(1), b.smax(b.subi(p["r"], b.c(1)), b.c(0)))), b.c(0))
        neg = b.sel(pos, neg, b.c(0))
        return b.shr(b.subi(b.addi(s, half), neg), p["r"])


def requant_out(b: B, rq: Requant, acc, p: dict, zp: int, lo: int, hi: int, ty):
    """finish(rq.apply(acc)) for a dot product's accumulator. An int32 accumulator
    with requantize32 stays in 32-bit arithmetic except for the 32x32->64 product
    of SRDHM (a single SMULL on 32-bit cores): the rounding right shift as
    (s >> e) + ((s & mask) > (mask >> 1) + (s < 0)) (equal to docs/numerics.md's
    (s + 2^(e-1) - (s < 0)) >> e, without its overflow past int32), the clamp as
    clamp(v, lo - zp, hi - zp) + zp."""
    if rq.acc_bits != 32 or acc.type != i32 or np.any(rq.tabs["r"] > 31):
        return finish(b, rq.apply(b, b.sext(acc, i64), p), zp, lo, hi, ty)
    x = acc
    if np.any(rq.tabs["l"] > 1):
        shifted = b.trunc(sat32(b, b.muli(b.sext(acc, i64), b.val(p["l"], i64))), i32)
        x = shifted if rq.uniform or np.all(rq.tabs["l"] > 1) else \
            b.sel(b.cmp("sgt", p["l"], b.c(1)), shifted, acc)
    m0 = b.c(int(p["m0"])) if rq.uniform else b.sext(b.trunc(p["m0"], i32), i64)
    s = b.trunc(b.shr(b.addi(b.muli(b.sext(x, i64), m0), b.c(1 << 30)), b.c(31)), i32)
    if np.any(rq.tabs["r"] > 0):
        if rq.uniform:
            e = int(rq.tabs["r"][0])
            sh, mask = b.c(e, i32), b.c((1 << e) - 1, i32)
            half = b.c(((1 << e) - 1) >> 1, i32)
        else:
            sh = b.trunc(p["r"], i32)
            mask = b.subi(b.add(arith.ShLIOp(b.c(1, i32), sh)), b.c(1, i32))
            half = b.add(arith.ShRUIOp(mask, b.c(1, i32)))
        neg = b.add(arith.ExtUIOp(b.cmp("slt", s, b.c(0, i32)), i32))
        up = b.cmp("sgt", b.add(arith.AndIOp(s, mask)), b.addi(half, neg))
        s = b.addi(b.shr(s, sh), b.add(arith.ExtUIOp(up, i32)))
    y = b.smin(b.smax(s, b.c(lo - zp, i32)), b.c(hi - zp, i32))
    return b.trunc(b.addi(y, b.c(zp, i32)), ty)


def finish(b: B, v64, zp: int, lo: int, hi: int, ty):
    """clamp(v + zp, lo, hi) in the storage type."""
    y = b.smin(b.smax(b.addi(v64, b.c(zp)), b.c(lo)), b.c(hi))
    return b.trunc(y, ty)


# ------------------------------------------------------------------ tensors


@dataclass
class TensorInfo:
    value: SSAValue
    shape: tuple[int, ...]
    dtype: np.dtype
    qp: nx.QParams | None
    const: np.ndarray | None = None  # values (constants only)
    packed: np.ndarray | None = None  # 2/4-bit packed bytes

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def elem(self):
        return _INT[self.dtype]

    @property
    def mtype(self) -> MemRefType:
        return MemRefType(self.elem, [max(self.size, 1)])


class Lowering:
    """One quantized @main -> module ops of the loop-level stage."""

    def __init__(self, module: ModuleOp, index_bits: int, dsp: bool = False):
        self.module = module
        self.index_bits = index_bits
        self.dsp = dsp  # Arm DSP extension: int8 dot products as SXTB16/SMLAD (llvm.arm.* intrinsics)
        self.fn = main_func(module)
        self.opset = module_opset(module)
        self.globals: list[Operation] = []
        self.global_types: dict[str, MemRefType] = {}
        self.info: dict[SSAValue, TensorInfo] = {}
        self._n = 0

    # ---- globals
    def global_const(self, values: np.ndarray, dtype: np.dtype, prefix: str) -> str:
        self._n += 1
        sym = f"qcc_{prefix}{self._n}"
        vals = np.asarray(values).reshape(-1).astype(dtype)
        ety = i64 if dtype == np.int64 else _INT[np.dtype(dtype)]
        n = max(vals.size, 1)
        lst = [int(v) for v in vals] or [0]
        dense = DenseIntOrFPElementsAttr.from_list(TensorType(ety, [n]), lst)
        self.globals.append(memref.GlobalOp.get(StringAttr(sym), MemRefType(ety, [n]), dense,
                                                constant=UnitAttr(), alignment=16))
        self.global_types[sym] = MemRefType(ety, [n])
        return sym

    def global_const_f64(self, values) -> str:
        self._n += 1
        sym = f"qcc_s{self._n}"
        vals = [float(v) for v in values]
        dense = DenseIntOrFPElementsAttr.from_list(TensorType(F64, [len(vals)]), vals)
        self.globals.append(memref.GlobalOp.get(StringAttr(sym), MemRefType(F64, [len(vals)]), dense,
                                                constant=UnitAttr(), alignment=16))
        self.global_types[sym] = MemRefType(F64, [len(vals)])
        return sym

    def get_global(self, b: B, sym: str) -> SSAValue:
        return b.add(memref.GetGlobalOp(sym, self.global_types[sym]))

    # ---- tensors
    def tensor(self, v: SSAValue) -> TensorInfo:
        t = self.info.get(v)
        if t is None:
            ty = v.type
            if not isinstance(ty, TensorType):
                raise QccError(f"the loop-level stage handles tensors only, got {ty}")
            shape = tuple(int(d) for d in ty.get_shape())
            if any(d < 0 for d in shape):
                raise QccError(f"the loop-level stage needs static shapes, got {list(shape)}")
            qp = q.qparams_of(ty)
            if qp is not None:
                dtype = nx.storage_dtype(qp.bits, qp.signed)
            else:
                dtype = donnx.numpy_dtype(ty.element_type)
                if dtype != np.float32:
                    raise QccError(f"the loop-level stage handles float32 and quantized tensors, got "
                                   f"{ty.element_type}")
            t = TensorInfo(v, shape, np.dtype(dtype), qp)
            self.info[v] = t
        return t

    def mem(self, b: B, v: SSAValue) -> SSAValue:
        return self.where[v](b)

    # ---- the whole module
    def run(self) -> list[Operation]:
        ops = list(self.fn.body.block.ops)
        ret = ops[-1]
        if not isinstance(ret, func.ReturnOp):
            raise QccError("@main must end with func.return")
        self.ret = ret
        body = []
        for op in ops[:-1]:
            if isinstance(op, q.ConstantOp):
                t = self.tensor(op.results[0])
                t.const = op.values()
                if t.qp.bits in (2, 4):
                    t.packed = op.attributes["packed"].array
            elif isinstance(op, donnx.NoValueOp) or (isinstance(op, donnx.OnnxOp) and op.onnx_type == "Constant"
                                                     and not op.results[0].uses):
                continue
            else:
                for r in op.results:
                    self.tensor(r)
                body.append(op)
        for a in self.fn.args:
            self.tensor(a)
        self._edges(body)
        self.body = [op for op in body if op not in self.edge_ops]
        self._plan()
        funcs = [self._body_func(), self._run_func()]
        if self.q_edge:
            funcs.append(self._run_q_func())
        arena_g = memref.GlobalOp.get(StringAttr("qcc_arena"), MemRefType(i8, [max(self.arena_bytes, 1)]),
                                      UnitAttr(), alignment=16)
        return [arena_g, *self.globals, *funcs]

    def _edges(self, body) -> None:
        """As the C backend: run_q exists when each input feeds one per-tensor
        quantize and each output is a per-tensor dequantize used only there."""
        q_in, q_out, ok = [], [], True
        for a in self.fn.args:
            uses = list(a.uses)
            if len(uses) == 1 and isinstance(uses[0].operation, q.QuantizeOp) \
                    and q.qparams_of(uses[0].operation.results[0].type).axis is None:
                q_in.append(uses[0].operation)
            else:
                ok = False
        for v in self.ret.operands:
            if isinstance(v.owner, q.DequantizeOp) and len(list(v.uses)) == 1 \
                    and q.qparams_of(v.owner.operands[0].type).axis is None:
                q_out.append(v.owner)
            else:
                ok = False
        self.q_edge = ok
        self.q_in, self.q_out = (q_in, q_out) if ok else ([], [])
        self.edge_ops = set(self.q_in) | set(self.q_out)
        if ok:
            self.body_in = [op.results[0] for op in q_in]
            self.body_out = [op.operands[0] for op in q_out]
        else:
            self.body_in = list(self.fn.args)
            self.body_out = list(self.ret.operands)
            for v in self.body_out:
                if self.tensor(v).qp is not None:
                    raise QccError("a graph output is quantized without a quant.dequantize")

    # ---- memory
    def _plan(self) -> None:
        """Liveness over body steps, reshape results sharing their operand's
        buffer, offsets from the arena planner."""
        n = len(self.body)
        parent: dict[SSAValue, SSAValue] = {}

        def root(v):
            while v in parent:
                v = parent[v]
            return v

        self.alias: set = set()
        fixed = set(self.body_in) | set(self.body_out)
        for op in self.body:
            if isinstance(op, q.ReshapeOp):
                x, y = op.operands[0], op.results[0]
                if self.tensor(x).const is None and not (root(x) in fixed or x in fixed) and y not in fixed:
                    parent[y] = root(x)
                    self.alias.add(op)
        self.root = root
        step = {op: k for k, op in enumerate(self.body)}
        live: dict[SSAValue, list[int]] = {}

        def touch(v, k):
            r = root(v)
            s = live.setdefault(r, [k, k])
            s[0], s[1] = min(s[0], k), max(s[1], k)

        for v in self.body_in:
            touch(v, -1)
        for op in self.body:
            for r in op.results:
                touch(r, step[op])
        for v in list(self.info):
            if self.info[v].const is not None or root(v) not in live:
                continue
            for use in v.uses:
                touch(v, step.get(use.operation, n))
        for v in self.body_out:
            if root(v) in live:
                touch(v, n)
        bufs: dict = {}
        for k, op in enumerate(self.body):  # scratch: one output channel's unpacked 2/4-bit weights
            if isinstance(op, q.ConvOp) and self.tensor(op.operands[1]).packed is not None:
                w = self.tensor(op.operands[1])
                bufs[op] = arena.Buffer(f"scratch{k}", w.size // w.shape[0], k, k)
        for r, (s, e) in live.items():
            if not self.q_edge and (r in self.body_in or r in self.body_out):
                continue  # the caller's arrays
            nbytes = max(self.tensor(v).nbytes for v in [r, *[c for c, p in parent.items() if root(c) is r]])
            bufs[r] = arena.Buffer(f"t{len(bufs)}", nbytes, s, e)
        self.arena_bytes = arena.plan(list(bufs.values()))
        self.buffers = bufs
        self.naive_bytes = sum(b.size for b in bufs.values())
        # peak SRAM as report.json counts it (the C backend's rule): the arena plus the
        # input/output buffers outside it, and the same without the graph input
        outside_in = sum(self.tensor(v).nbytes for v in self.body_in if root(v) not in bufs)
        outside_out = sum(self.tensor(v).nbytes for v in self.body_out if root(v) not in bufs)
        ins = {root(v) for v in self.body_in}
        rest = [arena.Buffer(b.name, b.size, b.start, b.end) for k, b in bufs.items() if k not in ins]
        self.sram_peak_bytes = self.arena_bytes + outside_in + outside_out
        self.sram_peak_bytes_excl_input = arena.plan(rest) + outside_out

    def _view(self, v: SSAValue) -> Callable[[B], SSAValue]:
        buf = self.buffers[self.root(v)]
        t = self.tensor(v)

        def make(b: B):
            ar = b.add(memref.GetGlobalOp("qcc_arena", MemRefType(i8, [max(self.arena_bytes, 1)])))
            return b.add(memref.ViewOp(ar, b.i(buf.offset), [], t.mtype))

        return make

    def scratch(self, b: B, op, n: int) -> SSAValue:
        """The op's scratch buffer in the arena as memref<n x i8>."""
        ar = b.add(memref.GetGlobalOp("qcc_arena", MemRefType(i8, [max(self.arena_bytes, 1)])))
        return b.add(memref.ViewOp(ar, b.i(self.buffers[op].offset), [], MemRefType(i8, [n])))

    def _const_ref(self, t: TensorInfo) -> Callable[[B], SSAValue]:
        if not hasattr(t, "sym"):
            if t.packed is not None:
                t.sym = self.global_const(t.packed.view(np.int8), np.dtype(np.int8), "w")
            else:
                t.sym = self.global_const(t.const, t.dtype, "w")
        return lambda b: self.get_global(b, t.sym)

    def _bind(self, args: dict[SSAValue, SSAValue]) -> None:
        """Where each value lives while lowering one function: an argument, a
        constant, or an arena view."""
        self.where: dict[SSAValue, Callable[[B], SSAValue]] = {}
        for v, t in self.info.items():
            if v in args:
                a = args[v]
                self.where[v] = lambda b, a=a: a
            elif t.const is not None:
                self.where[v] = self._const_ref(t)
            elif self.root(v) in self.buffers:
                self.where[v] = self._view(v)

    # ---- functions
    def _body_func(self) -> func.FuncOp:
        ins = [self.tensor(v).mtype for v in self.body_in]
        outs = [self.tensor(v).mtype for v in self.body_out]
        block = Block(arg_types=[*ins, *outs])
        args = dict(zip(self.body_in, block.args[:len(ins)]))
        out_args = block.args[len(ins):]
        written = {}
        for j, v in enumerate(self.body_out):
            if v not in args and v not in written and self.tensor(v).const is None and \
                    not (v.owner in self.alias):
                written[v] = out_args[j]
        self._bind({**args, **written})
        b = B(block)
        for op in self.body:
            if op in self.alias:
                continue
            lower = LOWERINGS.get(op.onnx_type if isinstance(op, donnx.OnnxOp) else type(op))
            if lower is None:
                what = f"onnx.{op.onnx_type} (float)" if isinstance(op, donnx.OnnxOp) else op.name
                name = getattr(op, "node_name", "")
                raise QccError(f"{what}{f' {name!r}' if name else ''}: no loop-level lowering yet")
            lower(self, b, op)
        for j, v in enumerate(self.body_out):
            if written.get(v) is not out_args[j]:
                t = self.tensor(v)
                src = self.mem(b, v)
                b.loop(t.size, lambda bb, i: bb.store(self._read(bb, t, src, i), out_args[j], i))
        b.add(func.ReturnOp())
        return func.FuncOp("qcc_body", ([*ins, *outs], []), Region(block), visibility="private")

    def _read(self, b: B, t: TensorInfo, mem, idx):
        """Element idx of t as stored (packed constants unpacked to int8)."""
        if t.packed is None:
            return b.load(mem, idx)
        return b.trunc(self.unpack(b, t, mem, idx), i8)

    def _null_guard(self, b: B, args, body: Callable[[B], None]) -> None:
        """return -1 when any pointer is null, else body; return 0."""
        anynull = None
        for a in args:
            p = b.add(memref.ExtractAlignedPointerAsIndexOp.get(a))
            z = b.cmp("eq", p, b.i(0))
            anynull = z if anynull is None else b.add(arith.OrIOp(anynull, z))
        if anynull is None:
            body(b)
            b.add(func.ReturnOp(b.c(0, i32)))
            return
        then_b, else_b = Block(), Block()
        B(then_b).add(scf.YieldOp(B(then_b).c(-1, i32)))
        eb = B(else_b)
        body(eb)
        eb.add(scf.YieldOp(eb.c(0, i32)))
        r = b.add(scf.IfOp(anynull, [i32], [then_b], [else_b]))
        b.add(func.ReturnOp(r))

    def _run_func(self) -> func.FuncOp:
        ins = [MemRefType(F32, [max(self.tensor(a).size, 1)]) for a in self.fn.args]
        outs = [MemRefType(F32, [max(self.tensor(v).size, 1)]) for v in self.ret.operands]
        block = Block(arg_types=[*ins, *outs])
        fin, fout = block.args[:len(ins)], block.args[len(ins):]

        def body(b: B):
            if not self.q_edge:
                b.add(func.CallOp("qcc_body", [*fin, *fout], []))
                return
            self._bind({})
            slots_in = [self.mem(b, v) for v in self.body_in]
            slots_out = [self.mem(b, v) for v in self.body_out]
            for i, op in enumerate(self.q_in):
                self._bind({op.operands[0]: fin[i], op.results[0]: slots_in[i]})
                lower_quantize(self, b, op)
            b.add(func.CallOp("qcc_body", [*slots_in, *slots_out], []))
            for j, op in enumerate(self.q_out):
                self._bind({op.operands[0]: slots_out[j], op.results[0]: fout[j]})
                lower_dequantize(self, b, op)

        self._null_guard(b := B(block), block.args, body)
        return func.FuncOp("qcc_model_run", ([*ins, *outs], [i32]), Region(block))

    def _run_q_func(self) -> func.FuncOp:
        ins = [self.tensor(v).mtype for v in self.body_in]
        outs = [self.tensor(v).mtype for v in self.body_out]
        block = Block(arg_types=[*ins, *outs])
        self._null_guard(B(block), block.args, lambda b: b.add(func.CallOp("qcc_body", list(block.args), [])))
        return func.FuncOp("qcc_model_run_q", ([*ins, *outs], [i32]), Region(block))

    # ---- shared pieces of kernels
    def unpack(self, b: B, t: TensorInfo, mem, idx):
        """A packed 2/4-bit code as i32: field (i % per) of byte i / per, sign-extended by
        shifting it to the top of the word and back (two's complement within the field)."""
        bits = t.qp.bits
        per = 8 // bits
        i32i = b.add(arith.IndexCastOp(idx, i32))
        byte = b.add(arith.ExtUIOp(b.load(mem, b.add(arith.DivUIOp(idx, b.i(per)))), i32))
        sh = b.muli(b.add(arith.RemUIOp(i32i, b.c(per, i32))), b.c(bits, i32))
        top = b.add(arith.ShLIOp(byte, b.subi(b.c(32 - bits, i32), sh)))
        return b.shr(top, b.c(32 - bits, i32))

    def read_int(self, b: B, v: SSAValue, mem, idx, ty=i64):
        """Element idx of an integer tensor, widened to `ty` (unsigned codes zero-extended)."""
        t = self.tensor(v)
        if t.packed is not None:
            return b.sext(self.unpack(b, t, mem, idx), ty)
        raw = b.load(mem, idx)
        if t.qp is not None and not t.qp.signed and raw.type != ty:
            return b.add(arith.ExtUIOp(raw, ty))
        return b.sext(raw, ty)


LOWERINGS: dict = {}


def _lowers(*keys):
    def deco(fn):
        for k in keys:
            LOWERINGS[k] = fn
        return fn
    return deco


def _clamp_bounds(op) -> tuple[int, int]:
    qp = q.qparams_of(op.results[0].type)
    return op.attr("act_min", qp.qmin), op.attr("act_max", qp.qmax)


# ------------------------------------------------------------------ edges


@_lowers(q.QuantizeOp)
def lower_quantize(lw: Lowering, b: B, op) -> None:
    """clamp(round_half_away(x / S) + Z), x / S in double; NaN -> qmin (the C prelude's rule)."""
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    qp = y.qp
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])
    scales = lw.global_const_f64(qp.scale) if qp.axis is not None else None
    zps = lw.global_const(qp.zero_point, np.dtype(np.int64), "z") if qp.axis is not None else None

    def body(bb: B, ivs):
        idx = bb.lin(list(zip(ivs, _strides(y.shape))))
        if qp.axis is None:
            s, z = bb.f(qp.scale[0]), bb.c(qp.zero_point[0])
        else:
            s = bb.load(lw.get_global(bb, scales), ivs[qp.axis])
            z = bb.load(lw.get_global(bb, zps), ivs[qp.axis])
        v = bb.add(arith.DivfOp(bb.add(arith.ExtFOp(bb.load(xm, idx), F64)), s))
        neg = bb.add(arith.CmpfOp(v, bb.f(0.0), "olt"))
        a = bb.add(arith.AddfOp(bb.add(arith.SelectOp(neg, bb.add(arith.NegfOp(v)), v)), bb.f(0.5)))
        r = bb.smin(bb.add(arith.FPToSIOp(a, i64)), bb.c(1 << 40))  # saturating: a is >= 0.5 or NaN
        r = bb.sel(neg, bb.subi(bb.c(0), r), r)
        out = bb.smin(bb.smax(bb.addi(r, z), bb.c(qp.qmin)), bb.c(qp.qmax))
        nan = bb.add(arith.CmpfOp(v, v, "uno"))
        out = bb.sel(nan, bb.c(qp.qmin), out)
        bb.store(bb.trunc(out, y.elem), ym, idx)

    b.loops(y.shape, body)


@_lowers(q.DequantizeOp)
def lower_dequantize(lw: Lowering, b: B, op) -> None:
    """float32((q - Z) * S), the product in double."""
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    qp = x.qp
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])
    scales = lw.global_const_f64(qp.scale) if qp.axis is not None else None
    zps = lw.global_const(qp.zero_point, np.dtype(np.int64), "z") if qp.axis is not None else None

    def body(bb: B, ivs):
        idx = bb.lin(list(zip(ivs, _strides(x.shape))))
        if qp.axis is None:
            s, z = bb.f(qp.scale[0]), bb.c(qp.zero_point[0])
        else:
            s = bb.load(lw.get_global(bb, scales), ivs[qp.axis])
            z = bb.load(lw.get_global(bb, zps), ivs[qp.axis])
        d = bb.subi(lw.read_int(bb, op.operands[0], xm, idx), z)
        p = bb.add(arith.MulfOp(bb.add(arith.SIToFPOp(d, F64)), s))
        bb.store(bb.add(arith.TruncFOp(p, F32)), ym, idx)

    b.loops(x.shape, body)


def _elementwise(lw: Lowering, b: B, op, fn: Callable) -> None:
    y = lw.tensor(op.results[0])
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])
    b.loop(y.size, lambda bb, i: bb.store(fn(bb, lw.read_int(bb, op.operands[0], xm, i)), ym, i))


@_lowers(q.RequantizeOp)
def _requantize(lw: Lowering, b: B, op) -> None:
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    rq = Requant(*nx.quantize_multiplier(x.qp.scale[0] / y.qp.scale[0]), 32, lw)
    zx = x.qp.zero_point[0]
    _elementwise(lw, b, op, lambda bb, v: finish(bb, rq.apply(bb, bb.subi(v, bb.c(zx)), rq.at(bb, None)),
                                                 y.qp.zero_point[0], y.qp.qmin, y.qp.qmax, y.elem))


@_lowers(q.ClampOp)
def _clamp(lw: Lowering, b: B, op) -> None:
    y = lw.tensor(op.results[0])
    lo, hi = _clamp_bounds(op)
    _elementwise(lw, b, op, lambda bb, v: finish(bb, v, 0, lo, hi, y.elem))


@_lowers(q.LookupOp)
def _lookup(lw: Lowering, b: B, op) -> None:
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    sym = lw.global_const(op.attributes["table"].array, y.dtype, "lut")
    qmin = x.qp.qmin
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])

    def body(bb: B, i):
        k = bb.to_index(bb.subi(lw.read_int(bb, op.operands[0], xm, i), bb.c(qmin)))
        bb.store(bb.load(lw.get_global(bb, sym), k), ym, i)

    b.loop(y.size, body)


# ------------------------------------------------------------ dot products


def _dot_setup(lw: Lowering, op, axis_len: int, reals) -> tuple[Requant, int]:
    m0, sh = nx.quantize_multipliers(np.broadcast_to(np.asarray(reals, np.float64).reshape(-1), (axis_len,)))
    return Requant(m0, sh, op.attr("acc_bits"), lw), op.attr("acc_bits")


def _bias_table(lw: Lowering, op, M: int, wv: np.ndarray, zx: int, fold: bool) -> tuple[np.ndarray, str | None]:
    bias = lw.tensor(op.operands[2]).const.astype(np.int64).reshape(-1) if len(op.operands) > 2 \
        else np.zeros(1, np.int64)
    bias = np.broadcast_to(bias, (M,)).copy()
    if fold:
        bias = bias - zx * wv.reshape(M, -1).sum(axis=1)
    if np.all(bias == bias[0]):
        return bias, None
    return bias, lw.global_const(bias, np.dtype(np.int64), "b")


@_lowers(q.ConvOp)
def _conv(lw: Lowering, b: B, op) -> None:
    x, w, y = (lw.tensor(v) for v in (op.operands[0], op.operands[1], op.results[0]))
    if w.const is None or (len(op.operands) > 2 and lw.tensor(op.operands[2]).const is None):
        raise QccError(f"{_where(op)}: weights and bias must be quant.constant for the loop-level stage")
    if len(x.shape) not in (3, 4):
        raise QccError(f"{_where(op)}: 1-D and 2-D convolutions only, got rank {len(x.shape)}")
    attrs = {k: op.attr(k) for k in ("strides", "pads", "dilations", "group", "auto_pad", "kernel_shape")
             if k in op.attributes}
    strd, dils, pb, pe = _conv_geometry(attrs, np.broadcast_to(np.int8(0), x.shape),
                                        np.broadcast_to(np.int8(0), w.shape))
    hw = (lambda v, f: (f, v[0]) if len(v) == 1 else (v[0], v[1]))
    N, C = x.shape[:2]
    H, W = hw(x.shape[2:], 1)
    M = w.shape[0]
    OH, OW = hw(y.shape[2:], 1)
    KH, KW = hw(w.shape[2:], 1)
    SH, SW = hw(strd, 1)
    DH, DW = hw(dils, 1)
    PT, PL = hw(pb, 0)
    G = int(op.attr("group", 1))
    Cg, Mg = C // G, M // G
    no_pad = not any(pb) and not any(pe)
    zx, zy = x.qp.zero_point[0], y.qp.zero_point[0]
    lo, hi = _clamp_bounds(op)
    rq, acc_bits = _dot_setup(lw, op, M, x.qp.scale[0] * np.asarray(w.qp.scale) / y.qp.scale[0])
    acc_t = i32 if acc_bits == 32 else i64
    wv = w.const.astype(np.int64)
    # interior outputs (every tap inside the input) start from bias - zx * sum(w) and add x * w;
    # there each partial sum is the accumulator of some valid input (code 0 at the taps not yet
    # summed), so the accumulator proof bounds it too. Border outputs add (x - zx) * w.
    folded, fsym = _bias_table(lw, op, M, wv, zx, True)
    bias, bsym = _bias_table(lw, op, M, wv, zx, False)
    oh_lo = min(-(-PT // SH), OH)
    oh_hi = max(oh_lo, min(OH, (H - 1 - (KH - 1) * DH + PT) // SH + 1))
    ow_lo = min(-(-PL // SW), OW)
    ow_hi = max(ow_lo, min(OW, (W - 1 - (KW - 1) * DW + PL) // SW + 1))
    xm, wm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.operands[1]), lw.mem(b, op.results[0])
    if lw.dsp and acc_t == i32 and G == 1 and KH == KW == 1 and SH == SW == 1 and no_pad and C >= 4 \
            and H * W >= 4 and x.packed is None and w.packed is None and x.dtype in (np.int8, np.uint8) \
            and w.dtype == np.int8 and OH * OW == H * W:
        _pointwise_dsp(lw, b, op, (N, C, H * W, M), (xm, wm, ym), rq, folded, fsym, (zy, lo, hi), x.qp.signed)
        return

    def per_channel(bb: B, n, g, mg):
        m = bb.addi(bb.muli(g, bb.i(Mg)), mg)
        p = rq.at(bb, m)

        def init(tab, sym):
            return bb.c(int(tab[0]), acc_t) if sym is None else bb.trunc(bb.load(lw.get_global(bb, sym), m), acc_t)

        b_in, b_border = init(folded, fsym), init(bias, bsym)
        xbase = bb.lin([(n, C * H * W), (g, Cg * H * W)])
        wbase = bb.muli(m, bb.i(Cg * KH * KW))
        wmem, wval = wm, op.operands[1]
        if w.packed is not None:  # unpack once per output channel, not once per output pixel
            K = Cg * KH * KW
            wmem, wval = lw.scratch(bb, op, K), None
            bb.loop(K, lambda b2, k: b2.store(b2.trunc(lw.unpack(b2, w, wm, b2.addi(wbase, k)), i8), wmem, k))
            wbase = bb.i(0)

        def wread(b3: B, wi):
            return lw.read_int(b3, wval, wmem, wi, acc_t) if wval is not None else b3.sext(b3.load(wmem, wi), acc_t)
        ybase = bb.lin([(n, M * OH * OW), (m, OH * OW)])

        def pixels(b2: B, oh, ow, interior: bool, U: int = 1):
            """Outputs (oh, ow .. ow + U - 1): U accumulators share each weight load
            (register blocking along the row; interior only)."""
            ih0 = b2.lin([(oh, SH)], -PT)
            iw0 = b2.lin([(ow, SW)], -PL)
            # on the border with unit dilation the taps inside the input are a rectangle
            # [kh0, kh1) x [kw0, kw1): loop over it only; with dilation test every tap
            bounded = not interior and DH == DW == 1
            kb = (0, KH, 0, KW)
            if bounded:
                kb = (b2.smax(b2.subi(b2.i(0), ih0), b2.i(0)), b2.smin(b2.subi(b2.i(H), ih0), b2.i(KH)),
                      b2.smax(b2.subi(b2.i(0), iw0), b2.i(0)), b2.smin(b2.subi(b2.i(W), iw0), b2.i(KW)))

            def tap(b3: B, cg, kh, kw, *accs):
                ih = b3.addi(ih0, b3.muli(kh, b3.i(DH)))
                iw = b3.addi(iw0, b3.muli(kw, b3.i(DW)))
                xi = b3.addi(b3.addi(xbase, b3.muli(cg, b3.i(H * W))), b3.addi(b3.muli(ih, b3.i(W)), iw))
                wi = b3.addi(wbase, b3.lin([(cg, KH * KW), (kh, KW), (kw, 1)]))
                wq = wread(b3, wi)
                if interior:
                    return [b3.addi(a, b3.muli(lw.read_int(b3, op.operands[0], xm,
                                                           b3.addi(xi, b3.i(u * SW)) if u else xi, acc_t), wq))
                            for u, a in enumerate(accs)]
                (acc,) = accs
                if bounded:
                    xv = lw.read_int(b3, op.operands[0], xm, xi, acc_t)
                    return [b3.addi(acc, b3.muli(b3.subi(xv, b3.c(zx, acc_t)), wq))]
                ok = b3.add(arith.AndIOp(
                    b3.add(arith.AndIOp(b3.cmp("sge", ih, b3.i(0)), b3.cmp("slt", ih, b3.i(H)))),
                    b3.add(arith.AndIOp(b3.cmp("sge", iw, b3.i(0)), b3.cmp("slt", iw, b3.i(W))))))
                xv = lw.read_int(b3, op.operands[0], xm, b3.sel(ok, xi, b3.i(0)), acc_t)
                prod = b3.muli(b3.subi(xv, b3.c(zx, acc_t)), wq)
                return [b3.addi(acc, b3.sel(ok, prod, b3.c(0, acc_t)))]

            accs = b2.loop(Cg, lambda b3, cg, *a0: b3.loop(
                kb[1], lambda b4, kh, *a1: b4.loop(kb[3], lambda b5, kw, *a2: tap(b5, cg, kh, kw, *a2), list(a1),
                                                   lo=kb[2]),
                list(a0), lo=kb[0]), [b_in if interior else b_border] * U)
            for u, acc in enumerate(accs):
                b2.store(requant_out(b2, rq, acc, p, zy, lo, hi, y.elem), ym,
                         b2.addi(ybase, b2.lin([(oh, OW), (ow, 1)], u)))

        # rows and columns split into border / interior / border ranges; interior rows in blocks of U
        for r0, r1, rin in ((0, oh_lo, False), (oh_lo, oh_hi, True), (oh_hi, OH, False)):
            if r1 <= r0:
                continue
            for c0, c1, cin in ((0, ow_lo, False), (ow_lo, ow_hi, True), (ow_hi, OW, False)):
                if c1 <= c0:
                    continue
                inner = rin and cin
                blk = 2 if Cg == 1 and G > 1 else BLOCK  # depthwise: fewer accumulators leave registers for taps
                U = blk if inner and c1 - c0 >= blk else 1
                full = c0 + (c1 - c0) // U * U

                def row(b2: B, oh, c0=c0, c1=c1, inner=inner, U=U, full=full):
                    b2.loop(full, lambda b3, ow: pixels(b3, oh, ow, inner, U), lo=c0, step=U)
                    if full < c1:
                        b2.loop(c1, lambda b3, ow: pixels(b3, oh, ow, inner), lo=full)

                bb.loop(r1, row, lo=r0)

    b.loops([N, G, Mg], lambda bb, ivs: per_channel(bb, *ivs))


def _word(b: B, mem, off):
    """The 32-bit word at byte offset `off` of a byte buffer (any alignment: Cortex-M4/M7 load it)."""
    v = b.add(memref.ViewOp(mem, off, [], MemRefType(i32, [1])))
    ld = memref.LoadOp.get(v, [b.i(0)])
    ld.attributes["qcc.align"] = IntegerAttr(1, i64)
    return b.add(ld)


def _rot8(b: B, v):
    return b.add(arith.OrIOp(b.add(arith.ShRUIOp(v, b.c(8, i32))), b.add(arith.ShLIOp(v, b.c(24, i32)))))


def _lo_lo(b: B, a, c):  # (a.lo, c.lo): PKHBT
    return b.add(arith.OrIOp(b.add(arith.AndIOp(a, b.c(0xFFFF, i32))), b.add(arith.ShLIOp(c, b.c(16, i32)))))


def _hi_hi(b: B, a, c):  # (a.hi, c.hi): PKHTB
    return b.add(arith.OrIOp(b.add(arith.AndIOp(c, b.c(-65536, i32))), b.add(arith.ShRUIOp(a, b.c(16, i32)))))


def _quad4(b: B, xm, x_offs, x_signed: bool, wm, w_offs, accs) -> list:
    """4 input channels x 4 consecutive pixels x len(w_offs) output channels with
    SMLAD. x_offs: byte offsets of the 4 pixels of each of the 4 channels; w_offs:
    per output channel, the byte offset of its 4 weights (channels c..c+3
    contiguous). accs in [output channel * 4 + pixel] order. SXTB16 (UXTB16 for
    uint8 inputs) of a word and of the word rotated by 8 gives pixels (0, 2) and
    (1, 3) of a channel; PKHBT/PKHTB pair channels (c, c+2) and (c+1, c+3) per
    pixel, matching the weights' SXTB16 halves."""
    ext = "llvm.arm.sxtb16" if x_signed else "llvm.arm.uxtb16"
    wps = []
    for wo in w_offs:
        ww = _word(b, wm, wo)
        wps.append([_intrin(b, "llvm.arm.sxtb16", ww), _intrin(b, "llvm.arm.sxtb16", _rot8(b, ww))])
    res = list(accs)
    for h in (0, 1):  # channels (h, h + 2): emitted one pair at a time, fewer values live at once
        xw = [_word(b, xm, x_offs[h]), _word(b, xm, x_offs[h + 2])]
        ev = [_intrin(b, ext, v) for v in xw]
        od = [_intrin(b, ext, _rot8(b, v)) for v in xw]
        X = [_lo_lo(b, ev[0], ev[1]), _lo_lo(b, od[0], od[1]), _hi_hi(b, ev[0], ev[1]), _hi_hi(b, od[0], od[1])]
        for k, wp in enumerate(wps):
            for px in range(4):
                res[k * 4 + px] = _intrin(b, "llvm.arm.smlad", X[px], wp[h], res[k * 4 + px])
    return res


def _pointwise_dsp(lw: Lowering, b: B, op, dims, mems, rq: Requant, folded, fsym, out, x_signed: bool) -> None:
    """1x1 convolution (stride 1, no padding, one group) with the Arm DSP extension:
    y[n, m, p] = b'[m] + sum_c x[n, c, p] * w[m, c] in blocks of PW_BLOCK output
    channels x 4 pixels. Per 4 input channels: one 32-bit load of 4 pixels of
    each channel, SXTB16 (pixels 0, 2 / after a rotation by 8, pixels 1, 3) and
    PKHBT/PKHTB (and/or/shift patterns ARM selects) give int16 pairs of
    channels (c, c+2) and (c+1, c+3) per pixel; per output channel one 32-bit
    load of the 4 weights w[m, c..c+3] split the same way, and 8 SMLAD. Tails
    (channels beyond a multiple of 4, pixels beyond a multiple of 4, output
    channels beyond a block) take the scalar products; all accumulate in
    int32 like the generic kernel (wrapping adds, the same values)."""
    N, C, P, M = dims
    xm, wm, ym = mems
    zy, lo, hi = out
    C4, P4 = C // 4 * 4, P // 4 * 4
    y = lw.tensor(op.results[0])

    def init(bb: B, m):
        return bb.c(int(folded[0]), i32) if fsym is None else bb.trunc(bb.load(lw.get_global(bb, fsym), m), i32)

    def store(bb: B, n, m, p, acc):
        bb.store(requant_out(bb, rq, acc, rq.at(bb, m), zy, lo, hi, y.elem), ym, bb.lin([(n, M * P), (m, P), (p, 1)]))

    def scalar_mac(bb: B, n, c, ms, p, acc):
        xv = lw.read_int(bb, op.operands[0], xm, bb.lin([(n, C * P), (c, P), (p, 1)]), i32)
        return [bb.addi(a, bb.muli(xv, lw.read_int(bb, op.operands[1], wm, bb.lin([(m, C), (c, 1)]), i32)))
                for a, m in zip(acc, ms)]

    def block(bb: B, n, m0, MB: int):
        ms = [m0 if k == 0 else bb.addi(m0, bb.i(k)) for k in range(MB)]
        inits = [init(bb, m) for m in ms]

        def pixels4(b2: B, p0):
            def quad(b3: B, j, *accs):
                c0 = b3.muli(j, b3.i(4))
                xo = b3.lin([(n, C * P), (c0, P), (p0, 1)])
                return _quad4(b3, xm, [xo if cc == 0 else b3.addi(xo, b3.i(cc * P)) for cc in range(4)], x_signed,
                              wm, [b3.addi(b3.muli(m, b3.i(C)), c0) for m in ms], accs)

            accs = b2.loop(C4 // 4, quad, [v for v in inits for _ in range(4)])
            if C4 < C:
                def tail_c(b3: B, c, *a):
                    return [v for px in range(4) for v in scalar_mac(
                        b3, n, c, ms, b3.addi(p0, b3.i(px)) if px else p0, a[px::4])]
                accs = b2.loop(C, lambda b3, c, *a: _reorder(tail_c(b3, c, *a), MB), accs, lo=C4)
            for k, m in enumerate(ms):
                for px in range(4):
                    store(b2, n, m, b2.addi(p0, b2.i(px)) if px else p0, accs[k * 4 + px])

        bb.loop(P4, pixels4, step=4)
        if P4 < P:
            def one(b2: B, p):
                accs = b2.loop(C, lambda b3, c, *a: scalar_mac(b3, n, c, ms, p, a), inits)
                for m, a in zip(ms, accs):
                    store(b2, n, m, p, a)
            bb.loop(P, one, lo=P4)

    def per_n(bb: B, n):
        MB = PW_BLOCK if M >= PW_BLOCK else 1
        full = M // MB * MB
        bb.loop(full, lambda b2, m0: block(b2, n, m0, MB), step=MB)
        if full < M:
            bb.loop(M, lambda b2, m0: block(b2, n, m0, 1), lo=full)

    b.loop(N, per_n)


def _reorder(vals: list, MB: int) -> list:
    """[px-major over the MB accumulators] -> [k * 4 + px] order."""
    return [vals[px * MB + k] for k in range(MB) for px in range(4)]


@_lowers(q.FullyConnectedOp)
def _fully_connected(lw: Lowering, b: B, op) -> None:
    x, w, y = (lw.tensor(v) for v in (op.operands[0], op.operands[1], op.results[0]))
    if w.const is None or (len(op.operands) > 2 and lw.tensor(op.operands[2]).const is None):
        raise QccError(f"{_where(op)}: weights and bias must be quant.constant for the loop-level stage")
    Nn, K = w.shape
    R = x.size // max(K, 1)
    zx, zy = x.qp.zero_point[0], y.qp.zero_point[0]
    lo, hi = _clamp_bounds(op)
    rq, acc_bits = _dot_setup(lw, op, Nn, x.qp.scale[0] * np.asarray(w.qp.scale) / y.qp.scale[0])
    acc_t = i32 if acc_bits == 32 else i64
    bias, bsym = _bias_table(lw, op, Nn, w.const.astype(np.int64), zx, True)
    xm, wm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.operands[1]), lw.mem(b, op.results[0])
    dsp = lw.dsp and acc_t == i32 and K >= 4 and x.packed is None and w.packed is None \
        and x.dtype in (np.int8, np.uint8) and w.dtype == np.int8

    def per_out(bb: B, n0, U: int):
        """Outputs n0 .. n0 + U - 1 of every row: U accumulators share each input load."""
        ns = [n0 if u == 0 else bb.addi(n0, bb.i(u)) for u in range(U)]
        ps = [rq.at(bb, n) for n in ns]
        b0 = [bb.c(int(bias[0]), acc_t) if bsym is None else bb.trunc(bb.load(lw.get_global(bb, bsym), n), acc_t)
              for n in ns]
        wbase = [bb.muli(n, bb.i(K)) for n in ns]

        def row(b2: B, r):
            xbase = b2.muli(r, b2.i(K))

            def mac(b3: B, k, *accs):
                xv = lw.read_int(b3, op.operands[0], xm, b3.addi(xbase, k), acc_t)
                return [b3.addi(a, b3.muli(xv, lw.read_int(b3, op.operands[1], wm, b3.addi(wb, k), acc_t)))
                        for a, wb in zip(accs, wbase)]

            if dsp:
                accs = _dsp_dot(lw, b2, xm, [xbase], wm, wbase, K, x.qp.signed, b0)
                accs = b2.loop(K, mac, accs, lo=K // 4 * 4) if K % 4 else accs
            else:
                accs = b2.loop(K, mac, b0)
            for n, p, acc in zip(ns, ps, accs):
                b2.store(requant_out(b2, rq, acc, p, zy, lo, hi, y.elem), ym, b2.addi(b2.muli(r, b2.i(Nn)), n))

        bb.loop(R, lambda b2, r: row(b2, r))

    blk = DSP_BLOCK if dsp else BLOCK
    U = blk if Nn >= blk else 1
    full = Nn // U * U
    b.loop(full, lambda bb, n: per_out(bb, n, U), step=U)
    if full < Nn:
        b.loop(Nn, lambda bb, n: per_out(bb, n, 1), lo=full)


def _intrin(b: B, name: str, *args):
    return b.add(xllvm.CallIntrinsicOp(name, list(args), [i32]))


def _halves(b: B, word, signed: bool):
    """(bytes 0 and 2, bytes 1 and 3) of a word as two int16 pairs: SXTB16 / UXTB16
    of the word and of the word rotated right by 8 (ARM folds the rotation)."""
    ext = "llvm.arm.sxtb16" if signed else "llvm.arm.uxtb16"
    rot = b.add(arith.OrIOp(b.add(arith.ShRUIOp(word, b.c(8, i32))), b.add(arith.ShLIOp(word, b.c(24, i32)))))
    return _intrin(b, ext, word), _intrin(b, ext, rot)


def _dsp_dot(lw: Lowering, b: B, xm, xbases, wm, wbases, K: int, x_signed: bool, accs):
    """Cortex-M DSP dot products over k in [0, K // 4 * 4): one 32-bit load of four
    int8 (or uint8) inputs, split into int16 pairs once and shared by the
    accumulators; per accumulator one 32-bit load of four int8 weights and two
    SMLAD (two 16x16 products added to the 32-bit accumulator, wrapping like
    the int32 adds it replaces). xbases/wbases: byte offsets of the rows, one x
    row per accumulator (len 1: shared) and one weight row per accumulator.
    The word loads may be unaligned (caller's buffers), which Cortex-M4/M7 allow."""
    n4 = K // 4

    def words(bb: B, mem, base):
        return bb.add(memref.ViewOp(mem, base, [], MemRefType(i32, [max(n4, 1)])))

    def wload(bb: B, view, j):
        ld = memref.LoadOp.get(view, [j])
        ld.attributes["qcc.align"] = IntegerAttr(1, i64)
        return bb.add(ld)

    xv = [words(b, xm, xb) for xb in xbases]
    wv = [words(b, wm, wb) for wb in wbases]

    def body(bb: B, j, *a):
        xs = [_halves(bb, wload(bb, v, j), x_signed) for v in xv]
        out = []
        for u, (acc, w) in enumerate(zip(a, wv)):
            xa, xb = xs[u if len(xs) > 1 else 0]
            wa, wb = _halves(bb, wload(bb, w, j), True)
            out.append(_intrin(bb, "llvm.arm.smlad", xb, wb, _intrin(bb, "llvm.arm.smlad", xa, wa, acc)))
        return out

    return b.loop(n4, body, list(accs))


# ------------------------------------------------------------ elementwise


def _broadcast(lw: Lowering, b: B, op, body: Callable) -> None:
    """body(bb, a, b) -> stored value, over y's shape with numpy broadcasting."""
    y = lw.tensor(op.results[0])
    ins = [lw.tensor(v) for v in op.operands]
    mems = [lw.mem(b, v) for v in op.operands]
    ym = lw.mem(b, op.results[0])
    r = len(y.shape)
    ys = _strides(y.shape)
    in_strides = []
    for t in ins:
        shape = (1,) * (r - len(t.shape)) + tuple(t.shape)
        st = _strides(shape)
        in_strides.append([0 if shape[d] == 1 else st[d] for d in range(r)])

    def inner(bb: B, ivs):
        vals = [lw.read_int(bb, v, m, bb.lin(list(zip(ivs, st)))) for v, m, st in zip(op.operands, mems, in_strides)]
        bb.store(body(bb, *vals), ym, bb.lin(list(zip(ivs, ys))))

    b.loops(y.shape, inner)


@_lowers(q.AddOp)
def _add(lw: Lowering, b: B, op) -> None:
    a, bb_, y = (lw.tensor(v) for v in (*op.operands, op.results[0]))
    p = nx.add_params(a.qp, bb_.qp, y.qp)
    ra, rb, ry = (Requant(p[m], p[s], 32, lw) for m, s in (("m_a", "s_a"), ("m_b", "s_b"), ("m_y", "s_y")))
    lo, hi = _clamp_bounds(op)
    lsh = 1 << p["left_shift"]

    def body(b2: B, va, vb):
        xa = ra.apply(b2, b2.muli(b2.subi(va, b2.c(a.qp.zero_point[0])), b2.c(lsh)), ra.at(b2, None))
        xb = rb.apply(b2, b2.muli(b2.subi(vb, b2.c(bb_.qp.zero_point[0])), b2.c(lsh)), rb.at(b2, None))
        return finish(b2, ry.apply(b2, b2.addi(xa, xb), ry.at(b2, None)), y.qp.zero_point[0], lo, hi, y.elem)

    _broadcast(lw, b, op, body)


@_lowers(q.MulOp, q.ChannelScaleOp)  # channel_scale: quant.mul's formula, [N, C, 1, ...] broadcast
def _mul(lw: Lowering, b: B, op) -> None:
    a, bb_, y = (lw.tensor(v) for v in (*op.operands, op.results[0]))
    rq = Requant(*nx.quantize_multiplier(a.qp.scale[0] * bb_.qp.scale[0] / y.qp.scale[0]), 32, lw)
    lo, hi = _clamp_bounds(op)

    def body(b2: B, va, vb):
        prod = b2.muli(b2.subi(va, b2.c(a.qp.zero_point[0])), b2.subi(vb, b2.c(bb_.qp.zero_point[0])))
        return finish(b2, rq.apply(b2, prod, rq.at(b2, None)), y.qp.zero_point[0], lo, hi, y.elem)

    _broadcast(lw, b, op, body)


@_lowers(q.SoftmaxOp)
def _int_softmax(lw: Lowering, b: B, op) -> None:
    """docs/numerics.md's integer softmax: E = table[max - x], one reciprocal
    floor((2^46 + sum / 2) / sum) per row, y = clamp(Z + (E * recip + 2^(45-B)) >> (46-B))."""
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    sym = lw.global_const(op.attributes["table"].array, np.dtype(np.int32), "exp")
    axis = int(op.attr("axis"))
    outer, n, inner = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])
    k = q.SOFTMAX_RECIPROCAL_BITS
    shift = k - y.qp.bits
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])

    def row(bb: B, ivs):
        o, i = ivs
        base = bb.lin([(o, n * inner), (i, 1)])

        def at(b2: B, j):
            return b2.addi(base, b2.muli(j, b2.i(inner)))

        def e_of(b2: B, j, mx):
            d = b2.to_index(b2.subi(mx, lw.read_int(b2, op.operands[0], xm, at(b2, j))))
            return b2.sext(b2.load(lw.get_global(b2, sym), d), i64)

        mx = bb.loop(n, lambda b2, j, m: [b2.smax(m, lw.read_int(b2, op.operands[0], xm, at(b2, j)))],
                     [bb.c(nx.INT64_MIN)])[0]
        total = bb.loop(n, lambda b2, j, t: [b2.addi(t, e_of(b2, j, mx))], [bb.c(0)])[0]
        recip = bb.add(arith.DivSIOp(bb.addi(bb.c(1 << k), bb.add(arith.DivSIOp(total, bb.c(2)))), total))

        def out(b2: B, j):
            v = b2.shr(b2.addi(b2.muli(e_of(b2, j, mx), recip), b2.c(1 << (shift - 1))), b2.c(shift))
            b2.store(finish(b2, v, y.qp.zero_point[0], y.qp.qmin, y.qp.qmax, y.elem), ym, at(b2, j))

        bb.loop(n, out)

    b.loops([outer, inner], row)


# ------------------------------------------------------------------ pooling


def _window(lw: Lowering, b: B, op, ks, strd, dils, pb, init: Callable, tap: Callable, done: Callable,
            need_tap: bool = True) -> None:
    """For every output position: carried = init(); over the window's valid taps
    carried = tap(bb, v, carried); store done(bb, carried). With `need_tap`, a window
    lying entirely in the padding is refused (no maximum, a count of zero)."""
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    if need_tap:
        for d in range(len(ks)):
            for o in range(y.shape[2 + d]):
                if not any(0 <= o * strd[d] - pb[d] + k * dils[d] < x.shape[2 + d] for k in range(ks[d])):
                    raise QccError(f"{_where(op)}: a pooling window lies entirely in the padding")
    hw = (lambda v, f: (f, v[0]) if len(v) == 1 else (v[0], v[1]))
    H, W = hw(x.shape[2:], 1)
    OH, OW = hw(y.shape[2:], 1)
    KH, KW = hw(list(ks), 1)
    SH, SW = hw(list(strd), 1)
    DH, DW = hw(list(dils), 1)
    PT, PL = hw(list(pb), 0)
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])
    NC = x.shape[0] * x.shape[1]

    def pos(bb: B, ivs):
        nc, oh, ow = ivs
        ih0, iw0 = bb.lin([(oh, SH)], -PT), bb.lin([(ow, SW)], -PL)
        xbase = bb.muli(nc, bb.i(H * W))

        def t(b3: B, kh, kw, *carried):
            ih = b3.addi(ih0, b3.muli(kh, b3.i(DH)))
            iw = b3.addi(iw0, b3.muli(kw, b3.i(DW)))
            ok = b3.add(arith.AndIOp(
                b3.add(arith.AndIOp(b3.cmp("sge", ih, b3.i(0)), b3.cmp("slt", ih, b3.i(H)))),
                b3.add(arith.AndIOp(b3.cmp("sge", iw, b3.i(0)), b3.cmp("slt", iw, b3.i(W))))))
            xi = b3.sel(ok, b3.addi(xbase, b3.addi(b3.muli(ih, b3.i(W)), iw)), b3.i(0))
            v = lw.read_int(b3, op.operands[0], xm, xi)
            new = tap(b3, v, *carried)
            return [b3.sel(ok, n_, c_) for n_, c_ in zip(new, carried)]

        res = bb.loop(KH, lambda b3, kh, *c0: b3.loop(KW, lambda b4, kw, *c1: t(b4, kh, kw, *c1), list(c0)),
                      init(bb))
        bb.store(done(bb, *res), ym, bb.lin([(nc, OH * OW), (oh, OW), (ow, 1)]))

    b.loops([NC, OH, OW], pos)


@_lowers(q.MaxPoolOp)
def _max_pool(lw: Lowering, b: B, op) -> None:
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    attrs = {k: op.attr(k) for k in ("kernel_shape", "strides", "pads", "dilations", "ceil_mode", "auto_pad")
             if k in op.attributes}
    ks, strd, dils, out, pb, _ = _pool_geometry(attrs, x.shape[2:])
    if tuple(out) != tuple(y.shape[2:]):
        raise QccError(f"{_where(op)}: result shape {list(y.shape)} disagrees with the pooling geometry")
    _window(lw, b, op, ks, strd, dils, pb, lambda bb: [bb.c(nx.INT64_MIN)],
            lambda bb, v, best: [bb.smax(v, best)], lambda bb, best: bb.trunc(best, y.elem))


@_lowers(q.AvgPoolOp)
def _avg_pool(lw: Lowering, b: B, op) -> None:
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    ks = list(op.attr("kernel_shape"))
    attrs = {k: op.attr(k) for k in ("strides", "pads", "auto_pad") if k in op.attributes}
    attrs["kernel_shape"] = ks
    strd, dils, pb, pe = _conv_geometry(attrs, np.broadcast_to(np.int8(0), x.shape),
                                        np.broadcast_to(np.int8(0), (x.shape[1], 1, *ks)))
    include_pad = bool(op.attr("count_include_pad", 0))
    zp = x.qp.zero_point[0]

    def done(bb: B, s, cnt):
        if include_pad:
            cnt = bb.c(math.prod(ks))
        half = bb.add(arith.DivSIOp(cnt, bb.c(2)))
        pos = bb.add(arith.DivSIOp(bb.addi(s, half), cnt))
        neg = bb.subi(bb.c(0), bb.add(arith.DivSIOp(bb.addi(bb.subi(bb.c(0), s), half), cnt)))
        avg = bb.sel(bb.cmp("sge", s, bb.c(0)), pos, neg)
        return finish(bb, avg, zp, y.qp.qmin, y.qp.qmax, y.elem)

    _window(lw, b, op, ks, strd, dils, pb, lambda bb: [bb.c(0), bb.c(0)],
            lambda bb, v, s, cnt: [bb.addi(s, bb.subi(v, bb.c(zp))), bb.addi(cnt, bb.c(1))], done,
            need_tap=not include_pad)


@_lowers(q.GlobalAvgPoolOp)
def _global_avg_pool(lw: Lowering, b: B, op) -> None:
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    hw = math.prod(x.shape[2:])
    rq = Requant(*nx.quantize_multiplier(x.qp.scale[0] / (y.qp.scale[0] * hw)), 32, lw)
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])
    zx = x.qp.zero_point[0]

    def per(bb: B, nc):
        base = bb.muli(nc, bb.i(hw))
        s = bb.loop(hw, lambda b2, j, s: [b2.addi(s, lw.read_int(b2, op.operands[0], xm, b2.addi(base, j)))],
                    [bb.c(0)])[0]
        s = bb.subi(s, bb.c(zx * hw))
        bb.store(finish(bb, rq.apply(bb, s, rq.at(bb, None)), y.qp.zero_point[0], y.qp.qmin, y.qp.qmax, y.elem),
                 ym, nc)

    b.loop(x.shape[0] * x.shape[1], per)


# ------------------------------------------------------------- data movement


@_lowers(q.ConcatOp)
def _concat(lw: Lowering, b: B, op) -> None:
    y = lw.tensor(op.results[0])
    axis = int(op.attr("axis", 0)) % max(len(y.shape), 1)
    outer = math.prod(y.shape[:axis])
    inner = math.prod(y.shape[axis + 1:])
    ychunk = y.shape[axis] * inner
    ym = lw.mem(b, op.results[0])
    off = 0
    for v in op.operands:
        x = lw.tensor(v)
        xm = lw.mem(b, v)
        chunk = x.shape[axis] * inner
        same = x.qp == y.qp
        rq = None if same else Requant(*nx.quantize_multiplier(x.qp.scale[0] / y.qp.scale[0]), 32, lw)

        def move(bb: B, o, j, x=x, xm=xm, chunk=chunk, off=off, rq=rq, v=v):
            val = lw.read_int(bb, v, xm, bb.lin([(o, chunk), (j, 1)]))
            if rq is not None:
                val = rq.apply(bb, bb.subi(val, bb.c(x.qp.zero_point[0])), rq.at(bb, None))
                val = finish(bb, val, y.qp.zero_point[0], y.qp.qmin, y.qp.qmax, y.elem)
            else:
                val = bb.trunc(val, y.elem)
            bb.store(val, ym, bb.lin([(o, ychunk), (j, 1)], off))

        if chunk:
            b.loops([outer, chunk], lambda bb, ivs, move=move: move(bb, *ivs))
        off += chunk


@_lowers(q.PadOp)
def _pad(lw: Lowering, b: B, op) -> None:
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    pads = [int(p) for p in op.attr("pads")]
    value = int(op.attr("value", x.qp.zero_point[0]))
    r = len(x.shape)
    if len(pads) != 2 * r or min(pads, default=0) < 0:
        raise QccError(f"{_where(op)}: padding by non-negative amounts only, got {pads}")
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])
    b.loop(y.size, lambda bb, i: bb.store(bb.c(value, y.elem), ym, i))
    xs, ys = _strides(x.shape), _strides(y.shape)
    b.loops(x.shape, lambda bb, ivs: bb.store(
        bb.trunc(lw.read_int(bb, op.operands[0], xm, bb.lin(list(zip(ivs, xs)))), y.elem), ym,
        bb.lin(list(zip(ivs, ys)), sum(pads[d] * ys[d] for d in range(r)))))


def _gather(lw: Lowering, b: B, op, src: np.ndarray) -> None:
    """y[i] = x[SRC[i]] with an index table computed at compile time."""
    y = lw.tensor(op.results[0])
    sym = lw.global_const(src.reshape(-1), np.dtype(np.int32), "idx")
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])

    def body(bb: B, i):
        k = bb.to_index(bb.load(lw.get_global(bb, sym), i))
        bb.store(bb.trunc(lw.read_int(bb, op.operands[0], xm, k), y.elem), ym, i)

    b.loop(y.size, body)


@_lowers(q.ResizeOp)
def _resize(lw: Lowering, b: B, op) -> None:
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    attrs = {k: op.attr(k) for k in ("coordinate_transformation_mode", "nearest_mode", "mode") if k in op.attributes}
    ramp = np.arange(x.size, dtype=np.float64).reshape(x.shape)  # the interpreter's own kernel on a ramp
    src = np.rint(KERNELS["Resize"]([ramp, None, None, np.array(y.shape, np.int64)], attrs, 18)[0]).astype(np.int64)
    if src.shape != y.shape:
        raise QccError(f"{_where(op)}: resize to {list(y.shape)} gives {list(src.shape)}")
    _gather(lw, b, op, src)


@_lowers(q.TransposeOp)
def _transpose(lw: Lowering, b: B, op) -> None:
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    perm = [int(p) for p in op.attr("perm")]
    xs = _strides(x.shape)
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])
    ys = _strides(y.shape)
    b.loops(y.shape, lambda bb, ivs: bb.store(
        bb.trunc(lw.read_int(bb, op.operands[0], xm, bb.lin([(iv, xs[p]) for iv, p in zip(ivs, perm)])), y.elem),
        ym, bb.lin(list(zip(ivs, ys)))))


def _copy_window(lw: Lowering, b: B, src: SSAValue, dst_mem, dst_shape, src_offs, dst_offs) -> None:
    """dst[dst_offs + i] = src[src_offs + i] over the smaller of the two shapes' window."""
    x = lw.tensor(src)
    shape = x.shape if dst_offs is not None else dst_shape
    xs, ys = _strides(x.shape), _strides(dst_shape)
    xm = lw.mem(b, src)
    so = sum(o * st for o, st in zip(src_offs, xs)) if src_offs else 0
    do = sum(o * st for o, st in zip(dst_offs, ys)) if dst_offs else 0
    b.loops(shape, lambda bb, ivs: bb.store(
        bb.trunc(lw.read_int(bb, src, xm, bb.lin(list(zip(ivs, xs)), so)), _INT[lw.tensor(src).dtype]), dst_mem,
        bb.lin(list(zip(ivs, ys)), do)))


if hasattr(q, "SliceOp"):
    @_lowers(q.SliceOp)
    def _slice(lw: Lowering, b: B, op) -> None:
        """y = x[offsets : offsets + shape(y)]."""
        y = lw.tensor(op.results[0])
        _copy_window(lw, b, op.operands[0], lw.mem(b, op.results[0]), y.shape, list(op.attr("offsets")), None)

if hasattr(q, "InsertSliceOp"):
    @_lowers(q.InsertSliceOp)
    def _insert_slice(lw: Lowering, b: B, op) -> None:
        """y = dest (or the zero point) with y[offsets : offsets + shape(tile)] = tile."""
        y = lw.tensor(op.results[0])
        ym = lw.mem(b, op.results[0])
        if len(op.operands) == 2:
            _copy_window(lw, b, op.operands[0], ym, y.shape, None, [0] * len(y.shape))
        else:
            b.loop(y.size, lambda bb, i: bb.store(bb.c(y.qp.zero_point[0], y.elem), ym, i))
        _copy_window(lw, b, op.operands[-1], ym, y.shape, None, list(op.attr("offsets")))


@_lowers(q.ReshapeOp)
def _reshape(lw: Lowering, b: B, op) -> None:
    y = lw.tensor(op.results[0])
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])
    b.loop(y.size, lambda bb, i: bb.store(bb.trunc(lw.read_int(bb, op.operands[0], xm, i), y.elem), ym, i))


# ------------------------------------------------------------------ float ops
# Float ops the lowering leaves: float32 operations one by one, as qcc.float_kernels
# rounds them (no contraction: the llvm conversion sets no fast-math flags).


def _float_unary(lw: Lowering, b: B, op, fn: Callable) -> None:
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    if x.qp is not None:
        raise QccError(f"onnx.{op.onnx_type} {op.node_name!r}: float32 inputs only")
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])
    b.loop(y.size, lambda bb, i: bb.store(fn(bb, bb.load(xm, i)), ym, i))


def _f(bb: B, v: float):
    return bb.f(float(np.float32(v)), F32)


def _clip01(bb: B, t):
    return bb.add(arith.SelectOp(bb.add(arith.CmpfOp(t, _f(bb, 0.0), "olt")), _f(bb, 0.0),
                                 bb.add(arith.SelectOp(bb.add(arith.CmpfOp(t, _f(bb, 1.0), "ogt")), _f(bb, 1.0), t))))


@_lowers("HardSwish")
def _hard_swish(lw, b, op):
    _float_unary(lw, b, op, lambda bb, v: bb.add(arith.MulfOp(_clip01(bb, bb.add(arith.AddfOp(
        bb.add(arith.MulfOp(v, _f(bb, 1 / 6))), _f(bb, 0.5)))), v)))


@_lowers("HardSigmoid")
def _hard_sigmoid(lw, b, op):
    a = op.onnx_attrs()
    _float_unary(lw, b, op, lambda bb, v: _clip01(bb, bb.add(arith.AddfOp(
        bb.add(arith.MulfOp(v, _f(bb, a.get("alpha", 0.2)))), _f(bb, a.get("beta", 0.5))))))


@_lowers("Relu")
def _relu(lw, b, op):
    _float_unary(lw, b, op, lambda bb, v: bb.add(arith.SelectOp(
        bb.add(arith.CmpfOp(v, _f(bb, 0.0), "olt")), _f(bb, 0.0), v)))


@_lowers("LeakyRelu")
def _leaky_relu(lw, b, op):
    alpha = op.onnx_attrs().get("alpha", 0.01)
    _float_unary(lw, b, op, lambda bb, v: bb.add(arith.SelectOp(
        bb.add(arith.CmpfOp(v, _f(bb, 0.0), "olt")), bb.add(arith.MulfOp(v, _f(bb, alpha))), v)))


@_lowers("Softmax")
def _softmax(lw: Lowering, b: B, op) -> None:
    x, y = lw.tensor(op.operands[0]), lw.tensor(op.results[0])
    if x.qp is not None:
        raise QccError(f"onnx.Softmax {op.node_name!r}: float32 Softmax only")
    a = op.onnx_attrs()
    r = len(x.shape)
    if lw.opset < 13:
        axis = (int(a.get("axis", 1)) % r) if r else 0
        outer, n, inner = math.prod(x.shape[:axis]), math.prod(x.shape[axis:]), 1
    else:
        axis = int(a.get("axis", -1)) % r
        outer, n, inner = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])
    xm, ym = lw.mem(b, op.operands[0]), lw.mem(b, op.results[0])

    def row(bb: B, ivs):
        o, k = ivs
        base = bb.lin([(o, n * inner), (k, 1)])

        def at(b2: B, j):
            return b2.addi(base, b2.muli(j, b2.i(inner)))

        mx = bb.loop(n, lambda b2, j, m: [b2.add(arith.SelectOp(
            b2.add(arith.CmpfOp(b2.load(xm, at(b2, j)), m, "ogt")), b2.load(xm, at(b2, j)), m))],
            [bb.load(xm, base)], lo=1)[0]

        def ex(b2: B, j, s):
            e = b2.add(xmath.ExpOp(b2.add(arith.SubfOp(b2.load(xm, at(b2, j)), mx))))
            b2.store(e, ym, at(b2, j))
            return [b2.add(arith.AddfOp(s, e))]

        s = bb.loop(n, ex, [_f(bb, 0.0)])[0]
        bb.loop(n, lambda b2, j: b2.store(b2.add(arith.DivfOp(b2.load(ym, at(b2, j)), s)), ym, at(b2, j)))

    b.loops([outer, inner], row)


# ------------------------------------------------------------------ the pass


def lower_module(module: ModuleOp, index_bits: int = 64, dsp: bool = False) -> Lowering:
    """Replaces the module's contents with the loop-level stage; returns the
    lowering (arena size and I/O facts for the backends). `dsp`: the target has
    the Arm DSP extension (Cortex-M4/M7); dot products then call llvm.arm.smlad."""
    lw = Lowering(module, index_bits, dsp)
    new_ops = lw.run()
    for op in list(module.ops):
        op.detach()
        op.erase()
    module.body.block.add_ops(new_ops)
    module.attributes["qcc.index_bits"] = IntegerAttr(index_bits, i64)
    module.attributes["qcc.arena_bytes"] = IntegerAttr(lw.arena_bytes, i64)
    return lw


@dataclass(frozen=True)
class LowerToLoopsPass(ModulePass):
    """quant ops -> func/memref/scf/arith loops over one planned arena."""

    name = "lower-to-loops"
    index_bits: int = 64
    dsp: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.index_bits not in (32, 64):
            raise QccError(f"lower-to-loops: index_bits must be 32 or 64, got {self.index_bits}")
        lower_module(op, self.index_bits, self.dsp)
