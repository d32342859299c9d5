"""The fast C kernel paths (qcc.backends.c.kernels: "gemm", "pix", "dw", the fully
connected gemm, the vectorised lookup) and the residual add fused into a
convolution's epilogue, bit for bit against the integer interpreter.

Random 8-bit (and 4-bit-range) convolutions of every kind - pointwise, regular,
strided, dilated, padded, grouped, depthwise with a channel multiplier, 2/4/8-bit
weights, shapes large enough for several row blocks - are forced through each
path; the generated text is checked to be that path's. The same models also
build with -O3 -march=native, where gcc vectorises the dot products (VNNI on
this class of host) and the lookup takes its AVX-512 VBMI form.

Without gcc the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_c_backend import (QP, Case, check_c_against_interpreter, fc_case, interpreter_codes, module_of, op_of,
                            qconst, random_inputs)
from xdsl.context import Context

from qcc import numerics as nx
from qcc.backends.c import emit_model
from qcc.backends.c import kernels as ck
from qcc.backends.c.run import CFLAGS, compiler, io_meta
from qcc.dialects import quant as q
from qcc.float_kernels import _conv_geometry
from qcc.passes.fuse_residual_add import EPILOGUE_OF, FuseResidualAddPass

# the marker each path leaves in its kernel: re-laid-out weight tables
MARKERS = {"gemm": ("static const int8_t W8[", "static const uint8_t WP["), "pix": ("static const int8_t WT[",),
           "dw": ("static const int8_t WD[", "static const int8_t WQ[")}


@pytest.fixture(scope="session", autouse=True)
def gcc():
    if compiler() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no gcc on PATH (or $CC): the C backend must be tested in CI")
        pytest.skip("no gcc on PATH (or $CC): the C backend tests need a host C compiler")


def conv8(rng, i: int, depthwise: bool, big: bool = False, mg_max: int = 11,
          single_input: bool = False) -> tuple[Case, None]:
    """A random convolution on 8-bit-storage codes with 32-bit accumulators."""
    nd = 1 + (i % 5 != 0)
    if depthwise:
        group, cg, mg = int(rng.integers(1, 40)), 1, int(rng.integers(1, 3))
        if single_input:  # one input channel shared by every output (a grayscale image's first conv)
            group, mg = 1, int(rng.integers(2, mg_max))
    else:
        group, cg, mg = [1, 1, 2][i % 3], int(rng.integers(1, 40)), int(rng.integers(1, mg_max))
    ks = [int(rng.integers(1, 6)) for _ in range(nd)]
    strides = [int(rng.integers(1, 3)) for _ in range(nd)]
    dils = [int(rng.integers(1, 3)) if i % 4 == 1 else 1 for _ in range(nd)]
    lo_sp = 24 if big else 3
    sp = [max(int(rng.integers(lo_sp, lo_sp + 12)), (k - 1) * d + 1) for k, d in zip(ks, dils)]
    pads = [int(rng.integers(0, k)) for k in ks] * 2 if i % 3 else [0] * (2 * nd)
    x_bits = [8, 8, 4][i % 3]
    w_bits = [8, 4, 8, 2][i % 4]
    C, M = group * cg, group * mg
    x_qp = QP(x_bits, 0.05, int(rng.integers(*nx.qrange(x_bits))) // 2)
    y_qp = QP(8, 0.3, int(rng.integers(-100, 100)))
    wmax = nx.qrange(w_bits, narrow=True)[1]
    w = rng.integers(-wmax, wmax + 1, size=(M, cg, *ks))
    sw = rng.uniform(0.002, 0.05, size=M)
    b = rng.integers(-20000, 20000, size=M)
    attrs = dict(strides=strides, dilations=dils, group=group, kernel_shape=ks, pads=pads)
    if i % 4 == 2:
        attrs.update(act_min=y_qp.qmin // 2, act_max=y_qp.qmax // 3)
    st, dl, pb, pe = _conv_geometry(attrs, np.zeros((1, C, *sp)), w)
    out = [(sp[d] + pb[d] + pe[d] - ((ks[d] - 1) * dl[d] + 1)) // st[d] + 1 for d in range(nd)]

    def make(qv):
        cw = qconst(w, QP(w_bits, sw, [0] * M, axis=0))
        cb = qconst(b, QP(32, 0.05 * sw, [0] * M, axis=0))
        return [cw, cb, op_of(q.ConvOp, [qv[0], cw.results[0], cb.results[0]], q.qtensor(y_qp, (1, M, *out)),
                              acc_bits=32, **attrs)]

    return Case(f"conv{i} g={group} cg={cg} mg={mg} k={ks} s={strides} d={dils} pads={pads} sp={sp} "
                f"x{x_bits} w{w_bits}", [(x_qp, (1, C, *sp))], make), None


def _kernel_texts(module) -> str:
    return emit_model(module).files["model.c"]


@pytest.mark.parametrize("path", ["gemm", "pix", "dw"])
def test_fast_conv_paths_are_bit_exact(path, tmp_path, monkeypatch):
    monkeypatch.setattr(ck, "conv_path", lambda g: path)
    rng = np.random.default_rng({"gemm": 11, "pix": 12, "dw": 13}[path])
    cases = [conv8(rng, i, depthwise=(path == "dw") or i % 5 == 4, big=i < 2)[0] for i in range(14)]
    module = module_of(cases)
    text = _kernel_texts(module)
    marks = [m for m in MARKERS[path] if m in text]
    assert marks, f"no kernel took the {path} path"
    if path == "gemm":
        assert "static const uint8_t WP[" in text, "the packed sub-byte gemm form was not exercised"
    if path == "dw":  # channel-interleaved blocks for small planes, planar rows for big ones
        assert len(marks) == 2, marks
    check_c_against_interpreter(module, random_inputs(cases, 2, rng), tmp_path / "o2")
    check_c_against_interpreter(module, random_inputs(cases, 2, rng), tmp_path / "native",
                                cflags=(*CFLAGS, "-O3", "-march=native"))


def test_automatic_path_choice_uses_the_fast_paths_for_8_bit_codes():
    rng = np.random.default_rng(5)
    seen = set()
    for i in range(12):
        case = conv8(rng, i, depthwise=i % 2 == 0, big=True)[0]
        text = _kernel_texts(module_of([case]))
        seen |= {p for p, ms in MARKERS.items() if any(m in text for m in ms)}
    assert seen == {"gemm", "pix", "dw"}


def test_fully_connected_gemm_is_bit_exact(tmp_path):
    rng = np.random.default_rng(3)
    cases = [fc_case(rng, i) for i in range(12)]
    for i, (k, n, lead) in enumerate([(512, 128, ()), (600, 37, (5,)), (9, 3, (2,))]):
        w = rng.integers(-127, 128, size=(n, k))
        sw = rng.uniform(0.001, 0.01, size=n)
        b = rng.integers(-(1 << 16), 1 << 16, size=n)
        x_qp, y_qp = QP(8, 0.03, -17), QP(8, 0.5, 9)

        def make(qv, w=w, sw=sw, b=b, n=n, lead=lead, y_qp=y_qp):
            cw, cb = qconst(w, QP(8, sw, [0] * n, axis=0)), qconst(b, QP(32, 0.03 * sw, [0] * n, axis=0))
            return [cw, cb, op_of(q.FullyConnectedOp, [qv[0], cw.results[0], cb.results[0]],
                                  q.qtensor(y_qp, (1, *lead, n)), acc_bits=32)]

        cases.append(Case(f"fc big {i}", [(x_qp, (1, *lead, k))], make))
    module = module_of(cases)
    assert "static const int8_t W8[" in _kernel_texts(module)
    check_c_against_interpreter(module, random_inputs(cases, 2, rng), tmp_path / "o2")
    check_c_against_interpreter(module, random_inputs(cases, 2, rng), tmp_path / "native",
                                cflags=(*CFLAGS, "-O3", "-march=native"))


def test_lookup_on_8_bit_codes_is_bit_exact_vectorised(tmp_path):
    x, y = QP(8, 0.1, 3), QP(8, 0.05, -4)
    xs = nx.dequantize(np.arange(-128, 128), x).astype(np.float64)
    table = nx.quantize(np.tanh(xs), y)
    from qcc.dialects.onnx import py_attr

    cases = [Case(f"lookup {n}", [(x, (1, n))],
                  lambda qv, n=n: [q.LookupOp(qv, [q.qtensor(y, (1, n))], {"table": py_attr(table)})])
             for n in (1, 63, 64, 200, 1000)]
    module = module_of(cases)
    assert "qcc_lookup_i8(" in _kernel_texts(module)
    rng = np.random.default_rng(0)
    check_c_against_interpreter(module, random_inputs(cases, 3, rng), tmp_path / "o2")
    check_c_against_interpreter(module, random_inputs(cases, 3, rng), tmp_path / "native",
                                cflags=(*CFLAGS, "-O3", "-march=native"))


def residual_case(rng, i: int, path_bits: int) -> Case:
    """y = add(conv(x), r) or add(r, conv(x)), r a second input of the conv's output shape."""
    conv_case, _ = conv8(rng, i, depthwise=i % 3 == 0)
    xq, xshape = conv_case.inputs[0]
    made = conv_case.make
    r_qp = QP(path_bits, 0.07 if path_bits == 8 else 0.001, 5 if path_bits == 8 else 0)
    y_qp = QP(8, 0.25, -3)

    def make(qv):
        ops = made([qv[0]])
        c = ops[-1].results[0]
        shape = tuple(c.type.get_shape())
        if tuple(qv[1].type.get_shape()) != shape:
            raise AssertionError("residual shape mismatch")
        args = [c, qv[1]] if i % 2 == 0 else [qv[1], c]
        attrs = dict(act_min=-60, act_max=90) if i % 4 == 1 else {}
        return ops + [op_of(q.AddOp, args, q.qtensor(y_qp, shape), **attrs)]

    shape = _result_shape(conv_case)  # the residual input has the conv's result shape
    return Case(f"residual {conv_case.name} r{path_bits}", [(xq, xshape), (r_qp, shape)], make)


def _result_shape(case: Case) -> tuple:
    m = module_of([case])
    from qcc.interpreter import main_func

    for op in main_func(m).body.block.ops:
        if isinstance(op, q.ConvOp):
            return tuple(op.results[0].type.get_shape())
    raise AssertionError("no conv")


@pytest.mark.parametrize("path", ["auto", "planes", "taps", "im2col"])
def test_residual_add_fused_into_the_conv_epilogue(path, tmp_path, monkeypatch):
    if path != "auto":
        monkeypatch.setattr(ck, "conv_path", lambda g: path)
    rng = np.random.default_rng(21)
    cases = [residual_case(rng, i, 8 if i % 5 else 16) for i in range(10)]
    module = module_of(cases)
    FuseResidualAddPass().apply(Context(), module)
    module.verify()
    fused = [op for op in module.walk() if isinstance(op, q.AddOp) and EPILOGUE_OF in op.attributes]
    assert len(fused) == len(cases)
    text = _kernel_texts(module)
    # the convolutions run inside the adds' kernels: no conv kernel, no buffer for their results
    assert "_conv(" not in text and text.count("cq_ =") >= len(cases)
    check_c_against_interpreter(module, random_inputs(cases, 2, rng), tmp_path / "o2")


def test_fused_residual_add_saves_the_intermediate_buffer():
    rng = np.random.default_rng(2)
    cases = [residual_case(rng, 3, 8)]
    plain = emit_model(module_of(cases))
    module = module_of(cases)
    FuseResidualAddPass().apply(Context(), module)
    fused = emit_model(module)
    assert fused.naive_bytes < plain.naive_bytes


def test_32_bit_requantization_matches_numerics(tmp_path):
    """qcc_rq32 and qcc_rq32_down (the fast paths' epilogues) against qcc.numerics.requantize32 on edge
    and random accumulators and every kind of multiplier qcc makes."""
    import subprocess

    from qcc.backends.c.cgen import PRELUDE, lit

    rng = np.random.default_rng(4)
    accs = [nx.INT32_MIN, nx.INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30, nx.INT32_MAX - 1,
            nx.INT32_MAX, *rng.integers(nx.INT32_MIN, nx.INT32_MAX, 80), *rng.integers(-5000, 5000, 80)]
    reals = [0.0, 1e-12, 2.0 ** -31, 0.5, 0.25, 0.999999, 1.0, 1.5, 3.7, 1000.0,
             *rng.uniform(1e-5, 0.1, 6), *rng.uniform(0.1, 4.0, 4)]
    cases = [(int(a), *nx.quantize_multiplier(r)) for a in accs for r in reals]
    src = ["#include <stdio.h>", PRELUDE, "int main(void) {"]
    src += [f'printf("%ld\\n", (long)qcc_rq32({lit(a)}, {lit(m)}, {s}));' for a, m, s in cases]
    down = [(a, m, s) for a, m, s in cases if s <= 0]
    src += [f'printf("%ld\\n", (long)qcc_rq32_down({lit(a)}, {lit(m)}, {-s}));' for a, m, s in down]
    src.append("return 0;\n}")
    (tmp_path / "t.c").write_text("\n".join(src))
    subprocess.run([compiler(), *CFLAGS, "t.c", "-o", "t"], cwd=tmp_path, check=True)
    got = [int(v) for v in subprocess.run([str(tmp_path / "t")], capture_output=True, text=True,
                                          check=True).stdout.split()]
    want = []
    for cs in (cases, down):
        a, m, s = (np.array(c, np.int64) for c in zip(*cs))
        want += nx.requantize32(a, m, s).astype(np.int64).tolist()
    assert len(down) > len(cases) // 2 and got == want


def _fc8_case(k: int, n: int, lead: tuple, zx: int) -> Case:
    rng = np.random.default_rng(k * 131 + n)
    w = rng.integers(-127, 128, size=(n, k))
    sw = rng.uniform(0.001, 0.01, size=n)
    b = rng.integers(-(1 << 16), 1 << 16, size=n)
    x_qp, y_qp = QP(8, 0.03, zx), QP(8, 0.5, 9)

    def make(qv):
        cw, cb = qconst(w, QP(8, sw, [0] * n, axis=0)), qconst(b, QP(32, 0.03 * sw, [0] * n, axis=0))
        return [cw, cb, op_of(q.FullyConnectedOp, [qv[0], cw.results[0], cb.results[0]],
                              q.qtensor(y_qp, (1, *lead, n)), acc_bits=32)]

    return Case(f"fc8 k={k} n={n} lead={lead}", [(x_qp, (1, *lead, k))], make)


def _mcu_cases(rng) -> list[Case]:
    """Convolutions of every kind (pointwise, padded, strided, dilated, grouped,
    depthwise, 2/4/8-bit weights, channel counts and row lengths that are not
    multiples of the register blocks, patches not multiples of 4 or 8), fully
    connected layers (one and several rows, K not a multiple of 4) and a residual add
    fused into a convolution's epilogue."""
    return ([conv8(rng, i, depthwise=i % 3 == 0)[0] for i in range(6)]
            + [conv8(rng, i, depthwise=False)[0] for i in (1, 2, 3, 6, 7, 9, 10, 11)]
            + [_fc8_case(512, 13, (), -5), _fc8_case(27, 9, (3,), 100), _fc8_case(8, 1, (), 0)]
            + [residual_case(rng, 4, 8), residual_case(rng, 2, 8)])


@pytest.mark.parametrize("target", ["cortex-m4", "rv32imac"])
def test_fast_paths_bit_exact_on_mcu_targets(target, tmp_path):
    """The microcontroller kernels (register blocks of SMLAD on Cortex-M4, scalar
    multiply-adds on rv32imac; patches gathered per block of positions) and the
    planar depthwise loops match the interpreter's codes, both in C emitted for the
    host (the wide-SIMD loops are the other preprocessor branch) and in C emitted
    for the target (the microcontroller kernels alone, with a far smaller scratch)."""
    from qcc.backends.c import targets as tg

    why = tg.toolchain_missing(target)
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    rng = np.random.default_rng(8)
    cases = _mcu_cases(rng)
    module = module_of(cases)
    FuseResidualAddPass().apply(Context(), module)
    feeds = random_inputs(cases, 2, rng)
    want = interpreter_codes(module, feeds)
    models = {t: emit_model(module, target=t) for t in ("host", target)}
    for t, cm in models.items():
        files = cm.files
        meta = io_meta(files)
        codes_in = {}
        for d in meta["inputs"]:
            qp = nx.QParams(d["bits"], True, (d["scale"],), (d["zero_point"],))
            codes_in[d["name"]] = nx.quantize(np.asarray(feeds[d["name"]], np.float32), qp)
        got, info = tg.build_and_run(files, target, codes_in, tmp_path / t, codes=True)
        for j, d in enumerate(meta["outputs"]):
            assert np.array_equal(np.asarray(got[d["name"]], np.int64), want[j].astype(np.int64)), (t, d["name"])
        text = files["model.c"]
        assert "static const int8_t WM[" in text and "qcc_sxtb16_odd(w0_)" in text
        if target == "cortex-m4":
            assert "__smlad(" in text
    host, mcu = models["host"].files["model.c"], models[target].files["model.c"]
    assert "static const int8_t W8[" in host and "QCC_WIDE_SIMD\n" in host
    # the target's C has no wide-SIMD loops for the 8-bit-weight layers (4-bit ones keep the gemm path's tables)
    assert mcu.count("static const int8_t W8[") < host.count("static const int8_t W8[")


def test_mcu_target_scratch_is_a_small_fraction_of_the_activations():
    """A 3x3 convolution 16->16 at 32x32 and a pointwise one 32->64: for a microcontroller
    target the kernel's scratch (patches of one register block and the input rows one
    output row reads) is under a fifth of the input and output activations, where the
    host's gathers whole blocks of rows."""
    rng = np.random.default_rng(0)

    def conv(c, m, k, pad):
        w = rng.integers(-127, 128, size=(m, c, k, k))
        sw = rng.uniform(0.001, 0.01, size=m)
        b = rng.integers(-1000, 1000, size=m)

        def make(qv):
            cw, cb = qconst(w, QP(8, sw, [0] * m, axis=0)), qconst(b, QP(32, 0.05 * sw, [0] * m, axis=0))
            return [cw, cb, op_of(q.ConvOp, [qv[0], cw.results[0], cb.results[0]],
                                  q.qtensor(QP(8, 0.3, 3), (1, m, 32, 32)), acc_bits=32, strides=[1, 1],
                                  dilations=[1, 1], group=1, kernel_shape=[k, k], pads=[pad] * 4)]

        return Case(f"conv {c}->{m} k{k}", [(QP(8, 0.05, -3), (1, c, 32, 32))], make)

    for case, c in ((conv(16, 16, 3, 1), 16), (conv(32, 64, 1, 0), 32)):
        module = module_of([case])
        host, mcu = emit_model(module), emit_model(module, target="cortex-m4")
        io = c * 32 * 32 + (16 if c == 16 else 64) * 32 * 32  # the input and output codes
        assert "static const int8_t WM[" in mcu.files["model.c"]
        assert mcu.sram_peak_bytes < host.sram_peak_bytes
        assert mcu.sram_peak_bytes - io < io // 5, (mcu.sram_peak_bytes, host.sram_peak_bytes, io)


CLANG_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
_CLANG_CROSS = {"cortex-m4": ("--target=armv7em-none-eabi", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard"),
                "rv32imac": ("--target=riscv32-unknown-elf", "-march=rv32imac", "-mabi=ilp32")}
_CROSS_HEADERS = {"cortex-m4": "/usr/lib/arm-none-eabi/include",
                  "rv32imac": "/usr/lib/picolibc/riscv64-unknown-elf/include"}


@pytest.mark.parametrize("target", ["host", "cortex-m4", "rv32imac"])
def test_generated_c_builds_with_clang_werror(target, tmp_path):
    """Every model.c compiles with clang -std=c99 -Wall -Wextra -Werror (clang also warns
    about unused static inline functions: the prelude's helpers are marked unused): a
    committed model at mixed 4/8 bits and the microcontroller kernel cases, for the host and
    (with the targets' C library headers) for Cortex-M4 and rv32imac."""
    import shutil
    import subprocess

    import qcc
    from conftest import load_split

    clang = shutil.which("clang")
    headers = _CROSS_HEADERS.get(target)
    why = ("no clang on PATH" if clang is None else
           f"no C library headers for {target} at {headers}" if headers and not os.path.isdir(headers) else None)
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    xs = load_split(os.path.join(root, "models", "digits_calib.npz"))[0][:8]
    art = qcc.compile(os.path.join(root, "models", "lenet_digits.onnx"), str(tmp_path / "lenet"),
                      calib={"input": xs}, bits=(4, 8), size_budget_kb=40, target=target)
    module = module_of(_mcu_cases(np.random.default_rng(8)))
    FuseResidualAddPass().apply(Context(), module)
    sources = {"lenet": (tmp_path / "lenet" / "model.c").read_text(),
               "cases": emit_model(module, target=target).files["model.c"]}
    assert any(r["w_bits"] == 4 for r in art.report["ops"] if r.get("w_bits")), "no 4-bit layer exercised"
    flags = (*_CLANG_CROSS.get(target, ()), *(("-isystem", headers) if headers else ()))
    for name, text in sources.items():
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        (d / "model.c").write_text(text)
        if name == "cases":
            (d / "model.h").write_text(emit_model(module, target=target).files["model.h"])
        r = subprocess.run([clang, *CLANG_FLAGS, *flags, "-c", "model.c", "-o", "model.o"], cwd=d,
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{name}: {r.stderr[-3000:]}"


def _cpu_has(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(flag in line.split() for line in f if line.startswith("flags"))
    except OSError:
        return False


@pytest.mark.parametrize("kind", ["conv", "fc", "residual", "single-input"])
def test_x86_vnni_gemm_tiles_are_bit_exact(kind, tmp_path, monkeypatch):
    """The x86-64 AVX-512 VNNI register tiles of the gemm core (QCC_X86_VNNI): forced gemm
    convolutions with up to 60 channels per group (several 16-channel blocks, a partial last
    one), more than one 64-position epilogue pass and partial 8-position tiles; fully
    connected layers with one and many rows; residual adds fused into the epilogue;
    convolutions of a single input channel (the "dw" path, a GEMM on these hosts). Built
    with VNNI explicitly at -O2 and -O3, and with -march=native."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64") or not _cpu_has("avx512_vnni"):
        pytest.skip("this host cannot run AVX-512 VNNI code")
    monkeypatch.setattr(ck, "conv_path", lambda g: "dw" if kind == "single-input" else "gemm")
    rng = np.random.default_rng(31)
    if kind == "single-input":
        cases = [conv8(rng, i, depthwise=True, big=i % 2 == 0, mg_max=40, single_input=True)[0] for i in range(8)]
    elif kind == "conv":
        cases = [conv8(rng, i, depthwise=False, big=i < 3, mg_max=61)[0] for i in range(12)]
    elif kind == "fc":
        cases = [fc_case(rng, i) for i in range(12)]
        for i, (k, n, lead) in enumerate([(512, 128, ()), (600, 37, (70,)), (9, 3, (2,))]):
            w, sw = rng.integers(-127, 128, size=(n, k)), rng.uniform(0.001, 0.01, size=n)
            b = rng.integers(-(1 << 16), 1 << 16, size=n)

            def make(qv, w=w, sw=sw, b=b, n=n, lead=lead):
                cw, cb = qconst(w, QP(8, sw, [0] * n, axis=0)), qconst(b, QP(32, 0.03 * sw, [0] * n, axis=0))
                return [cw, cb, op_of(q.FullyConnectedOp, [qv[0], cw.results[0], cb.results[0]],
                                      q.qtensor(QP(8, 0.5, 9), (1, *lead, n)), acc_bits=32)]

            cases.append(Case(f"fc big {i}", [(QP(8, 0.03, -17), (1, *lead, k))], make))
    else:
        cases = [residual_case(rng, i, 8 if i % 5 else 16) for i in range(8)]
    module = module_of(cases)
    if kind == "residual":
        FuseResidualAddPass().apply(Context(), module)
        module.verify()
    text = _kernel_texts(module)
    assert "static const int8_t WV[" in text and "_mm512_dpbusd_epi32(" in text
    feeds = random_inputs(cases, 2, rng)
    vnni = ("-mavx512f", "-mavx512vnni")
    for name, flags in (("o2", (*CFLAGS, *vnni)), ("o3", (*CFLAGS, "-O3", *vnni)),
                        ("native", (*CFLAGS, "-O3", "-march=native"))):
        check_c_against_interpreter(module, feeds, tmp_path / name, cflags=flags)


def test_residual_add_runs_in_32_bit_arithmetic_where_it_fits():
    """The add's requantizations take the 32-bit helpers (which vectorise) when every
    intermediate provably fits int32, and keep the 64-bit ones otherwise."""
    a8, b8, y8 = QP(8, 0.07, 5), QP(8, 0.05, -3), QP(8, 0.25, -3)
    ok = ck._add_stmts(["a", "b"], a8, b8, ck.Tensor(0, (1,), np.dtype(np.int8), y8), -128, 127, "xa", "xb", "y")
    assert "qcc_rq32_down(" in ok and "int64_t" not in ok
    # 32-bit codes shifted by 2^15 do not fit int32: the 64-bit form
    a32, y32 = QP(32, 0.001, 0), QP(32, 0.002, 0)
    wide = ck._add_stmts(["a", "b"], a32, a32, ck.Tensor(0, (1,), np.dtype(np.int32), y32), -(1 << 31),
                         (1 << 31) - 1, "xa", "xb", "y")
    assert "qcc_requant32(" in wide and "int64_t xa" in wide

