"""C kernels for the ops of quantized IR: one generator per op, each returning
the text of one `static void` C function specialised to that op.

Shapes, zero points, clamp bounds, padding and strides are baked in as
literals; requantization multipliers come from `qcc.numerics` at emit time
(per-channel ones as function-local `static const` tables); geometry (conv
padding with auto_pad, pooling windows, nearest-resize index maps) is computed
with the same `qcc.float_kernels` code the integer interpreter runs. The
arithmetic itself is the prelude's (`cgen.PRELUDE`). The semantics are
docs/numerics.md's; `qcc.int_kernels` is the oracle the tests compare with.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qcc import numerics as nx
from qcc.dialects import onnx as donnx
from qcc.dialects import quant as q
from qcc.errors import QccError
from qcc.float_kernels import KERNELS, _conv_geometry, _pool_geometry

from .cgen import array, atype, ctype, darray, f32lit, flit, lit, strides

ROW_BLOCK = 4096  # accumulator elements per conv block (16 KB of int32 scratch)


@dataclass
class Tensor:
    """One SSA value as the C code sees it."""

    index: int
    shape: tuple[int, ...]
    dtype: np.dtype  # storage type
    qp: nx.QParams | None
    const: str | None = None  # symbol of a static const array (packed for 2/4 bits)
    data: str | None = None  # symbol of its unpacked values (for kernels reading it as data)
    const_bits: int = 0  # 2/4: the array holds packed codes

    @property
    def name(self) -> str:
        return f"t{self.index}"

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def describe(self) -> str:
        dims = "x".join(map(str, self.shape)) or "scalar"
        if self.qp is None:
            return f"{self.name}[{dims} f32]"
        kind = f"{'i' if self.qp.signed else 'u'}{self.qp.bits}"
        if self.qp.axis is None:
            return f"{self.name}[{dims} {kind} s={self.qp.scale[0]:.6g} z={self.qp.zero_point[0]}]"
        return f"{self.name}[{dims} {kind} per-channel axis {self.qp.axis}]"


SCRATCH = "scratch"
_SIGNS = re.compile(r"([-+]) -(\d)")


@dataclass
class Kernel:
    text: str
    args: list  # Tensor or SCRATCH, in parameter order
    written: int  # index in args of the tensor the kernel writes
    scratch: int = 0  # bytes
    scratch_type: str = ""  # C type of the scratch pointer
    needs_libm: bool = False


@dataclass
class Ctx:
    fn: str
    restrict: str  # "restrict " or ""
    tensor: Callable  # SSAValue -> Tensor
    opset: int = 18
    params: list[str] = field(default_factory=list)
    args: list = field(default_factory=list)
    written: int = -1
    scratch_type: str = ""
    target: str = "host"  # tunes kernels (the C stays portable): see _with_mcu

    def t(self, v) -> Tensor:
        return self.tensor(v)

    def inp(self, name: str, t: Tensor) -> str:
        self.params.append(f"const {atype(t.dtype)} *{self.restrict}{name}")
        self.args.append(t)
        return name

    def out(self, name: str, t: Tensor) -> str:
        self.params.append(f"{atype(t.dtype)} *{self.restrict}{name}")
        self.written = len(self.args)
        self.args.append(t)
        return name

    def scratch(self, name: str, ct: str) -> str:
        self.params.append(f"{ct} *{self.restrict}{name}")
        self.scratch_type = ct
        self.args.append(SCRATCH)
        return name

    def kernel(self, body: str, scratch: int = 0, needs_libm: bool = False, exact_float: bool = False,
               vector: bool = False) -> Kernel:
        sig = f"static void {self.fn}({', '.join(self.params) or 'void'})"
        if vector:
            sig = f"QCC_VECTOR_FN {sig}"
        body = _SIGNS.sub(lambda m: ("+ " if m.group(1) == "-" else "- ") + m.group(2), body)  # "x - -5" -> "x + 5"
        if exact_float:
            sig = f"QCC_EXACT_FLOAT_FN {sig}"
            body = f"    QCC_EXACT_FLOAT_BODY\n{body}"
        return Kernel(f"{sig}\n{{\n{body.rstrip()}\n}}\n", self.args, self.written, scratch,
                      self.scratch_type, needs_libm)


GENERATORS: dict[type | str, Callable[[Ctx, object], Kernel]] = {}


def _gen(*keys):
    def deco(fn):
        for k in keys:
            GENERATORS[k] = fn
        return fn

    return deco


def generate(ctx: Ctx, op) -> Kernel:
    key = op.onnx_type if isinstance(op, donnx.OnnxOp) else type(op)
    g = GENERATORS.get(key)
    if g is None:
        what = f"onnx.{key} (float)" if isinstance(key, str) else op.name
        name = getattr(op, "node_name", "")
        raise QccError(f"{what}{f' {name!r}' if name else ''}: no C implementation yet")
    return g(ctx, op)


# ------------------------------------------------------------------ helpers


def _where(op) -> str:
    name = getattr(op, "node_name", "")
    return f"{op.name}{f' {name!r}' if name else ''}"


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line if line else line for line in text.splitlines())


def _clamp_bounds(op) -> tuple[int, int]:
    qp = q.qparams_of(op.results[0].type)
    return op.attr("act_min", qp.qmin), op.attr("act_max", qp.qmax)


def _const_values(op, i: int) -> np.ndarray:
    owner = op.operands[i].owner
    if not isinstance(owner, q.ConstantOp):
        raise QccError(f"{_where(op)}: operand {i} must be a quant.constant for the C backend")
    return owner.values()


def wget(t: Tensor, idx: str) -> str:
    """C expression reading element `idx` of constant tensor `t` (unpacking sub-byte codes)."""
    if t.const_bits == 4:
        return f"qcc_unpack4({t.const}, {idx})"
    if t.const_bits == 2:
        return f"qcc_unpack2({t.const}, {idx})"
    return f"{t.const}[{idx}]"


def _multiplier_tables(reals: np.ndarray, n: int, acc_bits: int = 32) -> tuple[str, str, str]:
    """(declarations, m0 expression, shift expression) of per-channel multipliers
    indexed by `m`; literals when every channel shares one."""
    m0, sh = nx.quantize_multipliers(np.broadcast_to(np.asarray(reals, np.float64).reshape(-1), (n,)))
    if acc_bits == 64 and np.any(sh >= 8):
        raise QccError("64-bit requantization needs multipliers below 128")
    if np.all(m0 == m0[0]) and np.all(sh == sh[0]):
        return "", lit(m0[0]), str(int(sh[0]))
    decl = array("M0", "int32_t", m0, 8) + array("SH", "int8_t", sh, 32)
    return decl, "M0[m]", "SH[m]"


def _requant_fn(acc_bits: int) -> str:
    if acc_bits not in (32, 64):
        raise QccError(f"acc_bits {acc_bits} is not 32 or 64")
    return "qcc_requant32" if acc_bits == 32 else "qcc_requant64"


def _per_sample_rank(x: Tensor, op, allowed=(3, 4)) -> None:
    if len(x.shape) not in allowed:
        raise QccError(f"{_where(op)}: the C backend handles 1-D and 2-D spatial data, got rank {len(x.shape)}")


def _spatial(shape) -> tuple[int, int]:
    """(H, W) of an [N, C, W] or [N, C, H, W] tensor."""
    return (1, shape[2]) if len(shape) == 3 else (shape[2], shape[3])


def _hw(vals, fill) -> tuple:
    """Per-axis attribute values as (h, w); 1-D ops get `fill` for h."""
    vals = list(vals)
    return (fill, vals[0]) if len(vals) == 1 else (vals[0], vals[1])


# ------------------------------------------------------------------ edges


def _channel_loops(t: Tensor, body: str, qp: nx.QParams, decls: str) -> str:
    """`body` over every element `i` of `t`; per-channel parameters are S[c], Z[c]."""
    if qp.axis is None:
        return f"for (int32_t i = 0; i < {t.size}; i++) {{\n{_indent(body, 4)}\n}}"
    outer = math.prod(t.shape[:qp.axis])
    ch = t.shape[qp.axis]
    inner = math.prod(t.shape[qp.axis + 1:])
    return (decls + f"for (int32_t o = 0; o < {outer}; o++)\n"
            f"for (int32_t c = 0; c < {ch}; c++)\n"
            f"for (int32_t k = 0; k < {inner}; k++) {{\n"
            f"    const int32_t i = (o * {ch} + c) * {inner} + k;\n{_indent(body, 4)}\n}}")


def _scale_zp(qp: nx.QParams) -> tuple[str, str, str]:
    if qp.axis is None:
        return "", flit(qp.scale[0]), lit(qp.zero_point[0])
    return darray("S", qp.scale) + array("Z", "int32_t", qp.zero_point), "S[c]", "Z[c]"


@_gen(q.QuantizeOp)
def _quantize(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    qp = y.qp
    decls, s, z = _scale_zp(qp)
    c.inp("x", x), c.out("y", y)
    body = f"y[i] = ({ctype(y.dtype)})qcc_quantize(x[i], {s}, {z}, {lit(qp.qmin)}, {lit(qp.qmax)});"
    return c.kernel(_indent(_channel_loops(y, body, qp, decls), 4))


@_gen(q.DequantizeOp)
def _dequantize(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    qp = x.qp
    decls, s, z = _scale_zp(qp)
    c.inp("x", x), c.out("y", y)
    body = f"y[i] = qcc_dequantize(x[i], {z}, {s});"
    return c.kernel(_indent(_channel_loops(x, body, qp, decls), 4))


@_gen(q.RequantizeOp)
def _requantize(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    m0, sh = nx.quantize_multiplier(x.qp.scale[0] / y.qp.scale[0])
    c.inp("x", x), c.out("y", y)
    body = (f"    for (int32_t i = 0; i < {y.size}; i++)\n"
            f"        y[i] = ({ctype(y.dtype)})qcc_clamp(qcc_requant32((int64_t)x[i] - {lit(x.qp.zero_point[0])}, "
            f"{lit(m0)}, {sh}) + {lit(y.qp.zero_point[0])}, {lit(y.qp.qmin)}, {lit(y.qp.qmax)});")
    return c.kernel(body)


# ------------------------------------------------------------ dot products


@dataclass
class ConvGeometry:
    """A convolution's geometry, 1-D taken as 2-D with H = 1 (shared by the integer
    kernels here and the float ones of `float_ops`)."""

    N: int
    C: int
    M: int
    G: int
    H: int
    W: int
    OH: int
    OW: int
    KH: int
    KW: int
    SH: int
    SW: int
    DH: int
    DW: int
    PT: int
    PL: int
    no_pad: bool

    @property
    def Cg(self) -> int:
        return self.C // self.G

    @property
    def Mg(self) -> int:
        return self.M // self.G

    @property
    def K(self) -> int:
        return self.Cg * self.KH * self.KW

    @property
    def P(self) -> int:
        return self.OH * self.OW


def conv_geometry(op, attrs: dict, x_shape, w_shape, y_shape) -> ConvGeometry:
    """The geometry of a Conv-like op from its attributes (the interpreter's own
    `_conv_geometry`, auto_pad included), checked against the result shape."""
    strd, dils, pb, pe = _conv_geometry(attrs, np.broadcast_to(np.int8(0), x_shape),
                                        np.broadcast_to(np.int8(0), w_shape))
    ks = list(w_shape[2:])
    out_sp = [(s + b + e - ((k - 1) * d + 1)) // st + 1
              for s, b, e, k, d, st in zip(x_shape[2:], pb, pe, ks, dils, strd)]
    if tuple(out_sp) != tuple(y_shape[2:]) or min(pb + pe, default=0) < 0:
        raise QccError(f"{_where(op)}: result shape {list(y_shape)} disagrees with the convolution geometry")
    G = int(attrs.get("group", 1))
    if x_shape[1] % G or w_shape[0] % G or w_shape[1] * G != x_shape[1]:
        raise QccError(f"{_where(op)}: group {G} does not divide the channels")
    return ConvGeometry(x_shape[0], x_shape[1], w_shape[0], G, *_spatial(x_shape), *_spatial(y_shape),
                        *_hw(ks, 1), *_hw(strd, 1), *_hw(dils, 1), *_hw(pb, 0), not any(pb) and not any(pe))


@dataclass
class _Conv(ConvGeometry):
    """A quantized convolution: its geometry, tensors and constants."""

    x: Tensor
    w: Tensor
    y: Tensor
    acc_bits: int
    wv: np.ndarray  # [M, K] int64
    bias: np.ndarray  # [M] int64


def _conv_geom(c: Ctx, op) -> _Conv:
    x, w, y = c.t(op.operands[0]), c.t(op.operands[1]), c.t(op.results[0])
    _per_sample_rank(x, op)
    wv = _const_values(op, 1).astype(np.int64)
    bias = _const_values(op, 2).astype(np.int64).reshape(-1) if len(op.operands) > 2 else np.zeros(1, np.int64)
    attrs = {k: op.attr(k) for k in ("strides", "pads", "dilations", "group", "auto_pad", "kernel_shape")
             if k in op.attributes}
    g = conv_geometry(op, attrs, x.shape, w.shape, y.shape)
    return _Conv(**vars(g), x=x, w=w, y=y, acc_bits=op.attr("acc_bits"), wv=wv.reshape(g.M, -1),
                 bias=np.broadcast_to(bias, (g.M,)).copy())


def conv_path(g: _Conv) -> str:
    """How to loop. "gemm" (8-bit codes, 32-bit accumulators, at least two input
    channels per group): gather blocks of output positions' patches as unsigned
    bytes (code + 128, K padded to a multiple of 16) and take several output
    channels' dot products per patch, so that the reduction is contiguous and
    gcc vectorises it (VNNI/pmaddwd). "dw" (the same codes, one input channel per
    output): the input plane is copied once into a zero-point-padded scratch
    plane, then every output sums its taps without a bounds check, weights in
    registers. Other codes (16-bit, 64-bit accumulators) take the portable
    paths: "taps" (one input channel per output; the border split off),
    "im2col" (patch rows, one dot product per output) or "planes" (per weight,
    one pass over the output rows it touches). Without wide SIMD (Cortex-M,
    RV32), "gemm" and "pix" with 8-bit weights run the microcontroller kernels
    (`_mcu_conv`: register blocks, SMLAD on the DSP extension, small scratch)
    and "dw" with 3-wide rows its DSP form (`_mcu_dw3`)."""
    if g.Cg == 1 and g.KH * g.KW <= 49:
        return "dw" if _codes8(g) else "taps"
    if _codes8(g):
        return "gemm"
    if g.KH == g.KW == g.SH == g.SW == 1 and g.no_pad:  # pointwise: the patch is a strided channel column
        return "im2col" if g.OH * g.OW <= 16 and g.Mg > 1 else "planes"
    # unpadded rows that are long enough vectorise well as planes (measured on the digit models)
    return "im2col" if g.Mg > 1 and g.K >= 16 and (not g.no_pad or g.OW <= 8) else "planes"


def _codes8(g: _Conv) -> bool:
    """8-bit (or narrower) activation codes, weights within int8, 32-bit
    accumulators, and a proof that the biased unsigned form (code + 128) keeps
    every partial sum within int32: the fast paths apply."""
    return (g.acc_bits == 32 and g.x.dtype == np.int8 and g.y.dtype.itemsize <= 2
            and _u8_sums_fit(g.wv, g.bias, int(g.x.qp.zero_point[0])))


def _u8_sums_fit(wv: np.ndarray, bias: np.ndarray, zx: int) -> bool:
    if wv.size == 0 or np.abs(wv).max() > 127:
        return False
    folded = bias - (zx + 128) * wv.sum(axis=1)
    return int((255 * np.abs(wv).sum(axis=1) + np.abs(folded)).max()) < (1 << 31) - 1


def _table(name: str, ct: str, vals: np.ndarray) -> tuple[str, str]:
    """(declaration, expression at channel m) of a per-channel constant; a literal when uniform."""
    if np.all(vals == vals[0]):
        return "", lit(vals[0])
    return array(name, ct, vals, 10), f"{name}[m]"


@_gen(q.ConvOp)
def _conv(c: Ctx, op) -> Kernel:
    return _conv_kernel(c, op)


def _conv_kernel(c: Ctx, op, add=None) -> Kernel:
    """The convolution `op`; with `add` (a quant.add marked by fuse-residual-add),
    the add runs in the epilogue: each output code of the convolution goes
    straight into the add's arithmetic with the other operand's code at the
    same index, and only the add's result is written."""
    g = _conv_geom(c, op)
    x, y = g.x, g.y
    acc_t = "int32_t" if g.acc_bits == 32 else "int64_t"
    req = _requant_fn(g.acc_bits)
    zx, zy = x.qp.zero_point[0], y.qp.zero_point[0]
    lo, hi = _clamp_bounds(op)
    decl, m0, sh = _multiplier_tables(x.qp.scale[0] * np.asarray(g.w.qp.scale) / y.qp.scale[0], g.M, g.acc_bits)

    shifts = nx.quantize_multipliers(np.asarray(x.qp.scale[0] * np.asarray(g.w.qp.scale) / y.qp.scale[0],
                                                np.float64).reshape(-1))[1]

    def outf(acc: str) -> str:
        rq, shx = req, sh
        if g.acc_bits == 32 and acc == "ab[j]":  # fast paths: int32 accumulators
            rq, shx = ("qcc_rq32_down", _negate(sh)) if np.all(shifts <= 0) else ("qcc_rq32", sh)
        code = f"qcc_clamp({rq}({acc}, {m0}, {shx}) + {lit(zy)}, {lit(lo)}, {lit(hi)})"
        if add is None:
            return f"ym[j] = ({ctype(y.dtype)}){code};"
        return f"{{\n    const int32_t cq_ = {code};\n{_indent(_add_codes(c, add, g.y, 'cq_', 'res[ym - y + j]'), 4)}\n}}"

    if add is not None:
        g.y = c.t(add.results[0])
    path = conv_path(g)
    if path == "taps" and g.Cg != 1:
        path = "planes"
    if path in ("gemm", "pix", "dw") and not _codes8(g):
        path = "taps" if g.Cg == 1 and path == "dw" else "planes"
    if path == "dw" and g.Cg != 1:
        path = "gemm"
    if path == "gemm" and g.K <= PIX_K_MAX and g.OH * g.OW >= PIX_MIN_POSITIONS:
        path = "pix"
    c.inp("x", x)
    if add is not None:
        c.inp("res", c.t(add.operands[1 - _epilogue_of(add)]))
    c.out("y", g.y), c.scratch("scratch", "qcc_u8")
    if path in ("gemm", "pix", "dw"):
        store = outf("ab[j]")
        if path in ("gemm", "pix") and _mcu_ok(g):  # wide SIMD's loops, or the microcontroller kernels
            body, scratch = _with_mcu(c.target, (_conv_gemm_body if path == "gemm" else _conv_pix_body)(g, store),
                                      lambda: _mcu_conv(g, store))
        elif path == "gemm":
            body, scratch = _conv_gemm_body(g, store)
        else:  # loops for wide SIMD, else the scalar/DSP-friendly form (see QCC_WIDE_SIMD)
            # big planes: along output rows (the channel interleave would cost more than the taps)
            big = path == "dw" and g.H * g.W >= DW_PLANAR_MIN_PLANE
            wide, s1 = (_conv_pix_body if path == "pix" else _conv_dw_planar_body if big else _conv_dw_body)(g, store)
            if path == "dw" and g.G == 1 and g.Mg > 1:  # one input channel shared by all outputs: a GEMM on x86
                wide, s1 = _x86_vnni_or((wide, s1), _conv_gemm_body(g, store))
            narrow, s2 = (_conv_gemm_body if path == "pix" else _conv_dw_planar_body)(g, store)
            if path == "dw" and _mcu_dw3_ok(g):
                narrow, s2 = _mcu_dw3(g, store, (narrow, s2))
            body, scratch = (wide, s1) if wide == narrow else \
                (f"#if QCC_WIDE_SIMD\n{wide}\n#else\n{narrow}\n#endif", max(s1, s2))
            if c.target in MCU_TARGETS:
                body, scratch = narrow, s2
        return c.kernel(_indent(decl + body, 4), scratch=scratch, vector=True)
    # Where every tap that is summed holds a real code (no padding), or padding is
    # materialised as zx (im2col), -zx * sum(w) folds into the initial value and the
    # inner loop is a plain multiply-accumulate. Every partial sum is then the
    # accumulator of some valid input (code 0 at the taps not yet summed), so the
    # accumulator proof bounds it as well.
    folded = g.bias - zx * g.wv.sum(axis=1)
    out = outf("acc")
    if path == "im2col":
        d, init_expr = _table("B0", acc_t, folded)
        body, scratch = _conv_im2col_body(g, init_expr, out)
    elif path == "taps":
        d, fold_expr = _table("B0", acc_t, folded)
        d1, bias_expr = _table("B1", acc_t, g.bias)
        d += d1
        body, scratch = _conv_taps_body(g, fold_expr, bias_expr, out)
    else:
        d, init_expr = _table("B0", acc_t, folded if g.no_pad else g.bias)
        body, scratch = _conv_planes_body(g, acc_t, init_expr, out, g.no_pad)
    decl += d
    return c.kernel(_indent(f"#define ACC {acc_t}\n{decl}{body}\n#undef ACC", 4), scratch=scratch)


def _negate(expr: str) -> str:
    """-expr for a shift: a literal stays a literal (no "--5")."""
    return str(-int(expr)) if re.fullmatch(r"-?\d+", expr) else f"-{expr}"


def _epilogue_of(add) -> int:
    from qcc.passes.fuse_residual_add import fused_conv_operand

    return fused_conv_operand(add)


def fused_conv(add):
    """The quant.conv that `add` runs in the epilogue of (fuse-residual-add), or None."""
    if not isinstance(add, q.AddOp):
        return None
    i = _epilogue_of(add)
    if i is None or i not in (0, 1):
        return None
    conv = add.operands[i].owner
    if not isinstance(conv, q.ConvOp) or len(list(add.operands[i].uses)) != 1:
        raise QccError(f"{_where(add)}: qcc.epilogue_of names operand {i}, which is not a single-use quant.conv")
    return conv


def _add_codes(c: Ctx, op, y: Tensor, conv_code: str, res_code: str) -> str:
    """The statement writing ym[j] of the fused add from the convolution's output
    code (a C expression) and the other operand's code."""
    i = _epilogue_of(op)
    a, b = (c.t(v) for v in op.operands)
    codes = [conv_code, res_code] if i == 0 else [res_code, conv_code]
    lo, hi = _clamp_bounds(op)
    return _add_stmts(codes, a.qp, b.qp, y, lo, hi, "qa_", "qb_", "ym[j]")


def _add_stmts(codes, qa: nx.QParams, qb: nx.QParams, y: Tensor, lo: int, hi: int, va: str, vb: str,
               dst: str) -> str:
    """TFLite's quantized add of two codes (C expressions) into `dst`. Where every
    intermediate provably fits int32 (the shifted operands, their requantized
    values and their sum), the same requantizations run in 32-bit arithmetic
    (qcc_rq32_down / qcc_rq32, equal to qcc_requant32 on int32 accumulators),
    which vectorises; otherwise in 64-bit."""
    p = nx.add_params(qa, qb, y.qp)
    lsh = lit(1 << p["left_shift"])
    za, zb, zy = (lit(t.zero_point[0]) for t in (qa, qb, y.qp))
    spans = [max(t.qmax - int(t.zero_point[0]), int(t.zero_point[0]) - t.qmin) << p["left_shift"] for t in (qa, qb)]
    # |requantize32(x, m, s)| <= |x| * m * 2^(s - 31) + 1
    summed = sum(x * p[m] / 2.0 ** (31 - p[sh]) + 1 for x, m, sh in zip(spans, ("m_a", "m_b"), ("s_a", "s_b")))
    if max(spans) < (1 << 31) and summed < (1 << 31) - 2 and p["s_a"] <= 0 and p["s_b"] <= 0:
        fin = (f"qcc_rq32_down({va} + {vb}, {lit(p['m_y'])}, {-p['s_y']})" if p["s_y"] <= 0
               else f"qcc_rq32({va} + {vb}, {lit(p['m_y'])}, {p['s_y']})")
        return (f"const int32_t {va} = qcc_rq32_down(((int32_t){codes[0]} - {za}) * {lsh}, {lit(p['m_a'])}, "
                f"{-p['s_a']});\n"
                f"const int32_t {vb} = qcc_rq32_down(((int32_t){codes[1]} - {zb}) * {lsh}, {lit(p['m_b'])}, "
                f"{-p['s_b']});\n"
                f"{dst} = ({ctype(y.dtype)})qcc_clamp({fin} + {zy}, {lit(lo)}, {lit(hi)});")
    return (f"const int64_t {va} = qcc_requant32(((int64_t){codes[0]} - {za}) * {lsh}, "
            f"{lit(p['m_a'])}, {p['s_a']});\n"
            f"const int64_t {vb} = qcc_requant32(((int64_t){codes[1]} - {zb}) * {lsh}, "
            f"{lit(p['m_b'])}, {p['s_b']});\n"
            f"{dst} = ({ctype(y.dtype)})qcc_clamp(qcc_requant32({va} + {vb}, {lit(p['m_y'])}, {p['s_y']}) + "
            f"{zy}, {lit(lo)}, {lit(hi)});")


GEMM_MB = 4  # output channels per pass over a patch (four accumulators in registers)
GEMM_COL_BYTES = 16384  # patch rows gathered per block


def _kpad(k: int) -> int:
    """Patch length rounded up to 16 bytes: whole vectors, no remainder loop."""
    return max(16, -(-k // 16) * 16)


def _gemm_tables(wv: np.ndarray, folded: np.ndarray, G: int, Mg: int, K: int, Kp: int, bits: int) -> str:
    """Weights re-laid out as the dot products read them: per group, Mg rounded up
    to GEMM_MB rows of Kp codes (zero-padded), int8 or packed 2/4-bit; BF the
    folded initial accumulators in the same row order."""
    Mgp = -(-Mg // GEMM_MB) * GEMM_MB
    table = np.zeros((G, Mgp, Kp), np.int64)
    table[:, :Mg, :K] = wv.reshape(G, Mg, K)
    bf = np.zeros((G, Mgp), np.int64)
    bf[:, :Mg] = folded.reshape(G, Mg)
    if bits in (2, 4):
        decl = array("WP", "uint8_t", nx.pack(table, bits), 24, hexa=True)
    else:
        decl = array("W8", "int8_t", table.reshape(-1), 24)
    return decl + array("BF", "int32_t", bf.reshape(-1), 10)


def _gemm_core(*, G_index: str, Mg: int, Kp: int, nmax: int, bits: int, wbuf: bool, y_row: str, store: str) -> str:
    """For the `n` gathered patch rows in `col`: GEMM_MB output channels at a time,
    their dot products with each row (contiguous, vectorised), into `acc`; then
    per channel the requantization epilogue over the rows (`store`, writing
    `ym[j]`, `ym` set from `y_row`)."""
    Mgp = -(-Mg // GEMM_MB) * GEMM_MB
    MB = GEMM_MB
    if wbuf:
        unpack = "qcc_unpack4" if bits == 4 else "qcc_unpack2"
        wsetup = (f"for (int32_t k = 0; k < {MB * Kp}; k++) wb[k] = (int8_t){unpack}(WP, ({G_index} * {Mgp} + m0) "
                  f"* {Kp} + k);\nconst int8_t *wr = wb;")
    else:
        wsetup = f"const int8_t *wr = W8 + ({G_index} * {Mgp} + m0) * {Kp};"
    accs = ", ".join(f"a{i} = bf[{i}]" for i in range(MB))
    macs = " ".join(f"a{i} += v * wr[{i * Kp} + k];" if i else "a0 += v * wr[k];" for i in range(MB))
    saves = " ".join(f"acc[{i * nmax} + j] = a{i};" for i in range(MB))
    # DSP extension: four codes per word; SXTB16/UXTB16 split even and odd bytes into
    # 16-bit pairs, SMLAD multiplies both pairs and adds them to the accumulator
    dsp_w = (f"const uint32_t v0 = qcc_ld32(cj + k);\n"
             f"const uint32_t e0 = __uxtb16(v0), o0 = qcc_uxtb16_odd(v0);\n"
             + "\n".join(f"const uint32_t w{i}_ = qcc_ld32(wr + {i * Kp} + k);\n"
                         f"a{i} = __smlad(__sxtb16(w{i}_), e0, __smlad(qcc_sxtb16_odd(w{i}_), o0, a{i}));"
                         for i in range(MB)))
    return f"""\
for (int32_t m0 = 0; m0 < {Mgp}; m0 += {MB}) {{
    const int32_t *bf = BF + {G_index} * {Mgp} + m0;
{_indent(wsetup, 4)}
    for (int32_t j = 0; j < n; j++) {{
        const qcc_u8 *cj = col + j * {Kp};
        int32_t {accs};
#if defined(__ARM_FEATURE_DSP)
        for (int32_t k = 0; k < {Kp}; k += 4) {{
{_indent(dsp_w, 12)}
        }}
#else
        for (int32_t k = 0; k < {Kp}; k++) {{
            const int32_t v = cj[k];
            {macs}
        }}
#endif
        {saves}
    }}
    for (int32_t i = 0; i < {MB} && m0 + i < {Mg}; i++) {{
        const int32_t m = {G_index} * {Mg} + m0 + i;
        const qcc_i32 *ab = acc + i * {nmax};
        {y_row}
        for (int32_t j = 0; j < n; j++) {store}
    }}
}}"""


X86_CB = 16  # output channels per 512-bit vector of int32 accumulators
X86_NR = 8  # output positions per register tile (eight accumulators)
X86_SUB = 64  # positions per epilogue pass (their accumulators on the stack, channel-major)


def _gemm_x86(tables: str, core: str, *, wv: np.ndarray, folded: np.ndarray, G: int, Mg: int, K: int, Kp: int,
              G_index: str, y_row: str, store: str, wbuf: bool, ystride: int = 1) -> tuple[str, str]:
    """(tables, core) of `_gemm_tables`/`_gemm_core` with an x86-64 AVX-512 VNNI
    alternative selected by the preprocessor (QCC_X86_VNNI). Instead of one dot
    product per (channel, position), which ends in a horizontal sum, register
    tiles of X86_CB channels x X86_NR positions, every lane one output's exact
    int32 accumulator: per four patch bytes, one vector of the 16 channels'
    weights ([group][block][k / 4][channel][4], sub-byte codes unpacked at
    compile time) and per position one VPDPBUSD with the position's four bytes
    broadcast. The accumulators of up to X86_SUB positions go channel-major to
    the stack, so that the epilogue runs along positions (vectorised) as the
    portable core's does. Same unsigned codes, same folded initial values, same
    epilogue. (A PMADDWD form of the same tiles for AVX2/SSE2 measured no better
    than the portable core there.)"""
    CB, NR = X86_CB, X86_NR
    ncb = -(-Mg // CB)
    table = np.zeros((G, ncb * CB, Kp), np.int64)
    table[:, :Mg, :K] = wv.reshape(G, Mg, K)
    table = table.reshape(G, ncb, CB, Kp // 4, 4).transpose(0, 1, 3, 2, 4)
    bv = np.zeros((G, ncb * CB), np.int64)
    bv[:, :Mg] = folded.reshape(G, Mg)
    xt = array("WV", "int8_t", table.reshape(-1), 24) + array("BV", "int32_t", bv.reshape(-1), 10)
    accs = ", ".join(f"a{r} = bias" for r in range(NR))
    macs = "\n".join(f"a{r} = _mm512_dpbusd_epi32(a{r}, _mm512_set1_epi32((int)qcc_ld32(cj + {r * Kp} + k)), w);"
                     for r in range(NR))
    saves = " ".join(f"_mm512_storeu_si512(tl + {r * CB}, a{r});" for r in range(NR))
    S = X86_SUB
    vnni = f"""\
(void)acc;{" (void)wb;" if wbuf else ""}
for (int32_t cb = 0; cb < {ncb}; cb++) {{
    const int8_t *wc = WV + ({G_index} * {ncb} + cb) * {Kp * CB};
    const __m512i bias = _mm512_loadu_si512(BV + ({G_index} * {ncb} + cb) * {CB});
    for (int32_t js = 0; js < n; js += {S}) {{
        const int32_t ns = n - js < {S} ? n - js : {S};
        int32_t ta[{CB * S}], tl[{NR * CB}];
        for (int32_t j0 = 0; j0 < ns; j0 += {NR}) {{
            const int32_t nr = ns - j0 < {NR} ? ns - j0 : {NR};
            const qcc_u8 *cj = col + (js + j0) * {Kp};
            if (nr == {NR}) {{
                __m512i {accs};
                for (int32_t k = 0; k < {Kp}; k += 4) {{
                    const __m512i w = _mm512_loadu_si512(wc + k * {CB});
{_indent(macs, 20)}
                }}
                {saves}
            }} else {{
                for (int32_t r = 0; r < nr; r++) {{
                    __m512i a = bias;
                    for (int32_t k = 0; k < {Kp}; k += 4)
                        a = _mm512_dpbusd_epi32(a, _mm512_set1_epi32((int)qcc_ld32(cj + r * {Kp} + k)),
                                                _mm512_loadu_si512(wc + k * {CB}));
                    _mm512_storeu_si512(tl + r * {CB}, a);
                }}
            }}
            for (int32_t c = 0; c < {CB}; c++)
                for (int32_t r = 0; r < nr; r++) ta[c * {S} + j0 + r] = tl[r * {CB} + c];
        }}
        for (int32_t c = 0; c < {CB} && cb * {CB} + c < {Mg}; c++) {{
            const int32_t m = {G_index} * {Mg} + cb * {CB} + c;
            const int32_t *ab = ta + c * {S};
            {y_row}
            ym += js{f" * {ystride}" if ystride != 1 else ""};
            for (int32_t j = 0; j < ns; j++) {store}
        }}
    }}
}}"""
    return (f"#if QCC_X86_VNNI\n{xt}#else\n{tables}#endif\n",
            f"#if QCC_X86_VNNI\n{vnni}\n#else\n{core}\n#endif")



def _x86_vnni_or(other: tuple[str, int], vnni: tuple[str, int]) -> tuple[str, int]:
    """`vnni` (a body using the QCC_X86_VNNI tiles) where they exist, else `other`."""
    return f"#if QCC_X86_VNNI\n{vnni[0]}\n#else\n{other[0]}\n#endif", max(other[1], vnni[1])


def _gemm_scratch(nmax: int, Kp: int, wbuf: bool) -> tuple[str, int]:
    col_bytes = -(-nmax * Kp // 64) * 64
    acc_bytes = GEMM_MB * nmax * 4
    decl = (f"qcc_u8 *col = scratch;\nqcc_i32 *acc = (qcc_i32 *)(scratch + {col_bytes});\n"
            + (f"int8_t *wb = (int8_t *)(scratch + {col_bytes + acc_bytes});\n" if wbuf else ""))
    return decl, col_bytes + acc_bytes + (GEMM_MB * Kp if wbuf else 0)


def _conv_gemm_body(g: _Conv, store: str) -> tuple[str, int]:
    """Per group and block of output rows: gather every output position's patch
    as unsigned bytes (code + 128; padding is the zero point's byte), then
    `_gemm_core`. acc = (bias - (zx + 128) * sum(w)) + sum((x + 128) * w)."""
    zx = int(g.x.qp.zero_point[0])
    xt = atype(g.x.dtype)
    K, Kp = g.K, _kpad(g.K)
    bits = g.w.const_bits if g.w.const_bits in (2, 4) else 8
    folded = g.bias - (zx + 128) * g.wv.sum(axis=1)
    rb = max(1, min(g.OH, GEMM_COL_BYTES // max(g.OW * Kp, 1)))
    nmax = rb * g.OW
    sdecl, scratch = _gemm_scratch(nmax, Kp, bits != 8)
    pointwise = g.KH == g.KW == g.SH == g.SW == 1 and g.no_pad
    if not g.no_pad:
        fill = f"for (int32_t j = 0; j < n * {Kp}; j++) col[j] = {zx + 128};\n"
    elif Kp > K:
        fill = f"for (int32_t j = 0; j < n; j++)\n    for (int32_t k = {K}; k < {Kp}; k++) col[j * {Kp} + k] = 0;\n"
    else:
        fill = ""
    if pointwise:
        gather = f"""\
{fill}for (int32_t ci = 0; ci < {g.Cg}; ci++) {{
    const {xt} *xr = xg + ci * {g.H * g.W} + oh0 * {g.W};
    for (int32_t j = 0; j < n; j++) col[j * {Kp} + ci] = (qcc_u8)(xr[j] + 128);
}}"""
    else:
        gather = f"""\
{fill}for (int32_t ci = 0; ci < {g.Cg}; ci++)
for (int32_t kh = 0; kh < {g.KH}; kh++)
for (int32_t kw = 0; kw < {g.KW}; kw++) {{
    const int32_t t = (ci * {g.KH} + kh) * {g.KW} + kw;
{_indent(ow_bounds(g), 4)}
    for (int32_t r = 0; r < rows; r++) {{
        const int32_t ih = (oh0 + r) * {g.SH} - {g.PT} + kh * {g.DH};
        const {xt} *xr;
        qcc_u8 *cr = col + r * {g.OW * Kp} + t;
        if (ih < 0 || ih >= {g.H}) continue;
        xr = xg + ci * {g.H * g.W} + ih * {g.W};
        for (int32_t ow = ow_lo; ow < ow_hi; ow++) cr[ow * {Kp}] = (qcc_u8)(xr[ow * {g.SW} + dw] + 128);
    }}
}}"""
    y_row = f"{atype(g.y.dtype)} *ym = y + (b * {g.M} + m) * {g.OH * g.OW} + oh0 * {g.OW};"
    core = _gemm_core(G_index="gi", Mg=g.Mg, Kp=Kp, nmax=nmax, bits=bits, wbuf=bits != 8, y_row=y_row, store=store)
    tables, core = _gemm_x86(_gemm_tables(g.wv, folded, g.G, g.Mg, K, Kp, bits), core, wv=g.wv, folded=folded,
                             G=g.G, Mg=g.Mg, K=K, Kp=Kp, G_index="gi", y_row=y_row, store=store, wbuf=bits != 8)
    body = f"""\
{tables}{sdecl}for (int32_t b = 0; b < {g.N}; b++)
for (int32_t gi = 0; gi < {g.G}; gi++) {{
    const {xt} *xg = x + (b * {g.C} + gi * {g.Cg}) * {g.H * g.W};
    for (int32_t oh0 = 0; oh0 < {g.OH}; oh0 += {rb}) {{
        const int32_t rows = {g.OH} - oh0 < {rb} ? {g.OH} - oh0 : {rb};
        const int32_t n = rows * {g.OW};
{_indent(gather, 8)}
{_indent(core, 8)}
    }}
}}"""
    return body, scratch


PIX_K_MAX = 64  # patches up to this long: vectorise along output positions instead
PIX_MB = 4
PIX_MIN_POSITIONS = 256  # fewer positions per channel: dot products along the patch are faster (measured)


def _conv_pix_body(g: _Conv, store: str) -> tuple[str, int]:
    """Short patches (K <= PIX_K_MAX): per group and block of output rows, the
    patch taps are gathered tap-major (a pointwise convolution reads its input
    rows in place), then PIX_MB output channels at a time accumulate
    weight * row over all positions of the block, the inner loop along
    positions (vectorised with no horizontal sums). Padding holds the zero
    point, folded with it into the initial value: acc = (bias - zx * sum(w)) + sum(w * x)."""
    zx = int(g.x.qp.zero_point[0])
    xt = atype(g.x.dtype)
    K, MB = g.K, PIX_MB
    Mgp = -(-g.Mg // MB) * MB
    pointwise = g.KH == g.KW == g.SH == g.SW == 1 and g.no_pad
    rb = max(1, min(g.OH, GEMM_COL_BYTES // max(g.OW * (1 if pointwise else K), 1)))
    nmax = rb * g.OW
    col_bytes = 0 if pointwise else -(-nmax * K // 64) * 64
    table = np.zeros((g.G, Mgp, K), np.int64)
    table[:, :g.Mg] = g.wv.reshape(g.G, g.Mg, K)
    bf = np.zeros((g.G, Mgp), np.int64)
    bf[:, :g.Mg] = (g.bias - zx * g.wv.sum(axis=1)).reshape(g.G, g.Mg)
    decl = array("WT", "int8_t", table.reshape(-1), 24) + array("BF", "int32_t", bf.reshape(-1), 10)
    if pointwise:
        row = f"const {xt} *xr = xg + k * {g.H * g.W} + oh0 * {g.W};"
        gather = ""
    else:
        row = f"const {xt} *xr = col + k * {nmax};"
        fill = f"for (int32_t j = 0; j < {K} * {nmax}; j++) col[j] = {zx};\n" if not g.no_pad else ""
        gather = f"""\
{fill}for (int32_t ci = 0; ci < {g.Cg}; ci++)
for (int32_t kh = 0; kh < {g.KH}; kh++)
for (int32_t kw = 0; kw < {g.KW}; kw++) {{
    const int32_t t = (ci * {g.KH} + kh) * {g.KW} + kw;
{_indent(ow_bounds(g), 4)}
    for (int32_t r = 0; r < rows; r++) {{
        const int32_t ih = (oh0 + r) * {g.SH} - {g.PT} + kh * {g.DH};
        const {xt} *xs;
        {xt} *cr = col + t * {nmax} + r * {g.OW};
        if (ih < 0 || ih >= {g.H}) continue;
        xs = xg + ci * {g.H * g.W} + ih * {g.W};
        for (int32_t ow = ow_lo; ow < ow_hi; ow++) cr[ow] = xs[ow * {g.SW} + dw];
    }}
}}"""
    inits = "\n".join(f"for (int32_t j = 0; j < n; j++) acc[{i * nmax} + j] = BF[gi * {Mgp} + m0 + {i}];"
                      for i in range(MB))
    wl = ", ".join(f"wk{i} = WT[(gi * {Mgp} + m0 + {i}) * {K} + k]" for i in range(MB))
    macs = " ".join(f"acc[{i * nmax} + j] += wk{i} * v;" for i in range(MB))
    body = f"""\
{decl}{f"{xt} *col = ({xt} *)scratch;" if not pointwise else ""}
qcc_i32 *acc = (qcc_i32 *)(scratch + {col_bytes});
for (int32_t b = 0; b < {g.N}; b++)
for (int32_t gi = 0; gi < {g.G}; gi++) {{
    const {xt} *xg = x + (b * {g.C} + gi * {g.Cg}) * {g.H * g.W};
    for (int32_t oh0 = 0; oh0 < {g.OH}; oh0 += {rb}) {{
        const int32_t rows = {g.OH} - oh0 < {rb} ? {g.OH} - oh0 : {rb};
        const int32_t n = rows * {g.OW};
{_indent(gather, 8)}
        for (int32_t m0 = 0; m0 < {Mgp}; m0 += {MB}) {{
{_indent(inits, 12)}
            for (int32_t k = 0; k < {K}; k++) {{
                const int32_t {wl};
                {row}
                for (int32_t j = 0; j < n; j++) {{
                    const int32_t v = xr[j];
                    {macs}
                }}
            }}
            for (int32_t i = 0; i < {MB} && m0 + i < {g.Mg}; i++) {{
                const int32_t m = gi * {g.Mg} + m0 + i;
                const qcc_i32 *ab = acc + i * {nmax};
                {atype(g.y.dtype)} *ym = y + (b * {g.M} + m) * {g.OH * g.OW} + oh0 * {g.OW};
                for (int32_t j = 0; j < n; j++) {store}
            }}
        }}
    }}
}}"""
    return body, col_bytes + MB * nmax * 4


def _conv_dw_planar_body(g: _Conv, store: str) -> tuple[str, int]:
    """One input channel per output, for targets without wide SIMD: the channel's
    plane is copied into a scratch plane bordered with the zero point (when
    padded), then every output sums its KH*KW taps unrolled, without a bounds
    check, the weights in registers: acc = (bias - zx * sum(w)) + sum(w * x)."""
    zx = int(g.x.qp.zero_point[0])
    xt = atype(g.x.dtype)
    KT = g.KH * g.KW
    folded = g.bias - zx * g.wv.sum(axis=1)
    Hp = max(g.PT + g.H, (g.OH - 1) * g.SH + (g.KH - 1) * g.DH + 1)
    Wp = max(g.PL + g.W, (g.OW - 1) * g.SW + (g.KW - 1) * g.DW + 1)
    padded = not g.no_pad or Hp != g.H or Wp != g.W
    plane = -(-Hp * Wp // 64) * 64 if padded else 0
    d, fold_expr = _table("BP", "int32_t", folded)
    d += array("WQ", "int8_t", g.wv.reshape(-1), 24)  # its own copy: the other branch reads WD
    wload = "\n".join(f"const int32_t k{t} = WQ[m * {KT} + {t}];" for t in range(KT))
    rows = "\n".join(f"const {xt} *r{kh} = src + (oh * {g.SH} + {kh * g.DH}) * {Wp};" for kh in range(g.KH))
    terms = " + ".join(f"k{kh * g.KW + kw} * r{kh}[ow * {g.SW} + {kw * g.DW}]"
                       for kh in range(g.KH) for kw in range(g.KW))
    if padded:
        copy = f"""\
const {xt} *src = xq;
for (int32_t i = 0; i < {Hp * Wp}; i++) xq[i] = {zx};
for (int32_t ih = 0; ih < {g.H}; ih++) memcpy(xq + (ih + {g.PT}) * {Wp} + {g.PL}, xc + ih * {g.W}, {g.W} * sizeof(*xq));"""
    else:
        copy = f"const {xt} *src = xc;"
    body = f"""\
{d}{f"{xt} *xq = ({xt} *)scratch;" if padded else ""}
qcc_i32 *accp = (qcc_i32 *)(scratch + {plane});
for (int32_t b = 0; b < {g.N}; b++)
for (int32_t m = 0; m < {g.M}; m++) {{
    const {xt} *xc = x + (b * {g.C} + m / {g.Mg}) * {g.H * g.W};
{_indent(copy, 4)}
{_indent(wload, 4)}
    const int32_t b0 = {fold_expr};
    for (int32_t oh = 0; oh < {g.OH}; oh++) {{
{_indent(rows, 8)}
        qcc_i32 *ar = accp + oh * {g.OW};
        for (int32_t ow = 0; ow < {g.OW}; ow++) ar[ow] = b0 + {terms};
    }}
    {{
        const qcc_i32 *ab = accp;
        {atype(g.y.dtype)} *ym = y + (b * {g.M} + m) * {g.OH * g.OW};
        for (int32_t j = 0; j < {g.OH * g.OW}; j++) {store}
    }}
}}"""
    return body, plane + g.OH * g.OW * 4


DW_CB = 16  # channels per depthwise block: one vector of int32 accumulators
DW_PLANAR_MIN_PLANE = 576  # input planes this large take the planar loops on wide SIMD too (measured)


def _conv_dw_body(g: _Conv, store: str) -> tuple[str, int]:
    """One input channel per output, DW_CB output channels at a time: their
    input planes are interleaved channel-innermost into a scratch plane
    bordered with the zero point, so every output position sums all KH*KW taps
    without a bounds check and each tap is one vector operation across the
    block's channels: acc = (bias - zx * sum(w)) + sum(w * x). Weights are
    re-laid out [block][tap][channel] at compile time."""
    zx = int(g.x.qp.zero_point[0])
    xt = atype(g.x.dtype)
    KT, CB = g.KH * g.KW, DW_CB
    nblk = -(-g.M // CB)
    Hp = max(g.PT + g.H, (g.OH - 1) * g.SH + (g.KH - 1) * g.DH + 1)
    Wp = max(g.PL + g.W, (g.OW - 1) * g.SW + (g.KW - 1) * g.DW + 1)
    wd = np.zeros((nblk * CB, KT), np.int64)
    wd[:g.M] = g.wv
    wd = wd.reshape(nblk, CB, KT).transpose(0, 2, 1)
    bf = np.zeros(nblk * CB, np.int64)
    bf[:g.M] = g.bias - zx * g.wv.sum(axis=1)
    plane = -(-Hp * Wp * CB // 64) * 64
    P = g.OH * g.OW
    decl = array("WD", "int8_t", wd.reshape(-1), 16) + array("BF", "int32_t", bf, 10)
    body = f"""\
{decl}{xt} *xp = ({xt} *)scratch;
qcc_i32 *acc = (qcc_i32 *)(scratch + {plane});
for (int32_t b = 0; b < {g.N}; b++)
for (int32_t blk = 0; blk < {nblk}; blk++) {{
    const int32_t nc = {g.M} - blk * {CB} < {CB} ? {g.M} - blk * {CB} : {CB};
    for (int32_t i = 0; i < {Hp * Wp * CB}; i++) xp[i] = {zx};
    for (int32_t c = 0; c < nc; c++) {{
        const {xt} *xc = x + (b * {g.C} + (blk * {CB} + c) / {g.Mg}) * {g.H * g.W};
        for (int32_t ih = 0; ih < {g.H}; ih++)
        for (int32_t iw = 0; iw < {g.W}; iw++)
            xp[((ih + {g.PT}) * {Wp} + iw + {g.PL}) * {CB} + c] = xc[ih * {g.W} + iw];
    }}
    for (int32_t oh = 0; oh < {g.OH}; oh++)
    for (int32_t ow = 0; ow < {g.OW}; ow++) {{
        int32_t a[{CB}];
        for (int32_t c = 0; c < {CB}; c++) a[c] = BF[blk * {CB} + c];
        for (int32_t kh = 0; kh < {g.KH}; kh++)
        for (int32_t kw = 0; kw < {g.KW}; kw++) {{
            const {xt} *xv = xp + ((oh * {g.SH} + kh * {g.DH}) * {Wp} + ow * {g.SW} + kw * {g.DW}) * {CB};
            const int8_t *wv = WD + (blk * {KT} + kh * {g.KW} + kw) * {CB};
            for (int32_t c = 0; c < {CB}; c++) a[c] += (int32_t)wv[c] * (int32_t)xv[c];
        }}
        for (int32_t c = 0; c < {CB}; c++) acc[(oh * {g.OW} + ow) * {CB} + c] = a[c];
    }}
    for (int32_t c = 0; c < nc; c++) {{
        const int32_t m = blk * {CB} + c;
        {atype(g.y.dtype)} *ym = y + (b * {g.M} + m) * {P};
        for (int32_t j = 0; j < {P}; j++) {{
            const int32_t aj = acc[j * {CB} + c];
            {store.replace("ab[j]", "aj")}
        }}
    }}
}}"""
    return body, plane + P * CB * 4


def _conv_taps_body(g: _Conv, fold_expr: str, bias_expr: str, out: str) -> tuple[str, int]:
    """One input channel per output channel: per output row, the interior
    (every tap inside the input) sums its KH*KW taps unrolled with the weights in
    registers; border positions sum their valid taps with bounds checks."""
    x, w = g.x, g.w
    zx = x.qp.zero_point[0]
    xt = atype(x.dtype)
    KT = g.KH * g.KW
    acc_p = "qcc_i32" if g.acc_bits == 32 else "qcc_i64"
    # interior ranges: every tap of output (oh, ow) lies inside the input
    oh_lo = -(-g.PT // g.SH)
    oh_hi = max(oh_lo, min(g.OH, (g.H - 1 - (g.KH - 1) * g.DH + g.PT) // g.SH + 1))
    ow_lo = -(-g.PL // g.SW)
    ow_hi = max(ow_lo, min(g.OW, (g.W - 1 - (g.KW - 1) * g.DW + g.PL) // g.SW + 1))
    wload = "\n".join(f"const ACC k{t} = {wget(w, f'm * {KT} + {t}')};" for t in range(KT))
    rows = "\n".join(f"const {xt} *x{kh} = xc + (oh * {g.SH} + {kh * g.DH - g.PT}) * {g.W};"
                     for kh in range(g.KH))
    terms = " + ".join(f"k{kh * g.KW + kw} * (ACC)x{kh}[ow * {g.SW} + {kw * g.DW - g.PL}]"
                       for kh in range(g.KH) for kw in range(g.KW))
    border = f"""\
{{
    ACC a = {bias_expr};
    for (int32_t kh = 0; kh < {g.KH}; kh++) {{
        const int32_t ih = oh * {g.SH} - {g.PT} + kh * {g.DH};
        if (ih < 0 || ih >= {g.H}) continue;
        for (int32_t kw = 0; kw < {g.KW}; kw++) {{
            const int32_t iw = ow * {g.SW} - {g.PL} + kw * {g.DW};
            if (iw < 0 || iw >= {g.W}) continue;
            a += kk[kh * {g.KW} + kw] * ((ACC)xc[ih * {g.W} + iw] - {lit(zx)});
        }}
    }}
    acc[ow] = a;
}}"""
    body = f"""\
{acc_p} *acc = ({acc_p} *)scratch;
for (int32_t b = 0; b < {g.N}; b++)
for (int32_t m = 0; m < {g.M}; m++) {{
    const {xt} *xc = x + (b * {g.C} + m / {g.Mg}) * {g.H * g.W};
{_indent(wload, 4)}
    const ACC kk[{KT}] = {{{", ".join(f"k{t}" for t in range(KT))}}};
    for (int32_t oh = 0; oh < {g.OH}; oh++) {{
        {atype(g.y.dtype)} *ym = y + ((b * {g.M} + m) * {g.OH} + oh) * {g.OW};
        if (oh >= {oh_lo} && oh < {oh_hi}) {{
{_indent(rows, 12)}
            for (int32_t ow = 0; ow < {ow_lo}; ow++)
{_indent(border, 16)}
            for (int32_t ow = {ow_lo}; ow < {ow_hi}; ow++)
                acc[ow] = {fold_expr} + {terms};
            for (int32_t ow = {ow_hi}; ow < {g.OW}; ow++)
{_indent(border, 16)}
        }} else {{
            for (int32_t ow = 0; ow < {g.OW}; ow++)
{_indent(border, 16)}
        }}
        for (int32_t j = 0; j < {g.OW}; j++) {{
            const ACC acc_j = acc[j];
            {out.replace("(acc,", "(acc_j,")}
        }}
    }}
}}"""
    return body, g.OW * (4 if g.acc_bits == 32 else 8)


def ow_bounds(g: ConvGeometry) -> str:
    """C lines defining `dw` and [ow_lo, ow_hi): the output columns whose tap `kw`
    falls inside the input row (the others read padding)."""
    return (f"const int32_t dw = kw * {g.DW} - {g.PL};\n"
            f"const int32_t ow_lo = dw >= 0 ? 0 : (-dw + {g.SW - 1}) / {g.SW};\n"
            f"const int32_t ow_n = dw > {g.W - 1} ? 0 : ({g.W - 1} - dw) / {g.SW} + 1;\n"
            f"const int32_t ow_hi = ow_n < {g.OW} ? ow_n : {g.OW};")


def _conv_planes_body(g: _Conv, acc_t: str, init_expr: str, out: str, fold: bool) -> tuple[str, int]:
    """Per output channel, accumulate blocks of output rows: for every weight,
    one pass over the rows it touches (the inner loop runs along a row)."""
    x, w = g.x, g.w
    zx = x.qp.zero_point[0]
    xterm = "(ACC)xr[{i}]" if fold else f"((ACC)xr[{{i}}] - {lit(zx)})"
    rb = max(1, min(g.OH, ROW_BLOCK // max(g.OW, 1)))
    xt = atype(x.dtype)
    if g.KH == g.KW == g.SH == g.SW == 1 and g.no_pad:  # pointwise: rows are contiguous
        # four input channels per pass over the accumulators (fold holds: no padding)
        taps = f"""\
int32_t ci = 0;
for (; ci + 4 <= {g.Cg}; ci += 4) {{
    const ACC wa = {wget(w, f"m * {g.Cg} + ci")}, wb = {wget(w, f"m * {g.Cg} + ci + 1")};
    const ACC wc = {wget(w, f"m * {g.Cg} + ci + 2")}, wd = {wget(w, f"m * {g.Cg} + ci + 3")};
    const {xt} *xa = xg + ci * {g.H * g.W} + oh0 * {g.W};
    const {xt} *xb = xa + {g.H * g.W}, *xc = xb + {g.H * g.W}, *xd = xc + {g.H * g.W};
    for (int32_t j = 0; j < n; j++) acc[j] += wa * (ACC)xa[j] + wb * (ACC)xb[j] + wc * (ACC)xc[j] + wd * (ACC)xd[j];
}}
for (; ci < {g.Cg}; ci++) {{
    const ACC wv = {wget(w, f"m * {g.Cg} + ci")};
    const {xt} *xr = xg + ci * {g.H * g.W} + oh0 * {g.W};
    for (int32_t j = 0; j < n; j++) acc[j] += wv * (ACC)xr[j];
}}"""
    else:
        taps = f"""\
for (int32_t ci = 0; ci < {g.Cg}; ci++)
for (int32_t kh = 0; kh < {g.KH}; kh++)
for (int32_t kw = 0; kw < {g.KW}; kw++) {{
    const ACC wv = {wget(w, f"((m * {g.Cg} + ci) * {g.KH} + kh) * {g.KW} + kw")};
{_indent(ow_bounds(g), 4)}
    if (wv == 0) continue;
    for (int32_t r = 0; r < rows; r++) {{
        const int32_t ih = (oh0 + r) * {g.SH} - {g.PT} + kh * {g.DH};
        const {xt} *xr;
        ACC *ar = acc + r * {g.OW};
        if (ih < 0 || ih >= {g.H}) continue;
        xr = xg + ci * {g.H * g.W} + ih * {g.W};
        for (int32_t ow = ow_lo; ow < ow_hi; ow++) ar[ow] += wv * {xterm.format(i=f"ow * {g.SW} + dw")};
    }}
}}"""
    body = f"""\
{"qcc_i32" if g.acc_bits == 32 else "qcc_i64"} *acc = ({"qcc_i32" if g.acc_bits == 32 else "qcc_i64"} *)scratch;
for (int32_t b = 0; b < {g.N}; b++)
for (int32_t m = 0; m < {g.M}; m++) {{
    const {xt} *xg = x + (b * {g.C} + (m / {g.Mg}) * {g.Cg}) * {g.H * g.W};
    for (int32_t oh0 = 0; oh0 < {g.OH}; oh0 += {rb}) {{
        const int32_t rows = {g.OH} - oh0 < {rb} ? {g.OH} - oh0 : {rb};
        const int32_t n = rows * {g.OW};
        {atype(g.y.dtype)} *ym = y + (b * {g.M} + m) * {g.OH * g.OW} + oh0 * {g.OW};
        for (int32_t j = 0; j < n; j++) acc[j] = {init_expr};
{_indent(taps, 8)}
        for (int32_t j = 0; j < n; j++) {{
            const ACC acc_j = acc[j];
            {out.replace("(acc,", "(acc_j,")}
        }}
    }}
}}"""
    return body, rb * g.OW * (4 if g.acc_bits == 32 else 8)


def _conv_im2col_body(g: _Conv, init_expr: str, out: str) -> tuple[str, int]:
    """Per group and block of output rows, gather every output position's
    patch (padding as the zero point) into a contiguous row of K codes; then each
    output is one contiguous dot product with its channel's weight row."""
    x, w = g.x, g.w
    zx = x.qp.zero_point[0]
    xt, xs = atype(x.dtype), x.dtype.itemsize
    K = g.K
    rb = max(1, min(g.OH, 8192 // max(g.OW * K, 1)))
    col_bytes = rb * g.OW * K * xs
    unpack = w.const_bits in (2, 4)
    wt = "int8_t" if w.dtype.itemsize == 1 else ctype(w.dtype)
    wrow_off = (col_bytes + 15) // 16 * 16
    scratch = wrow_off + (K * np.dtype(w.dtype).itemsize if unpack else 0)
    fill = ""
    if not g.no_pad:
        fill = f"for (int32_t j = 0; j < n * {K}; j++) col[j] = {lit(zx)};\n"
    gather = f"""\
{fill}for (int32_t ci = 0; ci < {g.Cg}; ci++)
for (int32_t kh = 0; kh < {g.KH}; kh++)
for (int32_t kw = 0; kw < {g.KW}; kw++) {{
    const int32_t t = (ci * {g.KH} + kh) * {g.KW} + kw;
{_indent(ow_bounds(g), 4)}
    for (int32_t r = 0; r < rows; r++) {{
        const int32_t ih = (oh0 + r) * {g.SH} - {g.PT} + kh * {g.DH};
        const {xt} *xr;
        {xt} *cr = col + r * {g.OW * K} + t;
        if (ih < 0 || ih >= {g.H}) continue;
        xr = xg + ci * {g.H * g.W} + ih * {g.W};
        for (int32_t ow = ow_lo; ow < ow_hi; ow++) cr[ow * {K}] = xr[ow * {g.SW} + dw];
    }}
}}"""
    if unpack:
        wrow = f"""\
const {wt} *wr = wrow;
for (int32_t k = 0; k < {K}; k++) wrow[k] = ({wt}){wget(w, f"m * {K} + k")};"""
    else:
        wrow = f"const {wt} *wr = {w.const} + m * {K};"
    body = f"""\
{xt} *col = ({xt} *)scratch;
{f"{wt} *wrow = ({wt} *)(scratch + {wrow_off});" if unpack else ""}
for (int32_t b = 0; b < {g.N}; b++)
for (int32_t gi = 0; gi < {g.G}; gi++) {{
    const {xt} *xg = x + (b * {g.C} + gi * {g.Cg}) * {g.H * g.W};
    for (int32_t oh0 = 0; oh0 < {g.OH}; oh0 += {rb}) {{
        const int32_t rows = {g.OH} - oh0 < {rb} ? {g.OH} - oh0 : {rb};
        const int32_t n = rows * {g.OW};
{_indent(gather, 8)}
        for (int32_t m = gi * {g.Mg}; m < (gi + 1) * {g.Mg}; m++) {{
            {atype(g.y.dtype)} *ym = y + (b * {g.M} + m) * {g.OH * g.OW} + oh0 * {g.OW};
{_indent(wrow, 12)}
            for (int32_t j = 0; j < n; j++) {{
                const {xt} *cj = col + j * {K};
                ACC acc = {init_expr};
                for (int32_t k = 0; k < {K}; k++) acc += (ACC)wr[k] * cj[k];
                {out}
            }}
        }}
    }}
}}"""
    return body, scratch


@_gen(q.FullyConnectedOp)
def _fully_connected(c: Ctx, op) -> Kernel:
    x, w, y = c.t(op.operands[0]), c.t(op.operands[1]), c.t(op.results[0])
    wv = _const_values(op, 1).astype(np.int64)
    bias = _const_values(op, 2).astype(np.int64).reshape(-1) if len(op.operands) > 2 else np.zeros(1, np.int64)
    acc_bits = op.attr("acc_bits")
    req = _requant_fn(acc_bits)
    acc_t = "int32_t" if acc_bits == 32 else "int64_t"
    N, K = w.shape
    rows = x.size // K
    zx, zy = x.qp.zero_point[0], y.qp.zero_point[0]
    lo, hi = _clamp_bounds(op)
    decl, m0, sh = _multiplier_tables(x.qp.scale[0] * np.asarray(w.qp.scale) / y.qp.scale[0], N, acc_bits)
    bias = np.broadcast_to(bias, (N,))
    if acc_bits == 32 and x.dtype == np.int8 and y.dtype.itemsize <= 2 and _u8_sums_fit(wv, bias, int(zx)):
        c.inp("x", x), c.out("y", y), c.scratch("scratch", "qcc_u8")
        if w.const_bits in (2, 4) or not _mcu_sums_fit(wv, bias, int(zx)):
            body, scratch = _fc_gemm_body(x, w, y, wv, bias, rows, N, K, decl, m0, sh, zx, zy, lo, hi)
        else:  # wide SIMD's loops, or the microcontroller kernels
            body, scratch = _with_mcu(c.target, _fc_gemm_body(x, w, y, wv, bias, rows, N, K, "", m0, sh, zx, zy, lo,
                                                               hi),
                                      lambda: _mcu_fc(x, w, y, wv, bias, rows, N, K, m0, sh, zy, lo, hi))
            body = decl + body
        return c.kernel(_indent(body, 4), scratch=scratch, vector=True)
    d, init_expr = _table("B0", acc_t, bias - zx * wv.sum(axis=1))  # no padding: fold zx
    decl += d
    c.inp("x", x), c.out("y", y)
    if w.const_bits == 4 and K % 2 == 0:  # two codes per byte, row starts on a byte
        dot = f"""\
const uint8_t *wp = {w.const} + m * {K // 2};
for (int32_t k = 0; k < {K // 2}; k++) {{
    const int32_t lo4 = (wp[k] & 15) - ((wp[k] & 8) << 1), hi4 = (wp[k] >> 4) - ((wp[k] & 128) >> 3);
    acc += (ACC)xr[2 * k] * lo4 + (ACC)xr[2 * k + 1] * hi4;
}}"""
    else:
        dot = f"for (int32_t k = 0; k < {K}; k++) acc += (ACC)xr[k] * {wget(w, f'm * {K} + k')};"
    body = f"""\
#define ACC {acc_t}
{decl}for (int32_t r = 0; r < {rows}; r++) {{
    const {atype(x.dtype)} *xr = x + r * {K};
    for (int32_t m = 0; m < {N}; m++) {{
        ACC acc = {init_expr};
{_indent(dot, 8)}
        y[r * {N} + m] = ({ctype(y.dtype)})qcc_clamp({req}(acc, {m0}, {sh}) + {lit(zy)}, {lit(lo)}, {lit(hi)});
    }}
}}
#undef ACC"""
    return c.kernel(_indent(body, 4))


def _fc_gemm_body(x, w, y, wv, bias, rows, N, K, decl, m0, sh, zx, zy, lo, hi) -> tuple[str, int]:
    """Fully connected on 8-bit codes: blocks of input rows as unsigned bytes
    (code + 128, padded to Kp), then `_gemm_core` (N output channels, one group)."""
    Kp = _kpad(K)
    bits = w.const_bits if w.const_bits in (2, 4) else 8
    rb = max(1, min(rows, GEMM_COL_BYTES // Kp))
    sdecl, scratch = _gemm_scratch(rb, Kp, bits != 8)
    shifts = nx.quantize_multipliers(np.asarray(x.qp.scale[0] * np.asarray(w.qp.scale) / y.qp.scale[0],
                                                np.float64).reshape(-1))[1]
    rq, sh = ("qcc_rq32_down", _negate(sh)) if np.all(shifts <= 0) else ("qcc_rq32", sh)
    store = (f"ym[j * {N}] = ({ctype(y.dtype)})qcc_clamp({rq}(ab[j], {m0}, {sh}) + {lit(zy)}, "
             f"{lit(lo)}, {lit(hi)});")
    y_row = f"{atype(y.dtype)} *ym = y + r0 * {N} + m;"
    core = _gemm_core(G_index="0", Mg=N, Kp=Kp, nmax=rb, bits=bits, wbuf=bits != 8, y_row=y_row, store=store)
    folded = bias - (int(zx) + 128) * wv.sum(axis=1)
    tables, core = _gemm_x86(_gemm_tables(wv, folded, 1, N, K, Kp, bits), core, wv=wv, folded=folded, G=1, Mg=N,
                             K=K, Kp=Kp, G_index="0", y_row=y_row, store=store, wbuf=bits != 8, ystride=N)
    tail = f"\n    for (int32_t k = {K}; k < {Kp}; k++) col[j * {Kp} + k] = 0;" if Kp > K else ""
    body = f"""\
{decl}{tables}{sdecl}\
for (int32_t r0 = 0; r0 < {rows}; r0 += {rb}) {{
    const int32_t n = {rows} - r0 < {rb} ? {rows} - r0 : {rb};
    for (int32_t j = 0; j < n; j++) {{
        const {atype(x.dtype)} *xr = x + (r0 + j) * {K};
        for (int32_t k = 0; k < {K}; k++) col[j * {Kp} + k] = (qcc_u8)(xr[k] + 128);{tail}
    }}
{_indent(core, 4)}
}}"""
    return body, scratch


# ------------------------------------------------------------ microcontrollers

# Register blocks of the microcontroller dot-product kernels, (positions, channels):
# with the DSP extension 2x2 (each loaded operand pair feeds two SMLADs, four
# accumulators: what fits Thumb-2's registers); without SIMD (rv32) 3x4 (each
# weight load feeds three multiply-adds, each activation load four; 4x4 spills
# with gcc 12, measured).
# A fully connected layer has one position per sample: channels only.
MCU_BLOCKS = {"dsp": (2, 2), "scalar": (3, 4)}
MCU_FC_BLOCKS = {"dsp": (1, 4), "scalar": (1, 8)}
MCU_TARGETS = ("cortex-m4", "cortex-m7", "rv32imac")


def _mcu_weight_table(name: str, wv: np.ndarray, G: int, Mg: int, K: int, MB: int) -> tuple[str, int, int]:
    """(declaration, Mgp, Kp) of the weights in the order the register blocks read
    them: per group and block of MB channels (a multiple of every variant's
    block), per four patch codes, the MB channels' four int8 weights, each four
    stored as (w0, w2, w1, w3) so that SXTB16 and SXTB16-ROR-8 of one word give
    the pairs (w0, w1) and (w2, w3) that SMLAD multiplies with the activation
    pairs (x0, x1) and (x2, x3). One table serves every variant."""
    Mgp, Kp = -(-Mg // MB) * MB, max(4, -(-K // 4) * 4)
    t = np.zeros((G, Mgp, Kp), np.int64)
    t[:, :Mg, :K] = wv.reshape(G, Mg, K)
    t = t.reshape(G, Mgp // MB, MB, Kp // 4, 4).transpose(0, 1, 3, 2, 4)[..., [0, 2, 1, 3]]
    return array(name, "int8_t", t.reshape(-1), 24), Mgp, Kp


def _mcu_tile(variant: str, NP: int, MB: int, Kp: int, TB: int) -> str:
    """The dot products of NP gathered patches (int16 codes at `cp + i * Kp`,
    8-byte aligned) with MB channels' weights (from `wp`, `_mcu_weight_table`'s
    order with blocks of TB channels) from the initial values `bp[c]` into
    accumulators a<i>_<c>. Per four patch codes: with the DSP extension, per
    position two words of code pairs, per channel one word of weights split by
    SXTB16 into two pairs, two SMLADs per (position, channel), two such steps
    per loop iteration; without, per code the positions' codes and the channels'
    weights once each, then every product."""
    inits = ", ".join(f"a{i}_{c} = bp[{c}]" for i in range(NP) for c in range(MB))

    def dsp_step(o: int) -> list[str]:  # codes k + 4o .. k + 4o + 3
        lines = [f"const uint32_t x{i}a = xw[{(i * Kp) // 2 + 2 * o}], x{i}b = xw[{(i * Kp) // 2 + 2 * o + 1}];"
                 for i in range(NP)]
        for c in range(MB):
            lines.append(f"const uint32_t w{c}_ = qcc_ld32(wk + {4 * (o * TB + c)}), "
                         f"w{c}l = __sxtb16(w{c}_), w{c}h = qcc_sxtb16_odd(w{c}_);")
            lines += [f"a{i}_{c} = __smlad(x{i}a, w{c}l, a{i}_{c}); a{i}_{c} = __smlad(x{i}b, w{c}h, a{i}_{c});"
                      for i in range(NP)]
        return ["{", *("    " + x for x in lines), "}"]

    if variant == "dsp":  # the words of the patches (qcc_u32 may alias the int16 codes)
        u = 2 if NP > 1 else 1  # steps per iteration: one position leaves no registers for two
        main = Kp // (4 * u) * 4 * u
        tail = "" if main == Kp else "\n" + "\n".join(dsp_step(0))
        return f"""\
int32_t {inits};
const int8_t *wk = wp;
const qcc_u32 *xw = (const qcc_u32 *)cp;
for (int32_t k = 0; k < {main}; k += {4 * u}, wk += {4 * u * TB}, xw += {2 * u}) {{
{_indent(chr(10).join(sum((dsp_step(o) for o in range(u)), [])), 4)}
}}{tail}"""
    # signed sums (every partial sum fits, _mcu_sums_fit): gcc keeps the order, no spills
    lines = []
    for t, s in enumerate((0, 2, 1, 3)):  # natural code t is stored at s within its four
        step = [" ".join(f"const int32_t x{i} = cp[{i * Kp} + k + {t}];" for i in range(NP))]
        step += [f"const int32_t w{c} = wk[{4 * c + s}];" for c in range(MB)]
        step += [" ".join(f"a{i}_{c} += x{i} * w{c};" for i in range(NP)) for c in range(MB)]
        lines.append("{\n" + _indent("\n".join(step), 4) + "\n}\nQCC_MCU_STEP();")
    return f"""\
int32_t {inits};
const int8_t *wk = wp;
for (int32_t k = 0; k < {Kp}; k += 4, wk += {4 * TB}) {{
{_indent(chr(10).join(lines), 4)}
}}"""


def _mcu_epilogue(NP: int, MB: int, Mg: int, m_base: str, j_base: str, j_limit: str | None, y_row: str,
                  store: str, variant: str) -> str:
    """Requantize and store every accumulator of a tile: output channel `m_base + c`
    (skipped past Mg), position `j_base + i` (skipped at `j_limit`)."""
    out = []
    for c in range(MB):
        for i in range(NP):
            conds = [f"mb + {c} < {Mg}"] if Mg % MB else []
            if i and j_limit is not None:
                conds.append(f"{j_base} + {i} < {j_limit}")
            av = f"a{i}_{c}"
            stmt = (f"{{\n    const int32_t m = {m_base} + {c}, j = {j_base} + {i}, av = {av};\n"
                    f"    {y_row}\n{_indent(_saturating(store, variant).replace('ab[j]', 'av'), 4)}\n}}")
            out.append(f"if ({' && '.join(conds)}) {stmt}" if conds else stmt)
    return "\n".join(out)


def _mcu_ok(g: _Conv) -> bool:
    """The microcontroller kernels take 8-bit weights (sub-byte ones keep their packed
    tables, and the gemm path's unpacking, rather than doubling their flash)."""
    return _codes8(g) and g.w.const_bits not in (2, 4) and _mcu_sums_fit(g.wv, g.bias, int(g.x.qp.zero_point[0]))


def _mcu_sums_fit(wv: np.ndarray, bias: np.ndarray, zx: int) -> bool:
    """Every partial sum (bias - zx * sum(w)) + sum over some taps of w * x, |x| <= 128,
    fits int32: the microcontroller kernels accumulate in int32 in any tap order."""
    folded = bias - zx * wv.sum(axis=1)
    return int((128 * np.abs(wv).sum(axis=1) + np.abs(folded)).max()) < (1 << 31) - 1


def _saturating(store: str, variant: str) -> str:
    """`store` with its int8 clamp to [lo, 127] as SSAT (and one compare when lo > -128)
    on the DSP extension."""
    m = re.fullmatch(r"ym\[(.*?)\] = \(int8_t\)qcc_clamp\((.*), (-?\d+), 127\);", store)
    if variant != "dsp" or m is None:
        return store
    return f"ym[{m.group(1)}] = (int8_t)qcc_ssat8({m.group(2)}, {m.group(3)});"


def _mcu_conv(g: _Conv, store: str) -> tuple[str, int]:
    """Convolution for microcontrollers, per group: blocks of NP output positions
    (in one output row) gathered as int16 patches - from a copy of the KH input
    rows the output row reads, bordered with the zero point, so that the gather
    needs no bounds checks; a pointwise convolution reads its channel columns
    directly - then `_mcu_tile` per block of MB channels and the requantization
    epilogue straight from the registers. Scratch: the NP patches and the rows,
    a small fraction of an activation. acc = (bias - zx * sum(w)) + sum(w * x)."""
    zx = int(g.x.qp.zero_point[0])
    TB = max(mb for _, mb in MCU_BLOCKS.values())
    wdecl, Mgp, Kp = _mcu_weight_table("WM", g.wv, g.G, g.Mg, g.K, TB)
    bf = np.zeros((g.G, Mgp), np.int64)
    bf[:, :g.Mg] = (g.bias - zx * g.wv.sum(axis=1)).reshape(g.G, g.Mg)
    return _mcu_both(wdecl + array("BM", "int32_t", bf.reshape(-1), 10),
                     lambda v: _mcu_conv_variant(g, store, v, Mgp, Kp, TB))


def _mcu_conv_variant(g: _Conv, store: str, variant: str, Mgp: int, Kp: int, TB: int) -> tuple[str, int]:
    zx = int(g.x.qp.zero_point[0])
    xt = atype(g.x.dtype)
    NP, MB = MCU_BLOCKS[variant]
    P = g.OH * g.OW
    pointwise = g.KH == g.KW == g.SH == g.SW == 1 and g.no_pad
    col_bytes = -(-(NP * Kp + 2) * 2 // 8) * 8  # slack: the word copies' last extra code
    Wp = max(g.PL + g.W, (g.OW - 1) * g.SW + (g.KW - 1) * g.DW + 1)
    tile = _mcu_tile(variant, NP, MB, Kp, TB)
    ym = f"{atype(g.y.dtype)} *ym = y + (b * {g.M} + m) * {P};"
    if pointwise:  # positions in order; the patch is a strided channel column
        epi = _mcu_epilogue(NP, MB, g.Mg, f"gi * {g.Mg} + mb", "p0", str(P) if P % NP else None, ym, store, variant)
        gather = "\n".join(f"{{ const {xt} *xs = xg + (p0 + {i} < {P} ? p0 + {i} : {P - 1}); "
                           f"for (int32_t ci = 0; ci < {g.Cg}; ci++) col[{i * Kp} + ci] = xs[ci * {P}]; }}"
                           for i in range(NP))
        loops = f"""\
for (int32_t p0 = 0; p0 < {P}; p0 += {NP}) {{
{_indent(gather, 4)}
    for (int32_t mb = 0; mb < {-(-g.Mg // MB) * MB}; mb += {MB}) {{
        const int8_t *wp = WM + (gi * {Mgp} + mb / {TB} * {TB}) * {Kp} + mb % {TB} * 4;
        const int32_t *bp = BM + gi * {Mgp} + mb;
        const qcc_i16 *cp = col;
{_indent(tile, 8)}
{_indent(epi, 8)}
    }}
}}"""
        row_bytes = 0
    else:  # per output row, the KH input rows of each channel bordered with the zero point
        row_bytes = -(-(g.Cg * g.KH * Wp + 2) * 2 // 8) * 8
        epi = _mcu_epilogue(NP, MB, g.Mg, f"gi * {g.Mg} + mb", f"oh * {g.OW} + ow0",
                            f"oh * {g.OW} + {g.OW}" if g.OW % NP else None, ym, store, variant)
        taps = " ".join(f"d[{kw}] = s[{kw * g.DW}];" for kw in range(g.KW))
        if variant == "dsp" and g.DW == 1:  # pairs of taps as words (unaligned LDR/STR); an odd
            # last tap copies one code too many, which the next row overwrites or lands in the
            # zero-weight tail / the slack after the patches
            taps = " ".join(f"memcpy(d + {kw}, s + {kw}, 4);" for kw in range(0, g.KW, 2))
        gather = "\n".join(f"""\
{{
    const int32_t q = ow0 + {i} < {g.OW} ? ow0 + {i} : {g.OW - 1};
    for (int32_t r = 0; r < {g.Cg * g.KH}; r++) {{
        const qcc_i16 *s = rows + r * {Wp} + q * {g.SW};
        qcc_i16 *d = col + {i * Kp} + r * {g.KW};
        {taps}
    }}
}}""" for i in range(NP))
        pad_l = f"for (int32_t i = 0; i < {g.PL}; i++) d[i] = {zx};\n" if g.PL else ""
        pad_r = f"for (int32_t i = {g.PL + g.W}; i < {Wp}; i++) d[i] = {zx};\n" if Wp > g.PL + g.W else ""
        loops = f"""\
for (int32_t oh = 0; oh < {g.OH}; oh++) {{
    for (int32_t r = 0; r < {g.Cg * g.KH}; r++) {{
        const int32_t ci = r / {g.KH}, ih = oh * {g.SH} - {g.PT} + (r % {g.KH}) * {g.DH};
        qcc_i16 *d = rows + r * {Wp};
        const {xt} *s = xg + ci * {g.H * g.W} + ih * {g.W};
        if (ih < 0 || ih >= {g.H}) {{
            for (int32_t i = 0; i < {Wp}; i++) d[i] = {zx};
            continue;
        }}
{_indent(pad_l + f"for (int32_t i = 0; i < {g.W}; i++) d[{g.PL} + i] = s[i];" + chr(10) + pad_r, 8)}
    }}
    for (int32_t ow0 = 0; ow0 < {g.OW}; ow0 += {NP}) {{
{_indent(gather, 8)}
        for (int32_t mb = 0; mb < {-(-g.Mg // MB) * MB}; mb += {MB}) {{
            const int8_t *wp = WM + (gi * {Mgp} + mb / {TB} * {TB}) * {Kp} + mb % {TB} * 4;
            const int32_t *bp = BM + gi * {Mgp} + mb;
            const qcc_i16 *cp = col;
{_indent(tile, 12)}
{_indent(epi, 12)}
        }}
    }}
}}"""
    body = f"""\
qcc_i16 *col = (qcc_i16 *)scratch;
{f"qcc_i16 *rows = (qcc_i16 *)(scratch + {col_bytes});" if row_bytes else ""}
for (int32_t k = 0; k < {NP * Kp}; k++) col[k] = 0;  /* the patch tail past K stays 0 */
for (int32_t b = 0; b < {g.N}; b++)
for (int32_t gi = 0; gi < {g.G}; gi++) {{
    const {xt} *xg = x + (b * {g.C} + gi * {g.Cg}) * {g.H * g.W};
{_indent(loops, 4)}
}}"""
    return body, col_bytes + row_bytes


def _mcu_fc(x: Tensor, w: Tensor, y: Tensor, wv, bias, rows: int, N: int, K: int, m0: str, sh: str, zy,
            lo, hi) -> tuple[str, int]:
    """Fully connected for microcontrollers: per input row, its codes as int16
    (`_mcu_tile`'s patch), then tiles of channels with their epilogue."""
    zx = int(x.qp.zero_point[0])
    shifts = nx.quantize_multipliers(np.asarray(x.qp.scale[0] * np.asarray(w.qp.scale) / y.qp.scale[0],
                                                np.float64).reshape(-1))[1]
    rq, sh = ("qcc_rq32_down", _negate(sh)) if np.all(shifts <= 0) else ("qcc_rq32", sh)
    store = (f"ym[j * {N}] = ({ctype(y.dtype)})qcc_clamp({rq}(ab[j], {m0}, {sh}) + {lit(zy)}, "
             f"{lit(lo)}, {lit(hi)});")
    TB = max(mb for _, mb in MCU_FC_BLOCKS.values())
    wdecl, Mgp, Kp = _mcu_weight_table("WM", wv, 1, N, K, TB)
    bf = np.zeros(Mgp, np.int64)
    bf[:N] = bias - zx * wv.sum(axis=1)

    def variant(v: str) -> tuple[str, int]:
        NP, MB = MCU_FC_BLOCKS[v]
        epi = _mcu_epilogue(NP, MB, N, "mb", "r", None, f"{atype(y.dtype)} *ym = y + m;", store, v)
        return f"""\
for (int32_t r = 0; r < {rows}; r++) {{
    const {atype(x.dtype)} *xr = x + r * {K};
    for (int32_t k = 0; k < {K}; k++) col[k] = xr[k];
    for (int32_t mb = 0; mb < {-(-N // MB) * MB}; mb += {MB}) {{
        const int8_t *wp = WM + mb / {TB} * {TB * Kp} + mb % {TB} * 4;
        const int32_t *bp = BM + mb;
        const qcc_i16 *cp = col;
{_indent(_mcu_tile(v, NP, MB, Kp, TB), 8)}
{_indent(epi, 8)}
    }}
}}""", -(-NP * Kp * 2 // 8) * 8

    body, scratch = _mcu_both(wdecl + array("BM", "int32_t", bf, 10), variant)
    return f"qcc_i16 *col = (qcc_i16 *)scratch;\nfor (int32_t k = {K}; k < {Kp}; k++) col[k] = 0;\n{body}", scratch


def _mcu_dw3_ok(g: _Conv) -> bool:
    """Depthwise 3-wide rows at stride and dilation 1 along W on 8-bit codes: the DSP form applies."""
    return g.Cg == 1 and g.KW == 3 and g.SW == 1 and g.DW == 1 and _codes8(g)


def _mcu_dw3(g: _Conv, store: str, portable: tuple[str, int]) -> tuple[str, int]:
    """Depthwise convolution with 3-wide rows on the DSP extension (else `portable`):
    per channel the plane is copied into a scratch plane bordered with the zero
    point, then two outputs (ow, ow + 1) at a time, per kernel row one word
    x0..x3 of codes, SXTB16 into (x0, x2) and (x1, x3), and
        out0 += SMLAD((x0, x2), (k0, k2)) + x1 * k1 (SMLABB)
        out1 += SMLAD((x1, x3), (k0, k2)) + x2 * k1 (SMLATB):
    seven instructions for six multiply-adds; the epilogue from the registers.
    acc = (bias - zx * sum(w)) + sum(w * x)."""
    zx = int(g.x.qp.zero_point[0])
    xt = atype(g.x.dtype)
    Hp = max(g.PT + g.H, (g.OH - 1) * g.SH + (g.KH - 1) * g.DH + 1)
    Wp = max(g.PL + g.W, g.OW + 2)
    plane = -(-(Hp * Wp + 4) // 8) * 8  # slack: an odd last output reads one code past the row
    d, fold_expr = _table("BP", "int32_t", g.bias - zx * g.wv.sum(axis=1))
    k = g.wv.reshape(g.M, g.KH, 3)
    pairs = (k[..., 0] & 0xFFFF) | ((k[..., 2] & 0xFFFF) << 16)
    kp = np.stack([pairs, k[..., 1] & 0xFFFF], axis=-1)  # per row: (k0, k2) and k1 as halfwords
    d += array("KP", "uint32_t", kp.reshape(-1), 8)
    wload = "\n".join(f"const uint32_t kp{kh} = KP[m * {2 * g.KH} + {2 * kh}], "
                      f"k1{kh} = KP[m * {2 * g.KH} + {2 * kh + 1}];" for kh in range(g.KH))
    rows = "\n".join(f"const {xt} *r{kh} = xq + (oh * {g.SH} + {kh * g.DH}) * {Wp};" for kh in range(g.KH))
    taps = "\n".join(f"""\
{{
    const uint32_t v = qcc_ld32(r{kh} + ow), e = __sxtb16(v), o = qcc_sxtb16_odd(v);
    s0 = __smlad(e, kp{kh}, s0); s0 = __smlabb(o, k1{kh}, s0);
    s1 = __smlad(o, kp{kh}, s1); s1 = __smlatb(e, k1{kh}, s1);
}}""" for kh in range(g.KH))
    st = _saturating(store, "dsp")
    second = f"{{\n    const int32_t j = oh * {g.OW} + ow + 1, av = s1;\n{_indent(st.replace('ab[j]', 'av'), 4)}\n}}"
    if g.OW % 2:
        second = f"if (ow + 1 < {g.OW}) {second}"
    dsp = f"""\
{d}{xt} *xq = ({xt} *)scratch;
for (int32_t b = 0; b < {g.N}; b++)
for (int32_t m = 0; m < {g.M}; m++) {{
    const {xt} *xc = x + (b * {g.C} + m / {g.Mg}) * {g.H * g.W};
    {atype(g.y.dtype)} *ym = y + (b * {g.M} + m) * {g.OH * g.OW};
    for (int32_t i = 0; i < {plane // 4}; i++) ((qcc_u32 *)xq)[i] = UINT32_C({(zx & 0xFF) * 0x01010101});
    for (int32_t ih = 0; ih < {g.H}; ih++) {{  /* words: unaligned LDR/STR are fine on Cortex-M4/M7 */
        const {xt} *s = xc + ih * {g.W};
        {xt} *t = xq + (ih + {g.PT}) * {Wp} + {g.PL};
        int32_t i = 0;
        for (; i + 4 <= {g.W}; i += 4) {{ const uint32_t v = qcc_ld32(s + i); memcpy(t + i, &v, 4); }}
        for (; i < {g.W}; i++) t[i] = s[i];
    }}
{_indent(wload, 4)}
    const int32_t b0 = {fold_expr};
    for (int32_t oh = 0; oh < {g.OH}; oh++) {{
{_indent(rows, 8)}
        for (int32_t ow = 0; ow < {g.OW}; ow += 2) {{
            int32_t s0 = b0, s1 = b0;
{_indent(taps, 12)}
            {{
                const int32_t j = oh * {g.OW} + ow, av = s0;
{_indent(st.replace('ab[j]', 'av'), 16)}
            }}
{_indent(second, 12)}
        }}
    }}
}}"""
    return f"#if defined(__ARM_FEATURE_DSP)\n{dsp}\n#else\n{portable[0]}\n#endif", max(plane, portable[1])


def _mcu_both(decl: str, variants: Callable[[str], tuple[str, int]]) -> tuple[str, int]:
    """The microcontroller kernel: tables `decl`, then the DSP variant where the
    target has the DSP extension (Cortex-M4/M7), else the scalar one."""
    (d, sd), (s, ss) = variants("dsp"), variants("scalar")
    return f"{decl}#if defined(__ARM_FEATURE_DSP)\n{d}\n#else\n{s}\n#endif", max(sd, ss)


def _with_mcu(target: str, wide: tuple[str, int], mcu: Callable[[], tuple[str, int]]) -> tuple[str, int]:
    """Wide SIMD's loops (`wide`) or the microcontroller kernel (`mcu()`), chosen
    by the preprocessor; for a microcontroller target the latter alone, so that
    its tables and scratch are all the arena and flash hold (the C stays portable)."""
    narrow, s2 = mcu()
    if target in MCU_TARGETS:
        return narrow, s2
    return f"#if QCC_WIDE_SIMD\n{wide[0]}\n#else\n{narrow}\n#endif", max(wide[1], s2)


# ------------------------------------------------------------ elementwise


def broadcast_loops(out_shape, operand_shapes, body: str) -> str:
    """Nested loops over `out_shape` defining `i<k>` (the flat index into
    operand k, ONNX broadcasting) and `iy`; adjacent dimensions that every
    operand walks contiguously are merged."""
    out_shape = [int(d) for d in out_shape]
    r = len(out_shape)
    st_all = []
    for s in [out_shape, *operand_shapes]:
        s = [1] * (r - len(s)) + [int(d) for d in s]
        st = strides(s)
        st_all.append([0 if s[d] == 1 and out_shape[d] != 1 else st[d] for d in range(r)])
    dims = [(out_shape[d], [st[d] for st in st_all]) for d in range(r) if out_shape[d] != 1]
    merged: list[tuple[int, list[int]]] = []
    for n, sts in dims:
        if merged and all(ps == s * n for ps, s in zip(merged[-1][1], sts)):
            pn, _ = merged[-1]
            merged[-1] = (pn * n, sts)
        else:
            merged.append((n, sts))
    names = ["iy"] + [f"i{k}" for k in range(len(operand_shapes))]
    lines = []
    for d, (n, _) in enumerate(merged):
        lines.append(f"for (int32_t d{d} = 0; d{d} < {n}; d{d}++)")
    idx = []
    for k, nm in enumerate(names):
        terms = [f"d{d} * {sts[k]}" if sts[k] != 1 else f"d{d}" for d, (_, sts) in enumerate(merged) if sts[k]]
        idx.append(f"const int32_t {nm} = {' + '.join(terms) or '0'};")
    inner = "\n".join(idx) + "\n" + body
    return "\n".join(lines) + ("\n" if lines else "") + "{\n" + _indent(inner, 4) + "\n}"


@_gen(q.AddOp)
def _add(c: Ctx, op) -> Kernel:
    conv = fused_conv(op)
    if conv is not None:
        return _conv_kernel(c, conv, add=op)

    a, b, y = (c.t(v) for v in (*op.operands, op.results[0]))
    lo, hi = _clamp_bounds(op)
    c.inp("a", a), c.inp("b", b), c.out("y", y)
    body = _add_stmts(["a[i0]", "b[i1]"], a.qp, b.qp, y, lo, hi, "xa", "xb", "y[iy]")
    return c.kernel(_indent(broadcast_loops(y.shape, [a.shape, b.shape], body), 4))


@_gen(q.MulOp)
def _mul(c: Ctx, op) -> Kernel:
    a, b, y = (c.t(v) for v in (*op.operands, op.results[0]))
    m0, sh = nx.quantize_multiplier(a.qp.scale[0] * b.qp.scale[0] / y.qp.scale[0])
    lo, hi = _clamp_bounds(op)
    c.inp("a", a), c.inp("b", b), c.out("y", y)
    body = (f"const int64_t p = ((int64_t)a[i0] - {lit(a.qp.zero_point[0])}) * ((int64_t)b[i1] - "
            f"{lit(b.qp.zero_point[0])});\n"
            f"y[iy] = ({ctype(y.dtype)})qcc_clamp(qcc_requant32(p, {lit(m0)}, {sh}) + {lit(y.qp.zero_point[0])}, "
            f"{lit(lo)}, {lit(hi)});")
    return c.kernel(_indent(broadcast_loops(y.shape, [a.shape, b.shape], body), 4))


@_gen(q.ClampOp)
def _clamp(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    lo, hi = _clamp_bounds(op)
    info = np.iinfo(x.dtype)
    c.inp("x", x), c.out("y", y)
    conds = []  # only the comparisons the storage type can fail (-Wtype-limits)
    if lo > info.min:
        conds.append(f"x[i] < {lit(lo)} ? {lit(lo)} : ")
    if hi < info.max:
        conds.append(f"x[i] > {lit(hi)} ? {lit(hi)} : ")
    expr = "".join(f"({c_}" for c_ in conds) + "x[i]" + ")" * len(conds)
    return c.kernel(f"    for (int32_t i = 0; i < {y.size}; i++) y[i] = {expr};")


@_gen(q.LookupOp)
def _lookup(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    table = op.attributes["table"].array
    c.inp("x", x), c.out("y", y)
    if x.dtype == y.dtype == np.int8 and x.qp.qmin == -128 and len(table) == 256:
        return c.kernel(_indent(array("TABLE", "int8_t", table, 16), 4) + "\n"
                        f"    qcc_lookup_i8(TABLE, x, y, {y.size});")
    return c.kernel(_indent(array("TABLE", ctype(y.dtype), table, 16), 4) + "\n"
                    f"    for (int32_t i = 0; i < {y.size}; i++) y[i] = TABLE[x[i] - {lit(x.qp.qmin)}];")


# --------------------------------------------------------- pooling


def _pool_loops(x: Tensor, y: Tensor, ks, strd, dils, pb, init: str, tap: str, finish: str) -> str:
    H, W = _spatial(x.shape)
    OH, OW = _spatial(y.shape)
    KH, KW = _hw(ks, 1)
    SH, SW = _hw(strd, 1)
    DH, DW = _hw(dils, 1)
    PT, PL = _hw(pb, 0)
    return f"""\
for (int32_t nc = 0; nc < {x.shape[0] * x.shape[1]}; nc++) {{
    const {atype(x.dtype)} *xc = x + nc * {H * W};
    {atype(y.dtype)} *yc = y + nc * {OH * OW};
    for (int32_t oh = 0; oh < {OH}; oh++)
    for (int32_t ow = 0; ow < {OW}; ow++) {{
{_indent(init, 8)}
        for (int32_t kh = 0; kh < {KH}; kh++) {{
            const int32_t ih = oh * {SH} - {PT} + kh * {DH};
            if (ih < 0 || ih >= {H}) continue;
            for (int32_t kw = 0; kw < {KW}; kw++) {{
                const int32_t iw = ow * {SW} - {PL} + kw * {DW};
                int32_t v;
                if (iw < 0 || iw >= {W}) continue;
                v = xc[ih * {W} + iw];
{_indent(tap, 16)}
            }}
        }}
{_indent(finish, 8)}
    }}
}}"""


def _check_windows(op, in_sp, out_sp, ks, strd, dils, pb) -> None:
    for i in range(len(ks)):
        for o in range(out_sp[i]):
            if not any(0 <= o * strd[i] - pb[i] + k * dils[i] < in_sp[i] for k in range(ks[i])):
                raise QccError(f"{_where(op)}: a pooling window lies entirely in the padding")


@_gen(q.MaxPoolOp)
def _max_pool(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    _per_sample_rank(x, op)
    attrs = {k: op.attr(k) for k in ("kernel_shape", "strides", "pads", "dilations", "ceil_mode", "auto_pad")
             if k in op.attributes}
    ks, strd, dils, out, pb, _ = _pool_geometry(attrs, x.shape[2:])
    if tuple(out) != tuple(y.shape[2:]):
        raise QccError(f"{_where(op)}: result shape {list(y.shape)} disagrees with the pooling geometry")
    _check_windows(op, x.shape[2:], out, ks, strd, dils, pb)
    c.inp("x", x), c.out("y", y)
    lo = np.iinfo(y.dtype).min
    loops = _pool_loops(x, y, ks, strd, dils, pb, f"int32_t best = {lit(lo)};", "if (v > best) best = v;",
                        f"yc[oh * {y.shape[-1]} + ow] = ({ctype(y.dtype)})best;")
    return c.kernel(_indent(loops, 4))


@_gen(q.AvgPoolOp)
def _avg_pool(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    _per_sample_rank(x, op)
    ks = list(op.attr("kernel_shape"))
    attrs = {k: op.attr(k) for k in ("strides", "pads", "auto_pad") if k in op.attributes}
    attrs["kernel_shape"] = ks
    strd, dils, pb, pe = _conv_geometry(attrs, np.broadcast_to(np.int8(0), x.shape),
                                        np.broadcast_to(np.int8(0), (x.shape[1], 1, *ks)))
    out = [(s + b + e - k) // st + 1 for s, b, e, k, st in zip(x.shape[2:], pb, pe, ks, strd)]
    if tuple(out) != tuple(y.shape[2:]):
        raise QccError(f"{_where(op)}: result shape {list(y.shape)} disagrees with the pooling geometry")
    include_pad = bool(op.attr("count_include_pad", 0))
    if not include_pad:
        _check_windows(op, x.shape[2:], out, ks, strd, dils, pb)
    zp = x.qp.zero_point[0]
    c.inp("x", x), c.out("y", y)
    cnt = lit(math.prod(ks)) if include_pad else "cnt"
    init = "int32_t s = 0;" if include_pad else "int32_t s = 0, cnt = 0;"
    tap = f"s += v - {lit(zp)};" + ("" if include_pad else "\ncnt++;")
    finish = (f"{{\n    const int32_t avg = s >= 0 ? (s + {cnt} / 2) / {cnt} : -((-s + {cnt} / 2) / {cnt});\n"
              f"    yc[oh * {y.shape[-1]} + ow] = ({ctype(y.dtype)})qcc_clamp((int64_t)avg + {lit(zp)}, "
              f"{lit(y.qp.qmin)}, {lit(y.qp.qmax)});\n}}")
    loops = _pool_loops(x, y, ks, strd, dils, pb, init, tap, finish)
    return c.kernel(_indent(loops, 4))


@_gen(q.GlobalAvgPoolOp)
def _global_avg_pool(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    hw = math.prod(x.shape[2:])
    m0, sh = nx.quantize_multiplier(x.qp.scale[0] / (y.qp.scale[0] * hw))
    c.inp("x", x), c.out("y", y)
    body = f"""\
for (int32_t nc = 0; nc < {x.shape[0] * x.shape[1]}; nc++) {{
    const {atype(x.dtype)} *xc = x + nc * {hw};
    int32_t s = 0;
    for (int32_t j = 0; j < {hw}; j++) s += xc[j] - {lit(x.qp.zero_point[0])};
    y[nc] = ({ctype(y.dtype)})qcc_clamp(qcc_requant32(s, {lit(m0)}, {sh}) + {lit(y.qp.zero_point[0])}, \
{lit(y.qp.qmin)}, {lit(y.qp.qmax)});
}}"""
    return c.kernel(_indent(body, 4))


# --------------------------------------------------------- data movement


@_gen(q.ConcatOp)
def _concat(c: Ctx, op) -> Kernel:
    y = c.t(op.results[0])
    axis = int(op.attr("axis", 0)) % max(len(y.shape), 1)
    outer = math.prod(y.shape[:axis])
    inner = math.prod(y.shape[axis + 1:])
    ychunk = y.shape[axis] * inner
    parts, off = [], 0
    for i, v in enumerate(op.operands):
        x = c.t(v)
        name = c.inp(f"x{i}", x)
        chunk = x.shape[axis] * inner
        if x.qp == y.qp:
            move = f"memcpy(y + o * {ychunk} + {off}, {name} + o * {chunk}, {chunk} * sizeof(*y));"
        else:
            m0, sh = nx.quantize_multiplier(x.qp.scale[0] / y.qp.scale[0])
            move = (f"for (int32_t j = 0; j < {chunk}; j++)\n    y[o * {ychunk} + {off} + j] = "
                    f"({ctype(y.dtype)})qcc_clamp(qcc_requant32((int64_t){name}[o * {chunk} + j] - "
                    f"{lit(x.qp.zero_point[0])}, {lit(m0)}, {sh}) + {lit(y.qp.zero_point[0])}, "
                    f"{lit(y.qp.qmin)}, {lit(y.qp.qmax)});")
        if chunk:
            parts.append(f"for (int32_t o = 0; o < {outer}; o++) {{\n{_indent(move, 4)}\n}}")
        off += chunk
    c.out("y", y)
    return c.kernel(_indent("\n".join(parts), 4))


@_gen(q.PadOp)
def _pad(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    pads = [int(p) for p in op.attr("pads")]
    value = int(op.attr("value", x.qp.zero_point[0]))
    r = len(x.shape)
    if len(pads) != 2 * r or min(pads, default=0) < 0:
        raise QccError(f"{_where(op)}: the C backend pads by non-negative amounts only, got {pads}")
    if tuple(s + pads[d] + pads[d + r] for d, s in enumerate(x.shape)) != tuple(y.shape):
        raise QccError(f"{_where(op)}: result shape {list(y.shape)} disagrees with pads {pads}")
    c.inp("x", x), c.out("y", y)
    ys = strides(y.shape)
    xs = strides(x.shape)
    lead = list(range(r - 1))
    loops = "".join(f"for (int32_t d{d} = 0; d{d} < {x.shape[d]}; d{d}++)\n" for d in lead)
    dst = " + ".join([f"(d{d} + {pads[d]}) * {ys[d]}" for d in lead] + [str(pads[r - 1])]) if r else "0"
    src = " + ".join([f"d{d} * {xs[d]}" for d in lead] + ["0"])
    row = x.shape[-1] if r else 1
    body = f"""\
for (int32_t i = 0; i < {y.size}; i++) y[i] = {lit(value)};
{loops}memcpy(y + {dst}, x + {src}, {row} * sizeof(*y));"""
    return c.kernel(_indent(body, 4) if x.size else _indent(body.splitlines()[0], 4))


@_gen(q.ResizeOp)
def _resize(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    attrs = {k: op.attr(k) for k in ("coordinate_transformation_mode", "nearest_mode", "mode") if k in op.attributes}
    # the source index of every output element, by the interpreter's own kernel on a ramp
    ramp = np.arange(x.size, dtype=np.float64).reshape(x.shape)
    src = KERNELS["Resize"]([ramp, None, None, np.array(y.shape, np.int64)], attrs, 18)[0]
    src = np.rint(src).astype(np.int64)
    if src.shape != y.shape:
        raise QccError(f"{_where(op)}: resize to {list(y.shape)} gives {list(src.shape)}")
    coords = np.unravel_index(src, x.shape)
    xs = strides(x.shape)
    tables, separable = [], True
    for d in range(len(y.shape)):
        sel = tuple(slice(None) if e == d else 0 for e in range(len(y.shape)))
        m = coords[d][sel]
        shape = [1] * len(y.shape)
        shape[d] = -1
        if not np.array_equal(np.broadcast_to(m.reshape(shape), y.shape), coords[d]):
            separable = False
        tables.append(m * xs[d])
    c.inp("x", x), c.out("y", y)
    if not separable:
        body = array("SRC", "int32_t", src.reshape(-1), 16) + \
            f"for (int32_t i = 0; i < {y.size}; i++) y[i] = x[SRC[i]];"
        return c.kernel(_indent(body, 4))
    decl = "".join(array(f"M{d}", "int32_t", t, 16) for d, t in enumerate(tables))
    loops = "".join(f"for (int32_t d{d} = 0; d{d} < {n}; d{d}++)\n" for d, n in enumerate(y.shape))
    idx = " + ".join(f"M{d}[d{d}]" for d in range(len(y.shape))) or "0"
    body = f"{decl}int32_t iy = 0;\n{loops}y[iy++] = x[{idx}];"
    return c.kernel(_indent(body, 4))


@_gen(q.ReshapeOp)
def _reshape(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    c.inp("x", x), c.out("y", y)
    return c.kernel(f"    memcpy(y, x, {y.nbytes});" if y.nbytes else "    (void)x;\n    (void)y;")


@_gen(q.TransposeOp)
def _transpose(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    perm = [int(p) for p in op.attr("perm")]
    xs = strides(x.shape)
    c.inp("x", x), c.out("y", y)
    loops = "".join(f"for (int32_t d{d} = 0; d{d} < {n}; d{d}++)\n" for d, n in enumerate(y.shape))
    idx = " + ".join(f"d{d} * {xs[p]}" for d, p in enumerate(perm)) or "0"
    return c.kernel(_indent(f"int32_t iy = 0;\n{loops}y[iy++] = x[{idx}];", 4))


# --------------------------------------------------------- float ops
# Float ops the lowering leaves (no integer form at the chosen widths). The
# elementwise ones repeat qcc.float_kernels' float32 operations one by one, so
# they round identically (C99 mode: no FMA contraction, FLT_EVAL_METHOD 0).


def _float_unary(c: Ctx, op, expr: str) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    if x.qp is not None or x.dtype != np.float32 or y.dtype != np.float32:
        raise QccError(f"onnx.{op.onnx_type} {op.node_name!r}: the C backend handles float32 inputs only")
    c.inp("x", x), c.out("y", y)
    return c.kernel(f"    for (int32_t i = 0; i < {y.size}; i++) {{\n        const float v = x[i];\n"
                    f"        float t;\n{_indent(expr, 8)}\n        y[i] = t;\n    }}", exact_float=True)


@_gen("HardSwish")
def _hard_swish(c: Ctx, op) -> Kernel:
    # y = x * (1/6); y += 0.5; clip(y, 0, 1); y *= x   (float32 throughout)
    return _float_unary(c, op, f"t = v * {f32lit(1 / 6)};\nt = t + {f32lit(0.5)};\n"
                               "t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);\nt = t * v;")


@_gen("HardSigmoid")
def _hard_sigmoid(c: Ctx, op) -> Kernel:
    a = op.onnx_attrs()
    return _float_unary(c, op, f"t = v * {f32lit(a.get('alpha', 0.2))};\nt = t + {f32lit(a.get('beta', 0.5))};\n"
                               "t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);")


@_gen("Relu")
def _relu(c: Ctx, op) -> Kernel:
    return _float_unary(c, op, "t = v < 0.0f ? 0.0f : v;")


@_gen("LeakyRelu")
def _leaky_relu(c: Ctx, op) -> Kernel:
    return _float_unary(c, op, f"t = v < 0.0f ? v * {f32lit(op.onnx_attrs().get('alpha', 0.01))} : v;")



@_gen("Softmax")
def _softmax(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    if x.qp is not None or x.dtype != np.float32:
        raise QccError(f"onnx.Softmax {op.node_name!r}: the C backend handles float32 Softmax only")
    opset = c.opset
    a = op.onnx_attrs()
    r = len(x.shape)
    if opset < 13:
        axis = (int(a.get("axis", 1)) % r) if r else 0
        outer, n, inner = math.prod(x.shape[:axis]), math.prod(x.shape[axis:]), 1
    else:
        axis = int(a.get("axis", -1)) % r
        outer, n, inner = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])
    c.inp("x", x), c.out("y", y)
    body = f"""\
for (int32_t o = 0; o < {outer}; o++)
for (int32_t k = 0; k < {inner}; k++) {{
    const int32_t base = o * {n * inner} + k;
    float mx = x[base], s = 0.0f;
    for (int32_t j = 1; j < {n}; j++) if (x[base + j * {inner}] > mx) mx = x[base + j * {inner}];
    for (int32_t j = 0; j < {n}; j++) {{
        const float e = expf(x[base + j * {inner}] - mx);
        y[base + j * {inner}] = e;
        s += e;
    }}
    for (int32_t j = 0; j < {n}; j++) y[base + j * {inner}] /= s;
}}"""
    return c.kernel(_indent(body, 4), needs_libm=True)


# ------------------------------------------------ squeeze-excite and integer softmax


@_gen(q.ChannelScaleOp)
def _channel_scale(c: Ctx, op) -> Kernel:
    """quant.mul's arithmetic with the per-(sample, channel) factor loaded once per plane.
    When sat32 provably never clips (|x - zp_x| |s - zp_s| 2^max(shift, 0) < 2^31), the
    product stays int32 and SRDHM's INT32_MIN case cannot occur, so requantize32 is one
    32x32->64 multiply (SMLAL on Cortex-M), >> 31 and RDBP in int32: the same integers
    as qcc_requant32."""
    x, s, y = (c.t(v) for v in (*op.operands, op.results[0]))
    m0, sh = nx.quantize_multiplier(x.qp.scale[0] * s.qp.scale[0] / y.qp.scale[0])
    lo, hi = _clamp_bounds(op)
    planes, hw = math.prod(x.shape[:2]), math.prod(x.shape[2:])
    zx, zy = lit(x.qp.zero_point[0]), lit(y.qp.zero_point[0])
    c.inp("x", x), c.inp("s", s), c.out("y", y)
    bound = nx.input_max_abs(x.qp) * nx.input_max_abs(s.qp) << max(sh, 0)
    store = f"y[i] = ({ctype(y.dtype)})qcc_clamp(r + {zy}, {lit(lo)}, {lit(hi)});"
    e = max(-sh, 0)
    if bound + (1 << e) < nx.INT32_MAX:  # |h| <= |v| + 1: its rounding stays in int32 too
        scaled = f"sv * {lit(1 << sh)}" if sh > 0 else "sv"
        inner = (f"const int32_t v = ((int32_t)x[i] - {zx}) * f;\n"
                 f"const int32_t h = (int32_t)qcc_asr((int64_t)v * {lit(m0)} + {lit(1 << 30)}, 31);\n"
                 f"const int32_t r = {f'qcc_asr(h + {lit(1 << (e - 1))} - (h < 0), {e})' if e else 'h'};\n{store}")
        head = f"    const int32_t f = {scaled};\n"
    else:
        inner = f"const int64_t r = qcc_requant32(((int64_t)x[i] - {zx}) * sv, {lit(m0)}, {sh});\n{store}"
        head = ""
    body = f"""\
for (int32_t p = 0; p < {planes}; p++) {{
    const int32_t sv = (int32_t)s[p] - {lit(s.qp.zero_point[0])};
{head}    const int32_t base = p * {hw};
    for (int32_t i = base; i < base + {hw}; i++) {{
{_indent(inner, 8)}
    }}
}}"""
    return c.kernel(_indent(body, 4))


@_gen(q.SoftmaxOp)
def _softmax_int(c: Ctx, op) -> Kernel:
    """docs/numerics.md's integer softmax: exp by table, int32 sum, one reciprocal per row."""
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    axis = int(op.attr("axis"))
    outer, n, inner = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])
    table = op.attributes["table"].array
    k = q.SOFTMAX_RECIPROCAL_BITS
    shift = k - y.qp.bits
    c.inp("x", x), c.out("y", y)
    body = f"""\
for (int32_t o = 0; o < {outer}; o++)
for (int32_t r = 0; r < {inner}; r++) {{
    const int32_t base = o * {n * inner} + r;
    int32_t mx = x[base], sum = 0;
    for (int32_t j = 1; j < {n}; j++) if (x[base + j * {inner}] > mx) mx = x[base + j * {inner}];
    for (int32_t j = 0; j < {n}; j++) sum += EXP[mx - x[base + j * {inner}]];
    const int64_t recip = ((INT64_C(1) << {k}) + sum / 2) / sum;
    for (int32_t j = 0; j < {n}; j++) {{
        const int64_t e = EXP[mx - x[base + j * {inner}]];
        const int64_t v = {lit(y.qp.zero_point[0])} + ((e * recip + {lit(1 << (shift - 1))}) >> {shift});
        y[base + j * {inner}] = ({ctype(y.dtype)})qcc_clamp(v, {lit(y.qp.qmin)}, {lit(y.qp.qmax)});
    }}
}}"""
    return c.kernel(_indent(array("EXP", "int32_t", table, 8), 4) + "\n" + _indent(body, 4))


@_gen("Swish")
def _swish(c: Ctx, op) -> Kernel:
    """Float Swish / SiLU (what recognize-activations makes of x * sigmoid(x)) when it stays
    float: x * 1 / (1 + exp(-alpha x)), qcc.float_kernels' float32 steps (libm's expf)."""
    alpha = float(op.onnx_attrs().get("alpha", 1.0))
    scaled = f"v * {f32lit(alpha)}" if alpha != 1.0 else "v"
    k = _float_unary(c, op, f"t = {scaled};\nt = expf(-t);\nt = t + 1.0f;\nt = 1.0f / t;\nt = v * t;")
    k.needs_libm = True
    return k


# ------------------------------------------------------ patch-based inference


def _window_copy(src: str, src_shape, dst: str, dst_shape, offs, window, into_dst: bool) -> str:
    """Loops copying a `window` (shape) between a tensor and a window-shaped buffer:
    src[offs + i] -> dst[i] (slice), or src[i] -> dst[offs + i] (insert, `into_dst`).
    The last axis is one memcpy; axes where the window is whole merge with it."""
    full = dst_shape if into_dst else src_shape
    r = len(full)
    k = r - 1  # merge trailing axes the window covers entirely (one contiguous run)
    while k > 0 and window[k] == full[k] and offs[k] == 0:
        k -= 1
    fs, ws = strides(full), strides(window)
    run = math.prod(window[k:])
    idx_full = " + ".join([f"i{a} * {fs[a]}" for a in range(k)] + [str(sum(o * s for o, s in zip(offs, fs)))])
    idx_win = " + ".join([f"i{a} * {ws[a]}" for a in range(k)] + ["0"])
    d, s = (f"{dst} + {idx_full}", f"{src} + {idx_win}") if into_dst else (f"{dst} + {idx_win}", f"{src} + {idx_full}")
    body = f"memcpy({d}, {s}, {run} * sizeof(*{dst}));"
    for a in reversed(range(k)):
        body = f"for (int i{a} = 0; i{a} < {window[a]}; i{a}++) {{\n{_indent(body, 4)}\n}}"
    return body


@_gen(q.SliceOp)
def _slice(c: Ctx, op) -> Kernel:
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    c.inp("x", x), c.out("y", y)
    return c.kernel(_indent(_window_copy("x", x.shape, "y", y.shape, op.attr("offsets"), y.shape, False), 4))


@_gen(q.InsertSliceOp)
def _insert_slice(c: Ctx, op) -> Kernel:
    """The tile into its window of y. With a destination, y is dest's buffer (the
    emitter shares it: the copy of dest is skipped at run time when the pointers
    match); without one, y starts as the zero point."""
    y, tile = c.t(op.results[0]), c.t(op.operands[-1])
    pre = ""
    if len(op.operands) == 2:
        c.inp("d", c.t(op.operands[0]))
        pre = f"if (d != y) memcpy(y, d, {y.nbytes});\n"
    else:
        zp = y.qp.zero_point[0]
        if y.dtype.itemsize == 1:
            pre = f"memset(y, {zp & 0xFF}, {y.size});\n"
        else:
            pre = f"for (int32_t k = 0; k < {y.size}; k++) y[k] = {lit(zp)};\n"
    c.inp("t", tile), c.out("y", y)
    loops = _window_copy("t", tile.shape, "y", y.shape, op.attr("offsets"), tile.shape, True)
    return c.kernel(_indent(pre + loops, 4))
