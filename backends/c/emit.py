"""The C backend: quantized IR (`func.func @main` of quant ops) -> model.c,
model.h and a Makefile, C99 for the host or any target gcc builds for.

Owns the layout of the generated program: which values live where (static
weight arrays, one static arena planned by `arena`, the caller's buffers), the
entry points and their documentation. Per-op C comes from `kernels`, the shared
integer helpers from `cgen.PRELUDE`; both follow docs/numerics.md, and the tests
compare the result with `qcc.int_kernels` bit for bit.

Entry points: `qcc_model_run` takes and returns float32 (quantize at entry,
dequantize at exit, exactly quant.quantize/dequantize); `qcc_model_run_q` takes
and returns the integer codes, when every graph input feeds one quant.quantize
and every graph output is one quant.dequantize (`QCC_HAS_RUN_Q`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType

from qcc import numerics as nx
from qcc.dialects import onnx as donnx
from qcc.dialects import quant as q
from qcc.errors import QccError
from qcc.interpreter import io_names, main_func, module_opset

from . import arena
from .cgen import PRELUDE, array, atype, comment_json, comment_text, ctype, flit, lit
from .float_ops import INPLACE_OPS, VIEW_OPS, float_array
from .kernels import SCRATCH, Ctx, Kernel, Tensor, fused_conv, generate


@dataclass
class CModel:
    """What `emit_model` produces: the files and the numbers the report needs."""

    files: dict[str, str]
    arena_bytes: int
    naive_bytes: int  # every arena tensor (and scratch) in its own buffer
    weight_bytes: int
    has_run_q: bool
    io: dict = field(default_factory=dict)
    sram_peak_bytes: int = 0  # arena (scratch included) + input/output buffers outside it
    sram_peak_bytes_excl_input: int = 0
    patches: int = 0  # patches of the stage run patch by patch (0: layer by layer throughout)


def emit_c(module: ModuleOp, target: str = "host") -> dict[str, str]:
    """`{"model.c", "model.h", "Makefile"}` for a quantized module."""
    return emit_model(module, target=target).files


def emit_model(module: ModuleOp, *, separate_buffers: bool = False, target: str = "host") -> CModel:
    """The C program for `module`. `separate_buffers` (for sanitizer builds)
    gives every buffer its own static object instead of an offset in the arena.
    `target` only changes the Makefile (its compiler and flags): the C is portable.
    A stage marked by tile-patches runs patch by patch (materialize-patches on a clone)."""
    from qcc.passes.materialize_patches import for_code

    module, patches = for_code(module)
    cm = _Emitter(module, separate_buffers, target).run()
    cm.patches = patches
    return cm


_LOCAL_TABLE = re.compile(r"static const (\w+)\s+\w+\s*\[(\d+)\]")
_CTYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
                "int64_t": 8, "uint64_t": 8, "float": 4, "double": 8}


@dataclass
class _Group:
    """Tensors sharing one buffer (reshape views, in-place results)."""

    members: list[Tensor]
    fixed: tuple | None = None  # ("in", i), ("out", j) or ("const", symbol)
    nbytes: int = 0
    buffer: arena.Buffer | None = None

    def span(self, live: dict[int, tuple[int, int]]) -> tuple[int, int]:
        s = [live[t.index] for t in self.members]
        return min(a for a, _ in s), max(b for _, b in s)


def _identity_clamp(op) -> bool:
    """A clamp to its type's whole range: codes always lie in that range already."""
    if not isinstance(op, q.ClampOp):
        return False
    qp = q.qparams_of(op.results[0].type)
    return (op.attr("act_min", qp.qmin), op.attr("act_max", qp.qmax)) == (qp.qmin, qp.qmax)


_INPLACE = (q.ClampOp, q.LookupOp, q.RequantizeOp, q.AddOp, q.MulOp, q.InsertSliceOp)


class _Emitter:
    def __init__(self, module: ModuleOp, separate_buffers: bool = False, target: str = "host"):
        self.module = module
        self.target = target
        self.separate_buffers = separate_buffers
        self.fn = main_func(module)
        self.opset = module_opset(module)
        self.in_names, self.out_names = io_names(self.fn)
        self.tensors: dict = {}  # SSAValue -> Tensor
        self.const_text: dict = {}  # symbol -> C definition (or a function writing it)
        self.const_bytes: dict[str, int] = {}
        self.weight_bytes = 0
        self.needs_libm = False

    # ------------------------------------------------------------ tensors
    def tensor(self, v) -> Tensor:
        t = self.tensors.get(v)
        if t is None:
            raise QccError(f"value {v.name_hint or ''} is used but has no C buffer (unsupported producer)")
        return t

    def _new_tensor(self, v) -> Tensor:
        ty = v.type
        if not isinstance(ty, TensorType):
            raise QccError(f"the C backend handles tensors only, got {ty}")
        shape = tuple(int(d) for d in ty.get_shape())
        if any(d < 0 for d in shape):
            raise QccError(f"the C backend needs static shapes, got {list(shape)} (bind them with --input-shape)")
        qp = q.qparams_of(ty)
        if qp is not None:
            dtype = nx.storage_dtype(qp.bits, qp.signed)
        else:
            dtype = donnx.numpy_dtype(ty.element_type)
            if dtype != np.float32:
                raise QccError(f"the C backend handles float32 and quantized tensors, got {ty.element_type}")
        t = Tensor(len(self.tensors), shape, np.dtype(dtype), qp)
        self.tensors[v] = t
        return t

    def _constant(self, op: q.ConstantOp) -> None:
        t = self._new_tensor(op.results[0])
        qp = t.qp
        sym = f"qcc_w{t.index}"  # not "w2": kernels have locals of that name
        vals = op.values().reshape(-1)
        if qp.bits in (2, 4):
            packed = op.attributes["packed"].array
            self.const_text[sym] = array(sym, "uint8_t", packed, 20, hexa=True)
            self.const_text[sym + "_u"] = array(sym + "_u", ctype(t.dtype), vals, 20)
            self.const_bytes[sym], self.const_bytes[sym + "_u"] = packed.size, vals.size
            t.const, t.const_bits, t.data = sym, qp.bits, sym + "_u"
        else:
            self.const_text[sym] = array(sym, ctype(t.dtype), vals, 20 if qp.bits <= 8 else 12)
            self.const_bytes[sym] = vals.size * t.dtype.itemsize
            t.const, t.const_bits, t.data = sym, qp.bits, sym
        self._comments[sym] = f"{t.describe()}{self._named(op)}"

    def _float_constant(self, op: donnx.OnnxOp) -> None:
        """A float32 weight becomes a static const array; other constants (shapes,
        axes) are read by the generators at compile time and get no C object."""
        if donnx.numpy_dtype(op.results[0].type.element_type) != np.float32:
            return
        t = self._new_tensor(op.results[0])
        sym = f"qcc_w{t.index}"  # not "w2": kernels have locals of that name
        values = donnx.constant_array(op.results[0])  # written only if a kernel reads the array
        self.const_text[sym] = lambda: float_array(sym, values)
        self.const_bytes[sym] = t.nbytes
        t.const, t.data = sym, sym
        self._comments[sym] = f"{t.describe()}{self._named(op)}"

    def _named(self, op) -> str:
        name = getattr(op, "node_name", "")
        return f" {comment_text(name)}" if name else ""

    # --------------------------------------------------------------- run
    def run(self) -> CModel:
        self._comments: dict[str, str] = {}
        ops = list(self.fn.body.block.ops)
        ret = ops[-1] if ops else None
        if not isinstance(ret, func.ReturnOp):
            raise QccError("@main must end with func.return")
        for a in self.fn.args:
            self._new_tensor(a)
        body_ops = []
        for op in ops[:-1]:
            if isinstance(op, q.ConstantOp):
                self._constant(op)
            elif isinstance(op, donnx.OnnxOp) and op.onnx_type == "Constant" and op.results[0].uses:
                self._float_constant(op)
            elif isinstance(op, donnx.NoValueOp) or (isinstance(op, donnx.OnnxOp) and op.onnx_type == "Constant"
                                                     and not op.results[0].uses):
                continue
            else:
                for r in op.results:
                    self._new_tensor(r)
                body_ops.append(op)
        # a convolution fused into a residual add's kernel (fuse-residual-add) runs at the add's step
        self.absorbed = {conv: op for op in body_ops if (conv := fused_conv(op)) is not None}
        self.absorbing = {add: conv for conv, add in self.absorbed.items()}
        body_ops = [op for op in body_ops if op not in self.absorbed]
        self.ret = ret
        self._find_edges(body_ops)
        self.body = [op for op in body_ops if op not in self.edge_ops]
        self._liveness()
        self._group()
        self._kernels()
        self._plan()
        files = {"model.c": self._model_c(), "model.h": self._model_h(), "Makefile": self._makefile()}
        return CModel(files, self.arena_bytes, self.naive_bytes, self.weight_bytes, self.q_edge, self.io,
                      self.sram_peak_bytes, self.sram_peak_bytes_excl_input)

    def _find_edges(self, body_ops) -> None:
        """run_q exists when each graph input feeds exactly one per-tensor
        quant.quantize and each output is a quant.dequantize used only there."""
        q_in, q_out = [], []
        ok = True
        for a in self.fn.args:
            uses = list(a.uses)
            if len(uses) == 1 and isinstance(uses[0].operation, q.QuantizeOp) \
                    and q.qparams_of(uses[0].operation.results[0].type).axis is None:
                q_in.append(uses[0].operation)
            else:
                ok = False
        for v in self.ret.operands:
            owner = v.owner
            if isinstance(owner, q.DequantizeOp) and len(list(v.uses)) == 1 \
                    and q.qparams_of(owner.operands[0].type).axis is None:
                q_out.append(owner)
            else:
                ok = False
        self.q_edge = ok
        self.q_in, self.q_out = (q_in, q_out) if ok else ([], [])
        self.edge_ops = set(self.q_in) | set(self.q_out)
        if ok:
            self.body_in = [self.tensor(op.results[0]) for op in q_in]
            self.body_out = [self.tensor(op.operands[0]) for op in q_out]
        else:
            self.body_in = [self.tensor(a) for a in self.fn.args]
            self.body_out = [self.tensor(v) for v in self.ret.operands]
            for t in self.body_out:
                if t.qp is not None:
                    raise QccError("a graph output is quantized without a quant.dequantize")

    def _liveness(self) -> None:
        n = len(self.body)
        step = {op: k for k, op in enumerate(self.body)}
        step.update({conv: step[add] for conv, add in self.absorbed.items() if add in step})
        live: dict[int, tuple[int, int]] = {}
        for t in self.body_in:
            live[t.index] = (-1, -1)
        for k, op in enumerate(self.body):
            for r in op.results:
                live[self.tensor(r).index] = (k, k)
        for v, t in self.tensors.items():
            if t.index not in live:
                continue
            s, e = live[t.index]
            for use in v.uses:
                u = use.operation
                e = max(e, step[u] if u in step else n)
            live[t.index] = (s, e)
        for t in self.body_out:
            if t.index in live:
                live[t.index] = (live[t.index][0], n)
        self.live = live
        self.nsteps = n

    # --------------------------------------------------------------- groups
    def _group(self) -> None:
        self.group_of: dict[int, _Group] = {}
        for t in self.tensors.values():
            g = _Group([t], nbytes=t.nbytes)
            if t.const:
                g.fixed = ("const", t.data)
            self.group_of[t.index] = g
        for i, t in enumerate(self.body_in):
            self.group_of[t.index].fixed = ("in", i)
        self.out_copy: dict[int, _Group] = {}  # output j -> its own buffer, filled by a copy
        for j, t in enumerate(self.body_out):
            g = self.group_of[t.index]
            if g.fixed is None:
                g.fixed = ("out", j)
            else:
                pseudo = Tensor(-1 - j, t.shape, t.dtype, t.qp)
                self.out_copy[j] = _Group([pseudo], ("out", j), t.nbytes)
        self.alias_ops: set = set()
        for k, op in enumerate(self.body):
            if isinstance(op, q.ReshapeOp) or _identity_clamp(op) or getattr(op, "onnx_type", "") in VIEW_OPS:
                gx, gy = self.g(op.operands[0]), self.g(op.results[0])
                if gx is not gy and (gx.fixed is None or gy.fixed is None):
                    self._merge(gx, gy)
                    self.alias_ops.add(op)
            elif (isinstance(op, _INPLACE) or getattr(op, "onnx_type", "") in INPLACE_OPS) \
                    and op not in self.absorbing:
                y = self.tensor(op.results[0])
                gy = self.g(op.results[0])
                if len(gy.members) != 1 or (gy.fixed is not None and gy.fixed[0] != "out"):
                    continue
                for v in op.operands:
                    if v not in self.tensors:  # an absent operand, a compile-time constant
                        continue
                    if isinstance(op, q.InsertSliceOp) and (len(op.operands) == 1 or v is not op.operands[0]):
                        break  # only a destination is updated in place, never the tile
                    x = self.tensor(v)
                    gx = self.g(v)
                    if (x.shape == y.shape and x.dtype.itemsize == y.dtype.itemsize and gx.fixed is None
                            and gx is not gy and gx.span(self.live)[1] == k):
                        self._merge(gx, gy)
                        break

    def g(self, v) -> _Group:
        return self.group_of[self.tensor(v).index]

    def _merge(self, a: _Group, b: _Group) -> None:
        a.members += b.members
        a.fixed = a.fixed or b.fixed
        a.nbytes = max(a.nbytes, b.nbytes)
        for t in b.members:
            self.group_of[t.index] = a

    # -------------------------------------------------------------- kernels
    def _kernels(self) -> None:
        self.kernels: list[tuple[object, str, Kernel | None]] = []
        for k, op in enumerate(self.body):
            self.kernels.append((op, *self._kernel(op, f"op{k}")))
        self.edge_kernels = {op: self._kernel(op, f"edge{i}") for i, op in enumerate([*self.q_in, *self.q_out])}

    def _kernel(self, op, prefix: str) -> tuple[str, Kernel | None]:
        kind = (op.onnx_type.lower() if isinstance(op, donnx.OnnxOp) else op.name.split(".")[1])
        fn = f"{prefix}_{kind}"
        if op in self.alias_ops:
            return fn, None
        conv = self.absorbing.get(op)
        vals = (*op.operands, *op.results, *(conv.operands if conv is not None else ()))
        groups = [id(self.g(v)) for v in vals if v in self.tensors]
        restrict = "restrict " if len(groups) == len(set(groups)) else ""
        ctx = Ctx(fn, restrict, self.tensor, self.opset, target=self.target)
        kern = generate(ctx, op)
        self.needs_libm |= kern.needs_libm
        return fn, kern

    # ---------------------------------------------------------------- arena
    def _plan(self) -> None:
        bufs: list[arena.Buffer] = []
        seen: set[int] = set()
        naive = 0
        groups = [*{id(g): g for g in self.group_of.values()}.values(), *self.out_copy.values()]
        for g in groups:
            if g.fixed and (g.fixed[0] == "const" or not self.q_edge):
                continue
            if id(g) in seen:
                continue
            seen.add(id(g))
            if g.members[0].index < 0:  # an output's copy: live at the end only
                s, e = self.nsteps, self.nsteps
            else:
                if not all(t.index in self.live for t in g.members):
                    continue  # never computed (only used by nothing in the body)
                s, e = g.span(self.live)
            g.buffer = arena.Buffer("+".join(t.name for t in g.members), g.nbytes, s, e)
            bufs.append(g.buffer)
            naive += sum(t.nbytes for t in g.members) if g.members[0].index >= 0 else g.nbytes
        self.scratch: dict[int, arena.Buffer] = {}
        for k, (op, fn, kern) in enumerate(self.kernels):
            if kern is not None and kern.scratch:
                b = arena.Buffer(f"scratch{k}", kern.scratch, k, k)
                self.scratch[k] = b
                bufs.append(b)
                naive += kern.scratch
        self.arena_bytes = arena.plan(bufs)
        self.buffers = bufs
        self.naive_bytes = naive
        # Peak SRAM of the integer entry point as the contract counts it: the arena (scratch
        # included) plus whatever input/output buffers live outside it, and the same
        # without the graph input (planned again without the input's buffer).
        outside_in = sum(t.nbytes for t in self.body_in if self.group_of[t.index].buffer is None)
        outside_out = sum(t.nbytes for t in self.body_out if self.group_of[t.index].buffer is None)
        inputs = {id(self.group_of[t.index].buffer) for t in self.body_in}
        rest = [arena.Buffer(b.name, b.size, b.start, b.end) for b in bufs if id(b) not in inputs]
        self.sram_peak_bytes = self.arena_bytes + outside_in + outside_out
        self.sram_peak_bytes_excl_input = arena.plan(rest) + outside_out

    # ----------------------------------------------------------------- text
    def _base(self, b: arena.Buffer) -> str:
        if self.separate_buffers:
            return f"qcc_buf{self.buffers.index(b)}.bytes"
        return f"qcc_arena.bytes + {b.offset}"

    def _arena_decl(self) -> str:
        union = ("static union {{\n    uint8_t bytes[{n}];\n    int64_t align_i64;\n    double align_f64;\n"
                 "}} {name} QCC_ALIGNED;\n")
        if self.separate_buffers:
            return ("/* Debug layout (separate_buffers): every buffer is its own object, so that\n"
                    "   address sanitizers see overruns between tensors. */\n"
                    + "".join(union.format(n=max(b.size, 1), name=f"qcc_buf{i}") for i, b in enumerate(self.buffers)))
        return ("/* The one mutable object: every activation and scratch buffer, at offsets\n"
                "   planned from tensor lifetimes (buffers of tensors never live together share space). */\n"
                + union.format(n=max(self.arena_bytes, 1), name="qcc_arena"))

    def _at(self, t: Tensor, g: _Group, const: bool) -> str:
        ty = atype(t.dtype)
        return f"(({'const ' if const else ''}{ty} *)({self._base(g.buffer)}))"

    def ref(self, t: Tensor, const: bool) -> str:
        g = self.group_of[t.index]
        cq = "const " if const else ""
        if g.fixed is not None:
            kind, where = g.fixed
            if kind == "const":
                return f"(const {atype(t.dtype)} *){where}"
            return f"({cq}{atype(t.dtype)} *){'in' if kind == 'in' else 'out'}{where}"
        return self._at(t, g, const)

    def _call(self, fn: str, kern: Kernel, step: int | None, refs: list[str] | None = None) -> str:
        args = []
        for i, a in enumerate(kern.args):
            if refs is not None:
                args.append(refs[i])
            elif a is SCRATCH:
                args.append(f"(({kern.scratch_type} *)({self._base(self.scratch[step])}))")
            else:
                args.append(self.ref(a, const=i != kern.written))
        return f"{fn}({', '.join(args)});"

    def _op_comment(self, op) -> str:
        res = ", ".join(self.tensor(r).describe() for r in op.results)
        ins = ", ".join(self._operand_text(v) for v in op.operands)
        return f"/* {op.name}{self._named(op)}: {res} <- {ins} */"

    def _operand_text(self, v) -> str:
        t = self.tensors.get(v)
        return "?" if t is None else (t.const or t.name)

    def _model_c(self) -> str:
        out = ['#include "model.h"\n', PRELUDE]
        if self.needs_libm:
            out.append("#include <math.h>\n")
        out.append(f"""
#if defined(__GNUC__)
#define QCC_ALIGNED __attribute__((__aligned__(16)))
#else
#define QCC_ALIGNED
#endif

/* Profiling hook between kernel steps: nothing unless built with -DQCC_PROFILE,
   which calls qcc_profile_point(step) (defined by the harness) before each step
   and once after the last. */
#ifdef QCC_PROFILE
void qcc_profile_point(int step);
#define QCC_PROFILE_POINT(step) qcc_profile_point(step)
#else
#define QCC_PROFILE_POINT(step) ((void)0)
#endif
{self._arena_decl()}
/* ---- constants ---- */
""")
        code_parts = []
        for k, (op, fn, kern) in enumerate(self.kernels):
            if kern is not None:
                code_parts.append(f"/* step {k}: */\n{self._op_comment(op)}\n{kern.text}")
        for op, (fn, kern) in self.edge_kernels.items():
            code_parts.append(f"{self._op_comment(op)}\n{kern.text}")
        body_sig = ", ".join(
            [f"const {atype(t.dtype)} *in{i}" for i, t in enumerate(self.body_in)]
            + [f"{atype(t.dtype)} *out{j}" for j, t in enumerate(self.body_out)]) or "void"
        lines = [f"static void qcc_body({body_sig})", "{"]
        for i in range(len(self.body_in)):
            lines.append(f"    (void)in{i};")
        for j in range(len(self.body_out)):
            lines.append(f"    (void)out{j};")
        if not self.separate_buffers:
            lines.append("    (void)qcc_arena;")  # unused when every op reads and writes the caller's buffers
        for k, (op, fn, kern) in enumerate(self.kernels):
            lines.append(f"    /* step {k}: {op.name}{self._named(op)} */")
            lines.append(f"    QCC_PROFILE_POINT({k});")
            if kern is None:
                lines.append("    /* a view of its operand's buffer: nothing to do */")
            else:
                lines.append("    " + self._call(fn, kern, k))
        for j, g in self.out_copy.items():
            src = self.ref(self.body_out[j], const=True)
            lines.append(f"    memcpy(out{j}, {src}, {self.body_out[j].nbytes});")
        lines.append(f"    QCC_PROFILE_POINT({len(self.kernels)});")
        lines.append("}\n")
        body_text = "\n".join(lines)
        wrappers = self._wrappers()
        text = "\n".join(code_parts) + "\n" + body_text + "\n" + wrappers
        consts = []
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # names in comments do not count as uses
        used = set(re.findall(r"\b\w+\b", code))  # one pass: weight tables make the text long
        # Kernels re-lay weights out into their own function-local tables; count those
        # with the global constants (flash).
        self.weight_bytes = sum(_CTYPE_BYTES[ct] * int(n) for ct, n in _LOCAL_TABLE.findall(code))
        for sym, decl in self.const_text.items():
            if sym in used:
                self.weight_bytes += self.const_bytes[sym]
                consts.append(f"/* {self._comments.get(sym, self._comments.get(sym[:-2], ''))} */\n"
                              f"{decl() if callable(decl) else decl}")
        out.append("\n".join(consts))
        out.append("\n/* ---- kernels, in execution order ---- */\n\n")
        out.append(text)
        head = (f"/* model.c: generated by qcc. Integer semantics: docs/numerics.md of qcc.\n"
                f"   Activation arena: {self.arena_bytes} bytes ({self.naive_bytes} if no tensors shared space); "
                f"constants: {self.weight_bytes} bytes. */\n")
        return head + "".join(out)

    def _proto(self, codes: bool) -> str:
        if codes:
            ins = [f"const {ctype(t.dtype)} *input{i}" for i, t in enumerate(self.body_in)]
            outs = [f"{ctype(t.dtype)} *output{j}" for j, t in enumerate(self.body_out)]
            return f"int qcc_model_run_q({', '.join(ins + outs) or 'void'})"
        ins = [f"const float *input{i}" for i in range(len(self.fn.args))]
        outs = [f"float *output{j}" for j in range(len(self.ret.operands))]
        return f"int qcc_model_run({', '.join(ins + outs) or 'void'})"

    def _null_check(self, n_in: int, n_out: int) -> str:
        ptrs = [f"input{i} == 0" for i in range(n_in)] + [f"output{j} == 0" for j in range(n_out)]
        return f"    if ({' || '.join(ptrs)}) return -1;\n" if ptrs else ""

    def _wrappers(self) -> str:
        n_in, n_out = len(self.fn.args), len(self.ret.operands)
        out = [self._proto(False), "{", self._null_check(n_in, n_out).rstrip("\n")]
        if self.q_edge:
            in_slots, out_slots = [], []
            for i, op in enumerate(self.q_in):
                g = self.group_of[self.body_in[i].index]
                slot = self._at(self.body_in[i], g, False)
                in_slots.append(slot)
                fn, kern = self.edge_kernels[op]
                out.append("    " + self._call(fn, kern, None, [f"(const qcc_f32 *)input{i}", slot]))
            for j in range(n_out):
                g = self.out_copy.get(j) or self.group_of[self.body_out[j].index]
                out_slots.append(self._at(self.body_out[j], g, False))
            out.append(f"    qcc_body({', '.join(in_slots + out_slots)});")
            for j, op in enumerate(self.q_out):
                fn, kern = self.edge_kernels[op]
                out.append("    " + self._call(fn, kern, None, [out_slots[j], f"(qcc_f32 *)output{j}"]))
        else:
            args = [f"(const qcc_f32 *)input{i}" for i in range(n_in)] + \
                [f"(qcc_f32 *)output{j}" for j in range(n_out)]
            out.append(f"    qcc_body({', '.join(args)});")
        out += ["    return 0;", "}", ""]
        if self.q_edge:
            args = [f"(const {atype(t.dtype)} *)input{i}" for i, t in enumerate(self.body_in)] + \
                [f"({atype(t.dtype)} *)output{j}" for j, t in enumerate(self.body_out)]
            out += [self._proto(True), "{", self._null_check(n_in, n_out).rstrip("\n"),
                    f"    qcc_body({', '.join(args)});", "    return 0;", "}", ""]
        return "\n".join(line for line in out if line != "") + "\n"

    # --------------------------------------------------------------- header
    def _io_meta(self) -> dict:
        ins, outs = [], []
        for i, a in enumerate(self.fn.args):
            t = self.tensor(a)
            d = {"name": self.in_names[i], "shape": list(t.shape), "size": t.size}
            if self.q_edge:
                c = self.body_in[i]
                d.update(code_dtype=c.dtype.name, scale=c.qp.scale[0], zero_point=c.qp.zero_point[0],
                         bits=c.qp.bits)
            ins.append(d)
        for j, v in enumerate(self.ret.operands):
            t = self.tensor(v)
            d = {"name": self.out_names[j], "shape": list(t.shape), "size": t.size}
            if self.q_edge:
                c = self.body_out[j]
                d.update(code_dtype=c.dtype.name, scale=c.qp.scale[0], zero_point=c.qp.zero_point[0],
                         bits=c.qp.bits)
            outs.append(d)
        self.io = {"inputs": ins, "outputs": outs, "run_q": self.q_edge, "arena_bytes": self.arena_bytes,
                   "naive_bytes": self.naive_bytes, "weight_bytes": self.weight_bytes, "libm": self.needs_libm}
        return self.io

    def _is_float(self) -> bool:
        """A --float build: no quantized tensor anywhere."""
        return all(t.qp is None for t in self.tensors.values())

    def _numerics_note(self) -> str:
        if self._is_float():
            return ("A float32 build\n   (--float): it agrees with qcc's float interpreter to float32 rounding"
                    f"\n   and {'links libm' if self.needs_libm else 'needs no libm'}.")
        return ("The integer path needs no libm and no\n"
                "   floating point except quantize/dequantize at the edges.")

    def _run_doc(self) -> str:
        if self._is_float():
            return ("/* Runs the model on float32 inputs and writes float32 outputs, computing in\n"
                    "   float32 throughout. Returns 0, or -1 for a null pointer. */")
        return ("/* Runs the model on float32 inputs and writes float32 outputs. Inputs are\n"
                "   quantized as code = clamp(round_half_away(x / scale) + zero_point) with the\n"
                "   division in double, outputs dequantized as float((code - zero_point) * scale),\n"
                "   bit for bit like qcc's integer interpreter. Returns 0, or -1 for a null pointer. */")

    def _model_h(self) -> str:
        io = self._io_meta()
        defs = []
        for kind, items in (("INPUT", io["inputs"]), ("OUTPUT", io["outputs"])):
            for i, d in enumerate(items):
                dims = ", ".join(map(str, d["shape"]))
                code = ""
                if self.q_edge:
                    code = (f"; codes {ctype(np.dtype(d['code_dtype']))} ({d['bits']} bits), "
                            f"real = (code - {d['zero_point']}) * {d['scale']!r}")
                defs.append(f"/* {kind.lower()} {i}: {comment_text(d['name'])}, float32 [{dims}]{code} */")
                defs.append(f"#define QCC_{kind}{i}_SIZE {d['size']}")
                if self.q_edge:
                    defs.append(f"#define QCC_{kind}{i}_SCALE {flit(d['scale'])}")
                    defs.append(f"#define QCC_{kind}{i}_ZERO_POINT ({lit(d['zero_point'])})")
                    defs.append(f"typedef {ctype(np.dtype(d['code_dtype']))} qcc_{kind.lower()}{i}_code_t;")
        run_q = ""
        if self.q_edge:
            run_q = f"""
/* The same on integer codes: each input is the output of quantize as above
   (QCC_INPUTi_SCALE / QCC_INPUTi_ZERO_POINT), each output the codes that
   qcc_model_run would dequantize. Returns 0, or -1 for a null pointer. */
{self._proto(True)};
"""
        return f"""\
/* model.h: generated by qcc. The compiled model's C interface.

   Each call runs one sample; every array is row-major with the shapes below
   (the batch dimension is 1). All memory is static: weights are constant
   arrays, activations live in one arena of QCC_ARENA_BYTES bytes inside
   model.c; nothing is allocated. The functions share that arena, so calls
   must not overlap (not reentrant, not thread-safe), and input and output
   arrays must not overlap each other. {self._numerics_note()} */
#ifndef QCC_MODEL_H
#define QCC_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define QCC_NUM_INPUTS {len(io['inputs'])}
#define QCC_NUM_OUTPUTS {len(io['outputs'])}
#define QCC_ARENA_BYTES {self.arena_bytes}
#define QCC_WEIGHT_BYTES {self.weight_bytes}
#define QCC_HAS_RUN_Q {int(self.q_edge)}

{chr(10).join(defs)}

{self._run_doc()}
{self._proto(False)};
{run_q}
/* qcc-io {comment_json(io)} */

#ifdef __cplusplus
}}
#endif

#endif /* QCC_MODEL_H */
"""

    def _makefile(self) -> str:
        from .targets import makefile_vars

        libs = "-lm" if self.needs_libm else ""
        mk = makefile_vars(self.target)
        return f"""\
# Generated by qcc: builds the model into libmodel.a for --target {self.target}.
# Link your program with: $(CC) $(TARGET_FLAGS) main.c libmodel.a {libs}
CC = {mk["CC"]}
AR = {mk["AR"]}
TARGET_FLAGS = {mk["TARGET_FLAGS"]}
CFLAGS ?= -std=c99 -O2 -Wall -Wextra
LDLIBS = {libs}

all: libmodel.a

model.o: model.c model.h
\t$(CC) $(TARGET_FLAGS) $(CFLAGS) -c model.c -o model.o

libmodel.a: model.o
\t$(AR) rcs $@ model.o

clean:
\trm -f model.o libmodel.a

.PHONY: all clean
"""
