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

    def kernel(self, body: str, scratch: int = 0, needs_libm: bool = False, exact_float: bool = False) -> Kernel:
        sig = f"static void {self.fn}({', '.join(self.params) or 'void'})"
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
class _Conv:
    """A convolution's geometry and constants, 1-D taken as 2-D with H = 1."""

    x: Tensor
    w: Tensor
    y: Tensor
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
    acc_bits: int
    wv: np.ndarray  # [M, K] int64
    bias: np.ndarray  # [M] int64

    @property
    def Cg(self) -> int:
        return self.C // self.G

    @property
    def Mg(self) -> int:
        return self.M // self.G

    @property
    def K(self) -> int:
        return self.Cg * self.KH * self.KW


def _conv_geom(c: Ctx, op) -> _Conv:
    x, w, y = c.t(op.operands[0]), c.t(op.operands[1]), c.t(op.results[0])
    _per_sample_rank(x, op)
    wv = _const_values(op, 1).astype(np.int64)
    bias = _const_values(op, 2).astype(np.int64).reshape(-1) if len(op.operands) > 2 else np.zeros(1, np.int64)
    attrs = {k: op.attr(k) for k in ("strides", "pads", "dilations", "group", "auto_pad", "kernel_shape")
             if k in op.attributes}
    strd, dils, pb, pe = _conv_geometry(attrs, np.broadcast_to(np.int8(0), x.shape),
                                        np.broadcast_to(np.int8(0), w.shape))
    ks = list(w.shape[2:])
    out_sp = [(s + b + e - ((k - 1) * d + 1)) // st + 1
              for s, b, e, k, d, st in zip(x.shape[2:], pb, pe, ks, dils, strd)]
    if tuple(out_sp) != tuple(y.shape[2:]):
        raise QccError(f"{_where(op)}: result shape {list(y.shape)} disagrees with the convolution geometry")
    M = w.shape[0]
    return _Conv(x, w, y, x.shape[0], x.shape[1], M, int(op.attr("group", 1)), *_spatial(x.shape),
                 *_spatial(y.shape), *_hw(ks, 1), *_hw(strd, 1), *_hw(dils, 1), *_hw(pb, 0),
                 not any(pb) and not any(pe), op.attr("acc_bits"), wv.reshape(M, -1),
                 np.broadcast_to(bias, (M,)).copy())


def conv_path(g: _Conv) -> str:
    """How to loop. "taps": one input channel per output (depthwise, or a single
    input channel): each output row accumulates its few taps in registers, with
    the border (where taps fall into padding) split off. "im2col": gather every
    output position's patch into a contiguous row, then one contiguous dot
    product per output (reduction innermost) - when the patch is long and shared
    by several output channels. "planes": per weight, one pass over the output
    rows it touches (long contiguous inner loops for pointwise convolutions)."""
    if g.Cg == 1 and g.KH * g.KW <= 49:
        return "taps"
    if g.KH == g.KW == g.SH == g.SW == 1 and g.no_pad:  # pointwise: the patch is a strided channel column
        return "im2col" if g.OH * g.OW <= 16 and g.Mg > 1 else "planes"
    # unpadded rows that are long enough vectorise well as planes (measured on the digit models)
    return "im2col" if g.Mg > 1 and g.K >= 16 and (not g.no_pad or g.OW <= 8) else "planes"


def _table(name: str, ct: str, vals: np.ndarray) -> tuple[str, str]:
    """(declaration, expression at channel m) of a per-channel constant; a literal when uniform."""
    if np.all(vals == vals[0]):
        return "", lit(vals[0])
    return array(name, ct, vals, 10), f"{name}[m]"


@_gen(q.ConvOp)
def _conv(c: Ctx, op) -> Kernel:
    g = _conv_geom(c, op)
    x, y = g.x, g.y
    acc_t = "int32_t" if g.acc_bits == 32 else "int64_t"
    req = _requant_fn(g.acc_bits)
    zx, zy = x.qp.zero_point[0], y.qp.zero_point[0]
    lo, hi = _clamp_bounds(op)
    decl, m0, sh = _multiplier_tables(x.qp.scale[0] * np.asarray(g.w.qp.scale) / y.qp.scale[0], g.M, g.acc_bits)
    path = conv_path(g)
    if path == "taps" and g.Cg != 1:
        path = "planes"
    # Where every tap that is summed holds a real code (no padding), or padding is
    # materialised as zx (im2col), -zx * sum(w) folds into the initial value and the
    # inner loop is a plain multiply-accumulate. Every partial sum is then the
    # accumulator of some valid input (code 0 at the taps not yet summed), so the
    # accumulator proof bounds it as well.
    folded = g.bias - zx * g.wv.sum(axis=1)
    out = f"ym[j] = ({ctype(y.dtype)})qcc_clamp({req}(acc, {m0}, {sh}) + {lit(zy)}, {lit(lo)}, {lit(hi)});"
    c.inp("x", x), c.out("y", y), c.scratch("scratch", "qcc_u8")
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


def _ow_bounds(g: _Conv) -> str:
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
{_indent(_ow_bounds(g), 4)}
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
{_indent(_ow_bounds(g), 4)}
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
    d, init_expr = _table("B0", acc_t, np.broadcast_to(bias, (N,)) - zx * wv.sum(axis=1))  # no padding: fold zx
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

    a, b, y = (c.t(v) for v in (*op.operands, op.results[0]))
    p = nx.add_params(a.qp, b.qp, y.qp)
    lo, hi = _clamp_bounds(op)
    c.inp("a", a), c.inp("b", b), c.out("y", y)
    lsh = lit(1 << p["left_shift"])
    body = (f"const int64_t xa = qcc_requant32(((int64_t)a[i0] - {lit(a.qp.zero_point[0])}) * {lsh}, "
            f"{lit(p['m_a'])}, {p['s_a']});\n"
            f"const int64_t xb = qcc_requant32(((int64_t)b[i1] - {lit(b.qp.zero_point[0])}) * {lsh}, "
            f"{lit(p['m_b'])}, {p['s_b']});\n"
            f"y[iy] = ({ctype(y.dtype)})qcc_clamp(qcc_requant32(xa + xb, {lit(p['m_y'])}, {p['s_y']}) + "
            f"{lit(y.qp.zero_point[0])}, {lit(lo)}, {lit(hi)});")
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
