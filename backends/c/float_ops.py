"""C kernels for float32 ONNX ops: the `--float` build of an imported graph (and
any float op a quantized graph keeps), registered into `kernels.GENERATORS`.

Each generator returns one `static void` function specialised to its op, like
the integer kernels: shapes, strides and padding are literals, geometry comes
from `qcc.float_kernels` (the interpreter's own helpers), and constant weights
are re-laid out at compile time into function-local tables in the order the
loops read them, so that every inner loop is contiguous over independent
outputs with a constant trip count (gcc vectorises it at -O2 without
reassociating sums). Results agree with the float interpreter to float32
rounding, not bit for bit: summation orders differ. Only Softmax-like
transcendental ops (expf, tanhf, sqrtf) need libm (`Kernel.needs_libm`).
"""

from __future__ import annotations

import math

import numpy as np

from qcc.dialects import onnx as donnx
from qcc.errors import QccError
from qcc.float_kernels import _pool_geometry, _reduce_axes

from .cgen import strides
from .kernels import (ConvGeometry, Ctx, Kernel, Tensor, _float_unary, _gen, _hw, _indent, _spatial, _where,
                      broadcast_loops, conv_geometry, ow_bounds)

VB = 8  # floats per vector block of the GEMM tiles (two SSE / one AVX register)
MB = 4  # output channels per GEMM tile
CB = 8  # channels interleaved per depthwise block
COL_FLOATS = 8192  # patch matrix floats per conv block (32 KB)
BAND_FLOATS = 4096  # interleaved input floats per depthwise band (16 KB)

# Ops whose result is their operand's bytes under another shape: the emitter
# aliases them like quant.reshape (a copy kernel covers the cases it cannot).
VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
# Elementwise ops whose kernel reads element i of each operand before writing
# element i of the result: the emitter may give the result a dying operand's buffer.
INPLACE_OPS = frozenset({"Relu", "LeakyRelu", "HardSwish", "HardSigmoid", "Clip", "Neg", "Abs", "Sigmoid", "Tanh",
                         "Exp", "Sqrt", "Add", "Sub", "Mul", "Div", "BatchNormalization"})


# ------------------------------------------------------------------ helpers


def _up(n: int, k: int) -> int:
    return -(-n // k) * k


def flit(x) -> str:
    """A float literal that reads back to exactly float32(x) (numpy prints the
    shortest decimal that round-trips in float32; C rounds it to the same float)."""
    v = np.float32(x)
    if not np.isfinite(v):
        raise QccError(f"the C backend cannot write the non-finite constant {v}")
    s = str(v)
    return (s if any(ch in s for ch in ".e") else s + ".0") + "f"


def float_array(sym: str, values, per_line: int = 8, qualifier: str = "static const") -> str:
    """`static const float sym[n] = {...};` (C99 has no empty arrays: one 0 then)."""
    vals = np.asarray(values, np.float32).reshape(-1)
    if vals.size and not np.all(np.isfinite(vals)):
        raise QccError(f"the C backend cannot write non-finite constants ({sym})")
    # numpy prints float32 scalars as their shortest round-tripping decimal (as flit)
    items = [t + "f" if "." in t or "e" in t else t + ".0f" for t in map(str, vals)] or ["0.0f"]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return f"{qualifier} float {sym}[{len(items)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def _f32(c: Ctx, op, v) -> Tensor:
    t = c.t(v)
    if t.qp is not None or t.dtype != np.float32:
        raise QccError(f"{_where(op)}: the C backend handles float32 operands only")
    return t


def _absent(op, i: int) -> bool:
    return i >= len(op.operands) or isinstance(op.operands[i].owner, donnx.NoValueOp)


def _const(op, i: int, what: str) -> np.ndarray:
    v = donnx.constant_array(op.operands[i])
    if v is None:
        raise QccError(f"{_where(op)}: the C backend needs {what} (operand {i}) to be a constant")
    return v


def _rank_1d_2d(op, x: Tensor) -> None:
    if len(x.shape) not in (3, 4):
        raise QccError(f"{_where(op)}: the C backend handles 1-D and 2-D spatial data, got rank {len(x.shape)}")


# Eight floats as one value: GNU C vectors that gcc and clang keep in registers
# (one AVX register, or two SSE/NEON ones) or, for other compilers and with
# -DQCC_NO_VECTOR_EXT, a struct the macros loop over. Block-scoped like the kernels' other #defines; loads and stores go
# through memcpy, so no alignment is assumed.
F8_OPEN = """\
#if defined(__GNUC__) && !defined(QCC_NO_VECTOR_EXT) && defined(__AVX__)
typedef float f8 __attribute__((__vector_size__(32)));
#define F8_SET(a, s) ((a) = (f8){(s), (s), (s), (s), (s), (s), (s), (s)})
#define F8_MADD(a, w, p) do { f8 l_; memcpy(&l_, (p), 32); (a) += (w) * l_; } while (0)
#define F8_VMADD(a, p, q) do { f8 l_, m_; memcpy(&l_, (p), 32); memcpy(&m_, (q), 32); (a) += l_ * m_; } while (0)
#elif defined(__GNUC__) && !defined(QCC_NO_VECTOR_EXT)
typedef float f4 __attribute__((__vector_size__(16)));
typedef struct { f4 lo, hi; } f8;
#define F8_SET(a, s) ((a).lo = (f4){(s), (s), (s), (s)}, (a).hi = (a).lo)
#define F8_MADD(a, w, p) do { f4 l_, h_; memcpy(&l_, (p), 16); memcpy(&h_, (p) + 4, 16); \\
    (a).lo += (w) * l_; (a).hi += (w) * h_; } while (0)
#define F8_VMADD(a, p, q) do { f4 l_, h_, m_, n_; memcpy(&l_, (p), 16); memcpy(&h_, (p) + 4, 16); \\
    memcpy(&m_, (q), 16); memcpy(&n_, (q) + 4, 16); (a).lo += l_ * m_; (a).hi += h_ * n_; } while (0)
#else
typedef struct { float v[8]; } f8;
#define F8_SET(a, s) do { int i_; for (i_ = 0; i_ < 8; i_++) (a).v[i_] = (s); } while (0)
#define F8_MADD(a, w, p) do { int i_; for (i_ = 0; i_ < 8; i_++) (a).v[i_] += (w) * (p)[i_]; } while (0)
#define F8_VMADD(a, p, q) do { int i_; for (i_ = 0; i_ < 8; i_++) (a).v[i_] += (p)[i_] * (q)[i_]; } while (0)
#endif
"""
F8_CLOSE = "#undef F8_SET\n#undef F8_MADD\n#undef F8_VMADD"
assert VB == CB == 8


# ------------------------------------------------------------------ conv


def _conv_geom(op, x: Tensor, w_shape, y: Tensor) -> ConvGeometry:
    _rank_1d_2d(op, x)
    return conv_geometry(op, op.onnx_attrs(), x.shape, w_shape, y.shape)


@_gen("Conv")
def _conv(c: Ctx, op) -> Kernel:
    x, y = _f32(c, op, op.operands[0]), _f32(c, op, op.results[0])
    wv = _const(op, 1, "the weights").astype(np.float32)
    g = _conv_geom(op, x, wv.shape, y)
    bias = np.zeros(g.M, np.float32) if _absent(op, 2) else _const(op, 2, "the bias").astype(np.float32).reshape(-1)
    if g.Cg == 1 and g.KH * g.KW <= 49:
        return _conv_depthwise(c, g, x, y, wv.reshape(g.M, -1), bias)
    return _conv_gemm(c, g, x, y, wv.reshape(g.M, -1), bias)


def _conv_depthwise(c: Ctx, g: ConvGeometry, x: Tensor, y: Tensor, wv: np.ndarray, bias: np.ndarray) -> Kernel:
    """One input channel per output: CB output channels at a time, their input rows
    for a band of output rows interleaved channel-innermost into a zero-bordered
    scratch band, so every output sums its KH*KW taps without bounds checks and each
    tap is one contiguous CB-wide multiply-add. Weights are [block][tap][channel]."""
    KT = g.KH * g.KW
    nblk = -(-g.M // CB)
    Wp = max(g.PL + g.W, (g.OW - 1) * g.SW + (g.KW - 1) * g.DW + 1)
    span = (g.KH - 1) * g.DH + 1  # input rows one output row reads
    rb = max(1, min(g.OH, (BAND_FLOATS // (Wp * CB) - span) // g.SH + 1))
    band = (rb - 1) * g.SH + span
    wd = np.zeros((nblk * CB, KT), np.float32)
    wd[:g.M] = wv
    wd = wd.reshape(nblk, CB, KT).transpose(0, 2, 1)
    bf = np.zeros(nblk * CB, np.float32)
    bf[:g.M] = bias
    c.inp("x", x), c.out("y", y), c.scratch("xp", "qcc_f32")
    body = f"""\
{F8_OPEN}{float_array("WD", wd.reshape(-1))}{float_array("BF", bf)}for (int32_t b = 0; b < {g.N}; b++)
for (int32_t blk = 0; blk < {nblk}; blk++) {{
    const int32_t nc = {g.M} - blk * {CB} < {CB} ? {g.M} - blk * {CB} : {CB};
    for (int32_t oh0 = 0; oh0 < {g.OH}; oh0 += {rb}) {{
        const int32_t rows = {g.OH} - oh0 < {rb} ? {g.OH} - oh0 : {rb};
        const int32_t ih0 = oh0 * {g.SH} - {g.PT};
        for (int32_t i = 0; i < {band * Wp * CB}; i++) xp[i] = 0.0f;
        for (int32_t ch = 0; ch < nc; ch++) {{
            const qcc_f32 *xc = x + (b * {g.C} + (blk * {CB} + ch) / {g.Mg}) * {g.H * g.W};
            for (int32_t r = 0; r < {band}; r++) {{
                const int32_t ih = ih0 + r;
                qcc_f32 *xr = xp + (r * {Wp} + {g.PL}) * {CB} + ch;
                if (ih < 0 || ih >= {g.H}) continue;
                for (int32_t iw = 0; iw < {g.W}; iw++) xr[iw * {CB}] = xc[ih * {g.W} + iw];
            }}
        }}
        for (int32_t r = 0; r < rows; r++)
        for (int32_t ow = 0; ow < {g.OW}; ow++) {{
            f8 a;
            float st[{CB}];
            qcc_f32 *yp = y + (b * {g.M} + blk * {CB}) * {g.P} + (oh0 + r) * {g.OW} + ow;
            memcpy(&a, BF + blk * {CB}, sizeof a);
            for (int32_t kh = 0; kh < {g.KH}; kh++)
            for (int32_t kw = 0; kw < {g.KW}; kw++) {{
                const qcc_f32 *xv = xp + ((r * {g.SH} + kh * {g.DH}) * {Wp} + ow * {g.SW} + kw * {g.DW}) * {CB};
                const float *wk = WD + (blk * {KT} + kh * {g.KW} + kw) * {CB};
                F8_VMADD(a, wk, xv);
            }}
            memcpy(st, &a, sizeof st);
            for (int32_t ch = 0; ch < nc; ch++) yp[ch * {g.P}] = st[ch];
        }}
    }}
}}"""
    return c.kernel(_indent(body + "\n" + F8_CLOSE, 4), scratch=band * Wp * CB * 4)


def _channel_tiles(*, rp: int, rc: int, n: str, K: int, Mp: int, Mv: int, x_at, w_row: str, b_at, y_at) -> str:
    """Output tiles of `rp` positions x `rc` vectors of 8 channels, accumulators in
    registers: per k, `rp` inputs (`x_at(p)`, broadcast) times `rc` weight vectors
    read from the [k][channel] row `w_row` (channels `m0`...). Positions j0 + p < n
    are stored through `y_at(p, m)`, channels m < Mv; `b_at(p, m)` points at 8 biases."""
    accs = ", ".join(f"a{p}_{q}" for p in range(rp) for q in range(rc))
    init = "\n".join(f"memcpy(&a{p}_{q}, {b_at(p, f'm0 + {8 * q}')}, sizeof(f8));"
                     for p in range(rp) for q in range(rc))
    loads = " ".join(f"const float x{p} = {x_at(p)};" for p in range(rp))
    macs = " ".join(f"F8_MADD(a{p}_{q}, x{p}, wk + {8 * q});" for p in range(rp) for q in range(rc))
    stores = []
    for p in range(rp):
        st = "\n".join(f"memcpy(st, &a{p}_{q}, sizeof st);\nfor (int32_t v = 0; v < 8 && m0 + {8 * q} + v < {Mv}; "
                       f"v++) {y_at(p, f'm0 + {8 * q} + v')} = st[v];" for q in range(rc))
        stores.append(st if p == 0 else f"if (j0 + {p} < {n}) {{\n{_indent(st, 4)}\n}}")
    return f"""\
for (int32_t j0 = 0; j0 < {n}; j0 += {rp})
for (int32_t m0 = 0; m0 < {Mp}; m0 += {8 * rc}) {{
    f8 {accs};
    float st[8];
{_indent(init, 4)}
    for (int32_t k = 0; k < {K}; k++) {{
        const float *wk = {w_row};
        {loads}
        {macs}
    }}
{_indent(chr(10).join(stores), 4)}
}}"""


def _conv_gemm(c: Ctx, g: ConvGeometry, x: Tensor, y: Tensor, wv: np.ndarray, bias: np.ndarray) -> Kernel:
    """Per group and band of output rows: gather every output position's patch into
    the columns of a [K][n] patch matrix (zeros for padding), then the product with
    the weights, accumulators in registers. Many positions: tiles of MB channels x
    VB positions, the weights [group][channel block][k][MB] (one broadcast weight
    per channel and k); few positions (SE blocks, late layers): `_channel_tiles` of
    2 positions x 8 or 16 channels, the weights [group][k][channel]."""
    K = g.K
    pointwise = g.KH == g.KW == g.SH == g.SW == 1 and g.no_pad
    rb = max(1, min(g.OH, COL_FLOATS // max(g.OW * K, 1)))
    n_max = rb * g.OW
    wide = n_max >= 2 * VB
    PB = _up(n_max, VB if wide else 2)
    c.inp("x", x), c.out("y", y), c.scratch("scratch", "qcc_f32")
    if pointwise:
        gather = f"""\
for (int32_t ci = 0; ci < {g.Cg}; ci++)
    memcpy(col + ci * {PB}, xg + ci * {g.H * g.W} + oh0 * {g.W}, (size_t)n * sizeof(float));"""
    else:
        gather = f"""\
for (int32_t ci = 0; ci < {g.Cg}; ci++)
for (int32_t kh = 0; kh < {g.KH}; kh++)
for (int32_t kw = 0; kw < {g.KW}; kw++) {{
    const int32_t t = (ci * {g.KH} + kh) * {g.KW} + kw;
{_indent(ow_bounds(g), 4)}
    for (int32_t r = 0; r < rows; r++) {{
        const int32_t ih = (oh0 + r) * {g.SH} - {g.PT} + kh * {g.DH};
        const qcc_f32 *xr;
        qcc_f32 *cr = col + t * {PB} + r * {g.OW};
        if (ih < 0 || ih >= {g.H}) continue;
        xr = xg + ci * {g.H * g.W} + ih * {g.W};
        for (int32_t ow = ow_lo; ow < ow_hi; ow++) cr[ow] = xr[ow * {g.SW} + dw];
    }}
}}"""
    clear = f"memset(col, 0, {K * PB} * sizeof(float));\n"
    if wide:
        Mgp = _up(g.Mg, MB)
        w4 = np.zeros((g.G, Mgp, K), np.float32)
        w4[:, :g.Mg] = wv.reshape(g.G, g.Mg, K)
        w4 = w4.reshape(g.G, Mgp // MB, MB, K).transpose(0, 1, 3, 2)
        bf = np.zeros((g.G, Mgp), np.float32)
        bf[:, :g.Mg] = bias.reshape(g.G, g.Mg)
        tables = float_array("W4", w4.reshape(-1)) + float_array("BF", bf.reshape(-1))
        init = "\n".join(f"F8_SET(a{i}, bf[{i}]);" for i in range(MB))
        macs = " ".join(f"F8_MADD(a{i}, wk[{i}], cr);" for i in range(MB))
        stores = "\n".join(f"if (m0 + {i} < {g.Mg}) {{\n    memcpy(st, &a{i}, sizeof st);\n"
                           f"    for (int32_t v = 0; v < cnt; v++) ym[{i * g.P} + v] = st[v];\n}}" for i in range(MB))
        product = f"""\
for (int32_t m0 = 0; m0 < {Mgp}; m0 += {MB}) {{
    const float *wg = W4 + (gi * {Mgp} + m0) * {K};
    const float *bf = BF + gi * {Mgp} + m0;
    for (int32_t j0 = 0; j0 < n; j0 += {VB}) {{
        const int32_t cnt = n - j0 < {VB} ? n - j0 : {VB};
        qcc_f32 *ym = y + (b * {g.M} + gi * {g.Mg} + m0) * {g.P} + oh0 * {g.OW} + j0;
        float st[{VB}];
        f8 {", ".join(f"a{i}" for i in range(MB))};
{_indent(init, 8)}
        for (int32_t k = 0; k < {K}; k++) {{
            const qcc_f32 *cr = col + k * {PB} + j0;
            const float *wk = wg + k * {MB};
            {macs}
        }}
{_indent(stores, 8)}
    }}
}}"""
        tables = F8_OPEN + tables
        scratch = K * PB
    else:
        RP, RC = 2, 2 if g.Mg > 8 else 1
        Mp = _up(g.Mg, 8 * RC)
        wt = np.zeros((g.G, K, Mp), np.float32)
        wt[:, :, :g.Mg] = wv.reshape(g.G, g.Mg, K).transpose(0, 2, 1)
        bf = np.zeros((g.G, Mp), np.float32)
        bf[:, :g.Mg] = bias.reshape(g.G, g.Mg)
        tables = F8_OPEN + float_array("WT", wt.reshape(-1)) + float_array("BF", bf.reshape(-1))
        product = f"""\
qcc_f32 *ym = y + (b * {g.M} + gi * {g.Mg}) * {g.P} + oh0 * {g.OW};
{_channel_tiles(rp=RP, rc=RC, n="n", K=K, Mp=Mp, Mv=g.Mg, x_at=lambda p: f"col[k * {PB} + j0 + {p}]",
                w_row=f"WT + (gi * {K} + k) * {Mp} + m0", b_at=lambda p, m: f"BF + gi * {Mp} + {m}",
                y_at=lambda p, m: f"ym[({m}) * {g.P} + j0 + {p}]")}"""
        scratch = K * PB
    body = f"""\
{tables}qcc_f32 *col = scratch;
for (int32_t b = 0; b < {g.N}; b++)
for (int32_t gi = 0; gi < {g.G}; gi++) {{
    const qcc_f32 *xg = x + (b * {g.C} + gi * {g.Cg}) * {g.H * g.W};
    for (int32_t oh0 = 0; oh0 < {g.OH}; oh0 += {rb}) {{
        const int32_t rows = {g.OH} - oh0 < {rb} ? {g.OH} - oh0 : {rb};
        const int32_t n = rows * {g.OW};
{_indent(clear + gather, 8)}
{_indent(product, 8)}
    }}
}}"""
    return c.kernel(_indent(body + "\n" + F8_CLOSE, 4), scratch=scratch * 4)


# ------------------------------------------------------------ matrix products


def _dense(c: Ctx, op, x: Tensor, y: Tensor, rows: int, K: int, N: int, wkn: np.ndarray, bias: np.ndarray,
           trans_a: bool) -> Kernel:
    """y[r][n] = bias[r][n] + sum_k x[r][k] * W[k][n] with constant W: per row, tiles of
    up to 32 outputs in registers (W stored [K][N rounded up], contiguous per k)."""
    RC = min(4, -(-N // 8))
    Np = _up(N, 8 * RC)
    wt = np.zeros((K, Np), np.float32)
    wt[:, :N] = wkn
    per_row = not np.all(bias == bias[:1])
    bt = np.zeros((rows if per_row else 1, Np), np.float32)
    bt[:, :N] = bias if per_row else bias[:1]
    c.inp("x", x), c.out("y", y)
    xk = f"x[k * {rows} + j0]" if trans_a else f"x[j0 * {K} + k]"
    product = _channel_tiles(rp=1, rc=RC, n=str(rows), K=K, Mp=Np, Mv=N, x_at=lambda p: xk, w_row=f"WT + k * {Np} + m0",
                             b_at=lambda p, m: f"BT + {f'j0 * {Np} + ' if per_row else ''}{m}",
                             y_at=lambda p, m: f"y[j0 * {N} + {m}]")
    body = f"{F8_OPEN}{float_array('WT', wt.reshape(-1))}{float_array('BT', bt.reshape(-1))}{product}\n{F8_CLOSE}"
    return c.kernel(_indent(body, 4))


def _batched_matmul(c: Ctx, op, a: Tensor, b: Tensor, y: Tensor, a_shape, b_shape, trans_a: bool, trans_b: bool,
                    bias: np.ndarray | None) -> Kernel:
    """y = a @ b of two run-time tensors, numpy batch broadcasting; the inner loop
    runs along a row of y (contiguous in b unless b is transposed)."""
    M, K = (a_shape[-1], a_shape[-2]) if trans_a else (a_shape[-2], a_shape[-1])
    N = b_shape[-2] if trans_b else b_shape[-1]
    batch = np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2]))
    nb = math.prod(batch)
    sam, sak = (1, M) if trans_a else (K, 1)
    sbk, sbn = (1, K) if trans_b else (N, 1)

    def offsets(shape) -> np.ndarray:
        lead = np.arange(math.prod(shape[:-2]), dtype=np.int64).reshape(shape[:-2]) * (shape[-1] * shape[-2])
        return np.broadcast_to(lead, batch).reshape(-1)

    oa, ob = offsets(tuple(a_shape)), offsets(tuple(b_shape))
    c.inp("a", a), c.inp("b", b), c.out("y", y)
    decl, offa, offb = "", "0", "0"
    if nb > 1:
        decl = (f"static const int32_t OA[{nb}] = {{{', '.join(map(str, oa))}}};\n"
                f"static const int32_t OB[{nb}] = {{{', '.join(map(str, ob))}}};\n")
        offa, offb = "OA[bi]", "OB[bi]"
    init = "0.0f"
    if bias is not None:
        decl += float_array("BI", np.broadcast_to(bias, (M, N)).reshape(-1))
        init = f"BI[m * {N} + n]"
    bn = "br[n]" if sbn == 1 else f"br[n * {sbn}]"
    body = f"""\
{decl}for (int32_t bi = 0; bi < {nb}; bi++)
for (int32_t m = 0; m < {M}; m++) {{
    qcc_f32 *yr = y + (bi * {M} + m) * {N};
    const qcc_f32 *ar = a + {offa} + m * {sam};
    for (int32_t n = 0; n < {N}; n++) yr[n] = {init};
    for (int32_t k = 0; k < {K}; k++) {{
        const float av = ar[k * {sak}];
        const qcc_f32 *br = b + {offb} + k * {sbk};
        for (int32_t n = 0; n < {N}; n++) yr[n] += av * {bn};
    }}
}}"""
    return c.kernel(_indent(body, 4))


@_gen("Gemm")
def _gemm(c: Ctx, op) -> Kernel:
    a, y = _f32(c, op, op.operands[0]), _f32(c, op, op.results[0])
    attrs = op.onnx_attrs()
    ta, tb = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    M, N = y.shape
    K = a.shape[0] if ta else a.shape[1]
    bias = np.zeros((M, N), np.float32)
    if not _absent(op, 2) and beta != 0:
        bias = np.broadcast_to(_const(op, 2, "C").astype(np.float32) * np.float32(beta), (M, N))
    wb = donnx.constant_array(op.operands[1])
    if wb is not None:
        wkn = (wb.T if tb else wb).astype(np.float32) * np.float32(alpha)
        return _dense(c, op, a, y, M, K, N, wkn, bias, ta)
    if alpha != 1.0:
        raise QccError(f"{_where(op)}: the C backend needs alpha = 1 when B is not a constant")
    b = _f32(c, op, op.operands[1])
    return _batched_matmul(c, op, a, b, y, a.shape, b.shape, ta, tb, bias)


@_gen("MatMul")
def _matmul(c: Ctx, op) -> Kernel:
    a, y = _f32(c, op, op.operands[0]), _f32(c, op, op.results[0])
    a_shape = (1, *a.shape) if len(a.shape) == 1 else a.shape
    wb = donnx.constant_array(op.operands[1])
    if wb is not None and wb.ndim <= 2:
        w2 = wb.reshape(-1, 1) if wb.ndim == 1 else wb
        K, N = w2.shape
        rows = math.prod(a_shape[:-1])
        return _dense(c, op, a, y, rows, K, N, w2.astype(np.float32), np.zeros((1, N), np.float32), False)
    b = _f32(c, op, op.operands[1])
    b_shape = (*b.shape, 1) if len(b.shape) == 1 else b.shape
    return _batched_matmul(c, op, a, b, y, a_shape, b_shape, False, False, None)


# ------------------------------------------------------------ elementwise

_BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}


@_gen(*_BINARY)
def _binary(c: Ctx, op) -> Kernel:
    a, b, y = _f32(c, op, op.operands[0]), _f32(c, op, op.operands[1]), _f32(c, op, op.results[0])
    c.inp("a", a), c.inp("b", b), c.out("y", y)
    body = f"y[iy] = a[i0] {_BINARY[op.onnx_type]} b[i1];"
    return c.kernel(_indent(broadcast_loops(y.shape, [a.shape, b.shape], body), 4))


@_gen("Clip")
def _clip(c: Ctx, op) -> Kernel:
    if c.opset < 11:
        a = op.onnx_attrs()
        lo, hi = a.get("min"), a.get("max")
    else:
        lo = None if _absent(op, 1) else _const(op, 1, "min")
        hi = None if _absent(op, 2) else _const(op, 2, "max")
        lo = None if lo is None or lo.size == 0 else float(lo.reshape(-1)[0])
        hi = None if hi is None or hi.size == 0 else float(hi.reshape(-1)[0])
    lo = None if lo is None or np.float32(lo) == -np.inf else lo
    hi = None if hi is None or np.float32(hi) == np.inf else hi
    expr = "t = v;"
    if lo is not None:
        expr += f"\nt = t < {flit(lo)} ? {flit(lo)} : t;"
    if hi is not None:
        expr += f"\nt = t > {flit(hi)} ? {flit(hi)} : t;"
    return _float_unary(c, op, expr)


def _libm(k: Kernel) -> Kernel:
    k.needs_libm = True
    return k


_UNARY = {
    "Neg": ("t = -v;", False),
    "Abs": ("t = v < 0.0f ? -v : v;", False),
    "Sigmoid": ("t = 1.0f / (1.0f + expf(-v));", True),
    "Tanh": ("t = tanhf(v);", True),
    "Exp": ("t = expf(v);", True),
    "Sqrt": ("t = sqrtf(v);", True),
}


@_gen(*_UNARY)
def _unary(c: Ctx, op) -> Kernel:
    expr, libm = _UNARY[op.onnx_type]
    k = _float_unary(c, op, expr)
    return _libm(k) if libm else k


@_gen("BatchNormalization")
def _batchnorm(c: Ctx, op) -> Kernel:
    """Inference BatchNormalization (one not folded into a conv): y = x * s[c] + t[c]."""
    x, y = _f32(c, op, op.operands[0]), _f32(c, op, op.results[0])
    if len(op.results) > 1 or op.onnx_attrs().get("training_mode", 0):
        raise QccError(f"{_where(op)}: the C backend handles inference BatchNormalization only")
    scale, b, mean, var = (_const(op, i, n).astype(np.float64).reshape(-1)
                           for i, n in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
    s = scale / np.sqrt(var + float(op.onnx_attrs().get("epsilon", 1e-5)))
    ch = x.shape[1] if len(x.shape) > 1 else 1
    s, t = np.broadcast_to(s, (ch,)), np.broadcast_to(b - mean * s, (ch,))
    inner = math.prod(x.shape[2:])
    c.inp("x", x), c.out("y", y)
    body = f"""\
{float_array("S", s)}{float_array("T", t)}for (int32_t o = 0; o < {x.shape[0] if x.shape else 1}; o++)
for (int32_t ch = 0; ch < {ch}; ch++) {{
    const float sc = S[ch], sh = T[ch];
    const int32_t base = (o * {ch} + ch) * {inner};
    for (int32_t i = 0; i < {inner}; i++) y[base + i] = x[base + i] * sc + sh;
}}"""
    return c.kernel(_indent(body, 4))


# ------------------------------------------------------------ pooling and reductions


def _pool(c: Ctx, op, kind: str) -> Kernel:
    x, y = _f32(c, op, op.operands[0]), _f32(c, op, op.results[0])
    _rank_1d_2d(op, x)
    attrs = op.onnx_attrs()
    if kind == "max" and len(op.results) > 1 and op.results[1].uses:
        raise QccError(f"{_where(op)}: the C backend does not compute MaxPool's Indices output")
    ks, strd, dils, out, pb, pe = _pool_geometry(attrs, list(x.shape[2:]))
    if tuple(out) != tuple(y.shape[2:]):
        raise QccError(f"{_where(op)}: result shape {list(y.shape)} disagrees with the pooling geometry")
    H, W = _spatial(x.shape)
    OH, OW = _spatial(y.shape)
    KH, KW = _hw(ks, 1)
    SH, SW = _hw(strd, 1)
    DH, DW = _hw(dils, 1)
    PT, PL = _hw(pb, 0)
    PBt, PR = _hw(pe, 0)
    for o, s, b, k, d, n in ((OH, SH, PT, KH, DH, H), (OW, SW, PL, KW, DW, W)):
        for i in range(o):
            if not any(0 <= i * s - b + j * d < n for j in range(k)):
                raise QccError(f"{_where(op)}: a pooling window lies entirely in the padding")
    c.inp("x", x), c.out("y", y)
    if kind == "max":
        init = "const union { uint32_t u; float f; } lowest = { 0xff800000u };\nfloat best = lowest.f;"
        tap = "best = v > best ? v : best;"
        finish = f"yc[oh * {OW} + ow] = best;"
    else:
        include_pad = bool(attrs.get("count_include_pad", 0))
        lo_h, hi_h, lo_w, hi_w = (-PT, H + PBt, -PL, W + PR) if include_pad else (0, H, 0, W)
        init = "float s = 0.0f;"
        tap = "s += v;"
        finish = f"""\
{{
    int32_t ch_ = 0, cw_ = 0;
    for (int32_t kh = 0; kh < {KH}; kh++) {{
        const int32_t ih = oh * {SH} - {PT} + kh * {DH};
        ch_ += ih >= {lo_h} && ih < {hi_h};
    }}
    for (int32_t kw = 0; kw < {KW}; kw++) {{
        const int32_t iw = ow * {SW} - {PL} + kw * {DW};
        cw_ += iw >= {lo_w} && iw < {hi_w};
    }}
    yc[oh * {OW} + ow] = s / (float)(ch_ * cw_);
}}"""
    body = f"""\
for (int32_t nc = 0; nc < {x.shape[0] * x.shape[1]}; nc++) {{
    const qcc_f32 *xc = x + nc * {H * W};
    qcc_f32 *yc = y + nc * {OH * OW};
    for (int32_t oh = 0; oh < {OH}; oh++)
    for (int32_t ow = 0; ow < {OW}; ow++) {{
{_indent(init, 8)}
        for (int32_t kh = 0; kh < {KH}; kh++) {{
            const int32_t ih = oh * {SH} - {PT} + kh * {DH};
            if (ih < 0 || ih >= {H}) continue;
            for (int32_t kw = 0; kw < {KW}; kw++) {{
                const int32_t iw = ow * {SW} - {PL} + kw * {DW};
                float v;
                if (iw < 0 || iw >= {W}) continue;
                v = xc[ih * {W} + iw];
{_indent(tap, 16)}
            }}
        }}
{_indent(finish, 8)}
    }}
}}"""
    return c.kernel(_indent(body, 4))


@_gen("MaxPool")
def _max_pool(c: Ctx, op) -> Kernel:
    return _pool(c, op, "max")


@_gen("AveragePool")
def _avg_pool(c: Ctx, op) -> Kernel:
    return _pool(c, op, "avg")


def _mean(c: Ctx, op, x: Tensor, y: Tensor, axes) -> Kernel:
    """Mean over `axes`: every input element added into its output, then the
    division by the count, like numpy's mean."""
    keep = [1 if d in axes else n for d, n in enumerate(x.shape)]
    count = math.prod(x.shape[d] for d in axes)
    c.inp("x", x), c.out("y", y)
    loops = broadcast_loops(x.shape, [keep], "y[i0] += x[iy];")
    body = (f"for (int32_t i = 0; i < {y.size}; i++) y[i] = 0.0f;\n{loops}\n"
            f"for (int32_t i = 0; i < {y.size}; i++) y[i] = y[i] / {flit(count)};")
    return c.kernel(_indent(body, 4))


@_gen("GlobalAveragePool")
def _global_avg_pool(c: Ctx, op) -> Kernel:
    x, y = _f32(c, op, op.operands[0]), _f32(c, op, op.results[0])
    return _mean(c, op, x, y, tuple(range(2, len(x.shape))))


@_gen("ReduceMean")
def _reduce_mean(c: Ctx, op) -> Kernel:
    x, y = _f32(c, op, op.operands[0]), _f32(c, op, op.results[0])
    inputs = [None] + [None if _absent(op, i) else _const(op, i, "axes") for i in range(1, len(op.operands))]
    axes = _reduce_axes(inputs, op.onnx_attrs(), c.opset, 18, len(x.shape))
    if not axes:
        c.inp("x", x), c.out("y", y)
        return c.kernel(f"    memcpy(y, x, {y.nbytes});")
    return _mean(c, op, x, y, axes)


# ------------------------------------------------------------ data movement


@_gen(*VIEW_OPS)
def _view_copy(c: Ctx, op) -> Kernel:
    """A reshape the emitter could not alias (both ends are fixed buffers): a copy."""
    x, y = c.t(op.operands[0]), c.t(op.results[0])
    c.inp("x", x), c.out("y", y)
    return c.kernel(f"    memcpy(y, x, {y.nbytes});" if y.nbytes else "    (void)x;\n    (void)y;")


@_gen("Concat")
def _concat(c: Ctx, op) -> Kernel:
    y = _f32(c, op, op.results[0])
    axis = int(op.onnx_attrs().get("axis", 0)) % max(len(y.shape), 1)
    outer, inner = math.prod(y.shape[:axis]), math.prod(y.shape[axis + 1:])
    ychunk = y.shape[axis] * inner
    parts, off = [], 0
    for i, v in enumerate(op.operands):
        x = _f32(c, op, v)
        name = c.inp(f"x{i}", x)
        chunk = x.shape[axis] * inner
        if chunk:
            parts.append(f"for (int32_t o = 0; o < {outer}; o++)\n"
                         f"    memcpy(y + o * {ychunk} + {off}, {name} + o * {chunk}, {chunk} * sizeof(float));")
        off += chunk
    c.out("y", y)
    return c.kernel(_indent("\n".join(parts) or "(void)y;", 4))


@_gen("Transpose")
def _transpose(c: Ctx, op) -> Kernel:
    x, y = _f32(c, op, op.operands[0]), _f32(c, op, op.results[0])
    perm = op.onnx_attrs().get("perm") or list(range(len(x.shape)))[::-1]
    xs = strides(x.shape)
    c.inp("x", x), c.out("y", y)
    loops = "".join(f"for (int32_t d{d} = 0; d{d} < {n}; d{d}++)\n" for d, n in enumerate(y.shape))
    idx = " + ".join(f"d{d} * {xs[p]}" for d, p in enumerate(perm)) or "0"
    return c.kernel(_indent(f"int32_t iy = 0;\n{loops}y[iy++] = x[{idx}];", 4))


@_gen("Pad")
def _pad(c: Ctx, op) -> Kernel:
    x, y = _f32(c, op, op.operands[0]), _f32(c, op, op.results[0])
    attrs = op.onnx_attrs()
    if attrs.get("mode", "constant") != "constant":
        raise QccError(f"{_where(op)}: the C backend pads in constant mode only, not {attrs.get('mode')!r}")
    r = len(x.shape)
    if c.opset < 11:
        pads, value, axes = list(attrs.get("pads", attrs.get("paddings", []))), attrs.get("value", 0.0), None
    else:
        pads = [int(p) for p in _const(op, 1, "pads").reshape(-1)]
        value = 0.0 if _absent(op, 2) else _const(op, 2, "the value").reshape(-1)
        value = float(value[0]) if np.size(value) else 0.0
        axes = None if _absent(op, 3) else [int(a) % r for a in _const(op, 3, "axes").reshape(-1)]
    if axes is not None:
        full = [0] * (2 * r)
        for i, a in enumerate(axes):
            full[a], full[a + r] = pads[i], pads[i + len(axes)]
        pads = full
    if len(pads) != 2 * r or min(pads, default=0) < 0:
        raise QccError(f"{_where(op)}: the C backend pads by non-negative amounts only, got {pads}")
    if tuple(s + pads[d] + pads[d + r] for d, s in enumerate(x.shape)) != tuple(y.shape):
        raise QccError(f"{_where(op)}: result shape {list(y.shape)} disagrees with pads {pads}")
    c.inp("x", x), c.out("y", y)
    ys, xs = strides(y.shape), strides(x.shape)
    lead = list(range(r - 1))
    loops = "".join(f"for (int32_t d{d} = 0; d{d} < {x.shape[d]}; d{d}++)\n" for d in lead)
    dst = " + ".join([f"(d{d} + {pads[d]}) * {ys[d]}" for d in lead] + [str(pads[r - 1] if r else 0)])
    src = " + ".join([f"d{d} * {xs[d]}" for d in lead] + ["0"])
    row = x.shape[-1] if r else 1
    fill = f"for (int32_t i = 0; i < {y.size}; i++) y[i] = {flit(value)};"
    copy = f"\n{loops}memcpy(y + {dst}, x + {src}, {row} * sizeof(float));" if x.size else "\n(void)x;"
    return c.kernel(_indent(fill + copy, 4))
