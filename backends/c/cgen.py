"""C text helpers shared by the C backend: types, literals, arrays, comments, and
the prelude of integer helpers every generated model.c starts with.

The prelude is the one C restatement of `qcc.numerics` (docs/numerics.md):
requantize32/64, SRDHM, RDBP, round-half-away quantize, dequantize and sub-byte
unpacking. Nothing else in the generated code does arithmetic on multipliers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np

from qcc import numerics as nx

# storage dtype -> (C type for declarations, alias-safe C type for arena access)
_CTYPES = {
    np.dtype(np.int8): ("int8_t", "qcc_i8"),
    np.dtype(np.uint8): ("uint8_t", "qcc_u8"),
    np.dtype(np.int16): ("int16_t", "qcc_i16"),
    np.dtype(np.uint16): ("uint16_t", "qcc_u16"),
    np.dtype(np.int32): ("int32_t", "qcc_i32"),
    np.dtype(np.uint32): ("uint32_t", "qcc_u32"),
    np.dtype(np.int64): ("int64_t", "qcc_i64"),
    np.dtype(np.float32): ("float", "qcc_f32"),
}


def ctype(dtype: np.dtype) -> str:
    """The plain C type of a storage dtype (`int8_t`, `float`, ...)."""
    return _CTYPES[np.dtype(dtype)][0]


def atype(dtype: np.dtype) -> str:
    """The alias-safe C type kernels use for tensors (arena memory is reused
    across element types; see QCC_MAY_ALIAS in the prelude)."""
    return _CTYPES[np.dtype(dtype)][1]


def lit(v: int) -> str:
    """An integer literal valid in C99 for any value of int64."""
    v = int(v)
    if -(1 << 31) < v < (1 << 31):
        return str(v) if -(1 << 15) < v < (1 << 15) else f"INT32_C({v})"
    if v == nx.INT32_MIN:
        return "INT32_MIN"
    if v == nx.INT64_MIN:
        return "INT64_MIN"
    return f"INT64_C({v})"


def flit(x: float) -> str:
    """A double literal that reads back to exactly `x` (Python's repr is the
    shortest round-tripping decimal; C's strtod rounds it to the same double)."""
    t = repr(float(x))
    if not np.isfinite(x):
        raise ValueError(f"{x} has no C literal")
    return t if any(c in t for c in ".en") else t + ".0"


def f32lit(x: float) -> str:
    """`x` rounded to float32 as numpy does (`np.float32(x)`), as an exact C float expression."""
    return f"(float){flit(float(np.float32(x)))}"


def comment_text(s: str) -> str:
    """`s` as a JSON string that can neither end nor open a C comment: '*' is
    written as the JSON escape \\u002a (so no '*/' or '/*'), '?' as \\u003f (no
    trigraphs), non-ASCII and control characters (newlines) as \\u/\\n escapes.
    json.loads reads it back unchanged."""
    return _comment_safe(json.dumps(s, ensure_ascii=True))


def comment_json(obj) -> str:
    """Any JSON value made safe for a /* */ comment (see comment_text)."""
    return _comment_safe(json.dumps(obj, ensure_ascii=True, separators=(",", ":")))


def _comment_safe(js: str) -> str:
    # '*' and '?' occur in JSON text only inside strings, where these escapes are valid
    return js.replace("*", "\\u002a").replace("?", "\\u003f")


def array(sym: str, ct: str, values: Iterable, per_line: int = 20, hexa: bool = False,
          qualifier: str = "static const") -> str:
    vals = [int(v) for v in values]
    if hexa:
        items = [f"0x{v:02x}" for v in vals]
    else:
        items = [lit(v) if not (-(1 << 31) < v < (1 << 31)) else str(v) for v in vals]
    if not items:
        items = ["0"]  # C99 has no empty arrays
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n    ".join(lines)
    return f"{qualifier} {ct} {sym}[{max(len(vals), 1)}] = {{\n    {body}\n}};\n"


def darray(sym: str, values: Iterable[float], qualifier: str = "static const") -> str:
    items = [flit(v) for v in values] or ["0.0"]
    lines = [", ".join(items[i:i + 6]) for i in range(0, len(items), 6)]
    return f"{qualifier} double {sym}[{len(items)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def strides(shape) -> list[int]:
    out, acc = [], 1
    for d in reversed(list(shape)):
        out.append(acc)
        acc *= int(d)
    return list(reversed(out))


PRELUDE = r"""
#include <stdint.h>
#include <string.h>
#if defined(__AVX512VBMI__) && defined(__AVX512BW__)
#include <immintrin.h>
#endif
/* x86-64 with AVX-512 VNNI: the 8-bit GEMM kernels take register tiles of
   VPDPBUSD (exact u8 x s8 dot products of four, added to int32 lanes). */
#if defined(__x86_64__) && defined(__AVX512VNNI__) && defined(__AVX512F__)
#define QCC_X86_VNNI 1
#include <immintrin.h>
#else
#define QCC_X86_VNNI 0
#endif
#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

/* Every helper is defined in every model.c; a model uses some of them. Marked
   unused so that clang's -Wunused-function (which also covers static inline
   functions of the main file) stays quiet under -Werror. */
#if defined(__GNUC__)
#define QCC_HELPER static inline __attribute__((__unused__))
#else
#define QCC_HELPER static inline
#endif

/* Kernels choose loop orders by what the compiler can vectorise: with wide SIMD
   (x86-64, AArch64) long loops along output positions; without (Cortex-M,
   RV32) dot products along the patch, with the DSP extension's dual 16-bit
   multiply-accumulate where there is one. Both orders compute the same sums. */
#if defined(__x86_64__) || defined(__aarch64__)
#define QCC_WIDE_SIMD 1
#else
#define QCC_WIDE_SIMD 0
#endif

/* The dot-product kernels are written for the vectoriser: gcc's -O2 only
   vectorises loops it needs no runtime checks for (very-cheap cost model), so
   they ask for its usual cost model whatever the -O level. */
#if defined(__GNUC__) && !defined(__clang__) && QCC_WIDE_SIMD
#define QCC_VECTOR_FN __attribute__((__optimize__("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define QCC_VECTOR_FN
#endif

#if defined(__ARM_FEATURE_DSP)
/* SXTB16/UXTB16 of the odd bytes: the instructions' own ROR #8 operand (gcc 12's
   ACLE has no form of it; a separate rotate costs one instruction per word). */
QCC_HELPER uint32_t qcc_sxtb16_odd(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
QCC_HELPER uint32_t qcc_uxtb16_odd(uint32_t x) {
    uint32_t r;
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
/* clamp(v, lo, 127) for int8 results: SSAT, and a compare when lo > -128. */
QCC_HELPER int32_t qcc_ssat8(int32_t v, int32_t lo) {
    const int32_t t = __ssat(v, 8);
    return t < lo ? lo : t;
}
#endif

/* Between the steps of an unrolled microcontroller dot product: gcc's first
   scheduling pass (not pressure-aware on RISC-V) would hoist every load of the
   unrolled steps to the top and spill the accumulators; an empty asm with a
   memory clobber keeps each step's loads in their step. Register values are
   unaffected (the accumulators are locals whose address is never taken). */
#if defined(__GNUC__)
#define QCC_MCU_STEP() __asm__ __volatile__("" ::: "memory")
#else
#define QCC_MCU_STEP() ((void)0)
#endif

/* A 32-bit load from any address (one LDR where unaligned access is allowed). */
QCC_HELPER uint32_t qcc_ld32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Arena memory is reused by tensors of different element types. Kernels
   access it through these typedefs, which gcc and clang exempt from
   type-based alias analysis (like char); with another compiler, build with its
   equivalent of -fno-strict-aliasing. */
#if defined(__GNUC__)
#define QCC_MAY_ALIAS __attribute__((__may_alias__))
#else
#define QCC_MAY_ALIAS
#endif
typedef int8_t qcc_i8;
typedef uint8_t qcc_u8;
typedef int16_t qcc_i16 QCC_MAY_ALIAS;
typedef uint16_t qcc_u16 QCC_MAY_ALIAS;
typedef int32_t qcc_i32 QCC_MAY_ALIAS;
typedef uint32_t qcc_u32 QCC_MAY_ALIAS;
typedef int64_t qcc_i64 QCC_MAY_ALIAS;
typedef float qcc_f32 QCC_MAY_ALIAS;

/* Float kernels that must round every operation like numpy does: no fused
   multiply-add, even when the build enables contraction (-ffp-contract=fast,
   the GNU C default, which fuses x * a + b on FMA targets). */
#if defined(__clang__)
#define QCC_EXACT_FLOAT_FN
#define QCC_EXACT_FLOAT_BODY _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define QCC_EXACT_FLOAT_FN __attribute__((__optimize__("fp-contract=off")))
#define QCC_EXACT_FLOAT_BODY
#else
#define QCC_EXACT_FLOAT_FN
#define QCC_EXACT_FLOAT_BODY
#endif

/* floor(x / 2^e): an arithmetic right shift. C99 leaves >> of a negative
   value implementation-defined (gcc and clang shift arithmetically); this
   form is portable and compiles to a single arithmetic shift. */
QCC_HELPER int64_t qcc_asr(int64_t x, int e) { return x >= 0 ? x >> e : ~(~x >> e); }

QCC_HELPER int64_t qcc_sat32(int64_t x) {
    return x < INT32_MIN ? INT32_MIN : (x > INT32_MAX ? INT32_MAX : x);
}

QCC_HELPER int32_t qcc_clamp(int64_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : (int32_t)x);
}

/* gemmlowp's SaturatingRoundingDoublingHighMul: (a*b + 2^30) >> 31 in 64-bit
   arithmetic; the one overflow, INT32_MIN * INT32_MIN, saturates. */
QCC_HELPER int64_t qcc_srdhm(int64_t a, int64_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    return qcc_asr(a * b + ((int64_t)1 << 30), 31);
}

/* gemmlowp's RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from 0. */
QCC_HELPER int64_t qcc_rdbp(int64_t x, int e) {
    if (e <= 0) return x;
    return qcc_asr(x + ((int64_t)1 << (e - 1)) - (x < 0), e);
}

/* requantize32 (docs/numerics.md): RDBP(SRDHM(sat32(acc << max(shift, 0)), m0), max(-shift, 0)).
   The left shift is a multiplication: << of a negative value is undefined in C99. */
QCC_HELPER int64_t qcc_requant32(int64_t acc, int32_t m0, int shift) {
    int64_t x = acc;
    if (shift > 0) x = qcc_sat32(acc * ((int64_t)1 << shift));
    return qcc_rdbp(qcc_srdhm(x, m0), shift > 0 ? 0 : -shift);
}

/* requantize32 of a 32-bit accumulator with m0 in {0} U [2^30, 2^31) (every
   multiplier qcc makes): the same value as qcc_requant32 in 32-bit arithmetic
   where it can be. SRDHM's product stays below 2^62 in magnitude, so its
   result fits int32; RDBP(h, e) = floor((h + 2^(e-1) - [h < 0]) / 2^e) is
   computed as gemmlowp does, (h >> e) + (remainder > threshold), which cannot
   overflow. */
QCC_HELPER int32_t qcc_rq32(int32_t acc, int32_t m0, int shift) {
    const int32_t x = shift > 0 ? (int32_t)qcc_sat32((int64_t)acc * ((int64_t)1 << shift)) : acc;
    const int32_t h = (int32_t)qcc_asr((int64_t)x * m0 + ((int64_t)1 << 30), 31);
    const int e = shift > 0 ? 0 : -shift;
    const uint32_t mask = (uint32_t)((((uint64_t)1) << e) - 1u);
    const uint32_t rem = (uint32_t)h & mask;
    const uint32_t threshold = (mask >> 1) + (h < 0);
    return (int32_t)qcc_asr(h, e) + (rem > threshold);
}

/* qcc_rq32 for shift = -e <= 0 (multipliers below 1, the usual case): no
   saturating left shift, and the rounding shift in 32-bit arithmetic. */
QCC_HELPER int32_t qcc_rq32_down(int32_t acc, int32_t m0, int e) {
    const int32_t h = (int32_t)qcc_asr((int64_t)acc * m0 + ((int64_t)1 << 30), 31);
    const uint32_t mask = (uint32_t)((((uint64_t)1) << e) - 1u);
    const uint32_t rem = (uint32_t)h & mask;
    const uint32_t threshold = (mask >> 1) + (h < 0);
    const int32_t q = h >= 0 ? h >> e : ~(~h >> e);
    return q + (rem > threshold);
}

/* requantize64 (TFLite's 16x8 kernels): the Q0.31 multiplier rounded to 16
   bits, then sat32((acc * m16 + 2^(14 - shift)) >> (15 - shift)); shift < 8. */
QCC_HELPER int64_t qcc_requant64(int64_t acc, int32_t m0, int shift) {
    int64_t m16 = m0 < 0x7FFF0000 ? (((int64_t)m0 + (1 << 15)) >> 16) : 0x7FFF;
    int total = 15 - shift;
    return qcc_sat32(qcc_asr(acc * m16 + ((int64_t)1 << (total - 1)), total));
}

/* quantize: clamp(round_half_away(x / scale) + zp, lo, hi), x / scale in double.
   round_half_away(v) = sign(v) * floor(|v| + 0.5), the same double operations
   numpy performs (so this needs IEEE double without excess precision, as on
   SSE2/AArch64/RISC-V; not x87). No libm: floor of a non-negative value below
   2^62 is the conversion to int64 (larger magnitudes clamp anyway). NaN maps to
   lo. Branch-free, so that loops over it vectorise. */
QCC_HELPER int32_t qcc_quantize(float x, double scale, int32_t zp, int32_t lo, int32_t hi) {
    const double v = (double)x / scale;
    const double a = (v < 0 ? -v : v) + 0.5;
    const int64_t r = (int64_t)(a < 4611686018427387904.0 ? a : 4611686018427387904.0);
    const int64_t q = (v < 0 ? -r : r) + zp;
    const int32_t c = q < lo ? lo : (q > hi ? hi : (int32_t)q);
    return v != v ? lo : c;
}

/* dequantize: float32((q - zp) * scale), the product in double. */
QCC_HELPER float qcc_dequantize(int32_t q, int32_t zp, double scale) {
    return (float)((double)(q - zp) * scale);
}

/* y[i] = table[x[i] + 128] for 8-bit codes (y may be x). With AVX-512 VBMI,
   64 lookups at a time: two two-table byte permutes (7 index bits each) and a
   blend on the index's top bit; the scalar loop is the definition. */
QCC_HELPER void qcc_lookup_i8(const int8_t *table, const qcc_i8 *x, qcc_i8 *y, int32_t n) {
    int32_t i = 0;
#if defined(__AVX512VBMI__) && defined(__AVX512BW__)
    const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
    const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (; i + 64 <= n; i += 64) {
        const __m512i idx = _mm512_xor_si512(_mm512_loadu_si512(x + i), flip);
        const __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1);
        const __m512i hi = _mm512_permutex2var_epi8(t2, idx, t3);
        _mm512_storeu_si512(y + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi));
    }
#endif
    for (; i < n; i++) y[i] = table[x[i] + 128];
}

/* Packed 4- and 2-bit weights: element i in bits (i % per_byte) * width of byte
   i / per_byte, two's complement within the field (the CMSIS-NN order). */
QCC_HELPER int32_t qcc_unpack4(const uint8_t *p, int32_t i) {
    int32_t v = (p[i >> 1] >> ((i & 1) << 2)) & 15;
    return v - ((v & 8) << 1);
}
QCC_HELPER int32_t qcc_unpack2(const uint8_t *p, int32_t i) {
    int32_t v = (p[i >> 2] >> ((i & 3) << 1)) & 3;
    return v - ((v & 2) << 1);
}
"""
