"""Patch-based inference in the generated C: `quant.slice`/`quant.insert_slice`
(semantics), the `materialize-patches` rewrite (bit-exact with the layer-by-layer
interpreter by construction, checked anyway), and the C built from it: bit for bit
with layer-by-layer on the host, under a sanitizer and on bare-metal qemu
(cortex-m4, rv32imac), with a smaller arena than layer by layer."""

from __future__ import annotations

import os

import numpy as np
import pytest
from xdsl.dialects.builtin import DenseArrayBase, i64

import qcc
from qcc import numerics as nx
from qcc import receptive_field as rf
from qcc.backends.c.emit import emit_model
from qcc.backends.c.run import SANITIZE, build_and_run_host_q, compiler
from qcc.dialects import quant as q
from qcc.dialects.onnx import py_attr
from qcc.int_kernels import prepare
from qcc.interpreter import run_samples
from qcc.passes.materialize_patches import for_code, materialize
from qcc.passes.tile_patches import tile
from qcc.patches import GRID_ATTR

from conftest import MODELS, load_split
from test_patches import RNG, mbv2_style, quantized

QP = nx.QParams(8, True, (0.05,), (-3,), None)


@pytest.fixture(scope="module")
def digits():
    return load_split(MODELS / "digits_test.npz")[0][:6]


def need_cc() -> None:
    if compiler() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no gcc on PATH (or $CC): the C backend must be tested in CI")
        pytest.skip("no gcc on PATH (or $CC): the C backend tests need a host C compiler")


def codes_of(module, x: np.ndarray) -> dict:
    """The stage input as integer codes (the C's qcc_model_run_q takes codes)."""
    from qcc.interpreter import main_func

    quant = next(iter(main_func(module).args[0].uses)).operation
    return {"input": nx.quantize(x, q.qparams_of(quant.results[0].type))}


def layer_codes(module, x: np.ndarray) -> np.ndarray:
    """Layer-by-layer output codes of `module` (marks removed) from the interpreter."""
    plain = module.clone()
    for op in plain.walk():
        op.attributes.pop(GRID_ATTR, None)
    from qcc.interpreter import main_func

    y = run_samples(plain, {"input": x})
    out = main_func(plain).body.block.last_op.operands[0].owner  # quant.dequantize
    qp = q.qparams_of(out.operands[0].type)
    return {k: nx.quantize(v, qp) for k, v in y.items()}


def run_c_codes(module, x, workdir, **kw) -> dict:
    cm = emit_model(module, **{k: v for k, v in kw.items() if k == "separate_buffers"})
    out = build_and_run_host_q(cm.files, codes_of(module, x), workdir,
                               extra_cflags=kw.get("extra_cflags", ()))
    return cm, out


# ------------------------------------------------------------------ the ops


def _ops(x_shape, tile_shape, offs):
    from xdsl.dialects.builtin import TensorType

    from qcc.dialects.quant import UniformType

    el = UniformType.from_qparams(QP)
    src = q.ConstantOp.from_values(np.zeros(x_shape, np.int8), QP)
    sl = q.SliceOp([src.results[0]], [TensorType(el, list(tile_shape))], {"offsets": py_attr(offs)})
    ins0 = q.InsertSliceOp([sl.results[0]], [TensorType(el, list(x_shape))], {"offsets": py_attr(offs)})
    ins1 = q.InsertSliceOp([src.results[0], sl.results[0]], [TensorType(el, list(x_shape))],
                           {"offsets": py_attr(offs)})
    for op in (sl, ins0, ins1):
        op.verify()
    return sl, ins0, ins1


def test_slice_and_insert_slice_semantics():
    x = RNG.integers(-128, 128, (1, 3, 7, 9)).astype(np.int8)
    sl, ins0, ins1 = _ops(x.shape, (1, 3, 4, 5), [0, 0, 2, 3])
    t = prepare(sl)([x])
    np.testing.assert_array_equal(t, x[:, :, 2:6, 3:8])
    d = RNG.integers(-128, 128, x.shape).astype(np.int8)
    d0 = d.copy()
    want = d.copy()
    want[:, :, 2:6, 3:8] = t
    np.testing.assert_array_equal(prepare(ins1)([d, t]), want)
    np.testing.assert_array_equal(d, d0)  # values are immutable: dest itself is not written
    alone = prepare(ins0)([t])
    assert alone.dtype == np.int8 and (alone[:, :, :2] == -3).all() and (alone[:, :, 6:] == -3).all()
    np.testing.assert_array_equal(alone[:, :, 2:6, 3:8], t)
    # a batch of samples on axis 0
    xb = RNG.integers(-128, 128, (5, 3, 7, 9)).astype(np.int8)
    tb = prepare(sl)([xb])
    np.testing.assert_array_equal(tb, xb[:, :, 2:6, 3:8])
    assert prepare(ins0)([tb]).shape == (5, 3, 7, 9)


def test_windows_outside_the_tensor_are_refused():
    from xdsl.utils.exceptions import VerifyException

    with pytest.raises(VerifyException, match="does not fit"):
        _ops((1, 3, 7, 9), (1, 3, 4, 5), [0, 0, 4, 3])
    with pytest.raises(VerifyException, match="non-negative"):
        _ops((1, 3, 7, 9), (1, 3, 4, 5), [0, 0, -1, 3])


# ------------------------------------------------------------------ the rewrite


@pytest.mark.parametrize("name", ["lenet_digits", "resnet_digits", "mbv3_digits"])
@pytest.mark.parametrize("grid", ["2x2", "3x2", "auto"])
def test_materialized_module_is_bit_exact_in_the_interpreter(name, grid, digits):
    m = quantized(str(MODELS / f"{name}.onnx"), {"input": digits})
    ref = run_samples(m, {"input": digits})
    info = tile(m, grid)
    n = materialize(m)
    m.verify()
    assert n == info["grid"][0] * info["grid"][1] > 1
    ops = list(m.walk())
    assert not any(GRID_ATTR in op.attributes for op in ops)  # plain IR: runs layer by layer
    assert sum(isinstance(op, q.InsertSliceOp) for op in ops) == n
    assert sum(isinstance(op, q.InsertSliceOp) and len(op.operands) == 1 for op in ops) == 1
    out = run_samples(m, {"input": digits})
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])


def test_for_code_leaves_unmarked_and_float_modules_alone():
    m = quantized(mbv2_style(24), {"input": RNG.standard_normal((2, 3, 24, 24)).astype(np.float32)})
    assert for_code(m) == (m, 0)
    f = qcc.import_model(mbv2_style(24))
    tile(f, "2x2")
    assert for_code(f) == (f, 0)  # a float stage: the C runs it layer by layer


# ------------------------------------------------------------------ the C


@pytest.mark.parametrize("name", ["lenet_digits", "resnet_digits", "mbv3_digits"])
@pytest.mark.parametrize("grid", ["2x2", "3x3", "auto"])
def test_c_patch_based_is_bit_exact_with_layer_by_layer(name, grid, digits, tmp_path):
    need_cc()
    m = quantized(str(MODELS / f"{name}.onnx"), {"input": digits})
    info = tile(m, grid)
    cm, out = run_c_codes(m, digits, tmp_path)
    assert cm.patches == info["grid"][0] * info["grid"][1] > 1
    assert "quant.insert_slice" in cm.files["model.c"]
    ref = layer_codes(m, digits)
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])


def test_c_mobilenetv2_style_at_many_splits(tmp_path):
    """Strided depthwise convs, residual adds cloned per patch, and splits before,
    inside and between inverted residuals."""
    need_cc()
    x = RNG.standard_normal((3, 3, 40, 40)).astype(np.float32)
    m = quantized(mbv2_style(40), {"input": x})
    ref = layer_codes(m, x)
    g = rf.graph(m)
    for k, split in enumerate(rf.candidates(g)[::2]):
        for op in g.ops:
            op.attributes.pop(GRID_ATTR, None)
        h, w = rf.shape_of(g.ops[split].results[0])[2:]
        grid = [min(3, h), min(2, w)]
        g.ops[split].attributes[GRID_ATTR] = DenseArrayBase.from_list(i64, grid)
        cm, out = run_c_codes(m, x, tmp_path / f"s{k}")
        assert cm.patches == grid[0] * grid[1]
        for key in ref:
            np.testing.assert_array_equal(out[key], ref[key], err_msg=f"split {split} grid {grid}")


def test_c_ceil_mode_pools_and_asymmetric_pads(tmp_path):
    need_cc()
    from test_patches import _Net

    from onnx import TensorProto, helper

    n = _Net([1, 2, 15, 15], seed=3)
    a = n.conv("input", 2, 3, 3, 1)
    w = n._name("w")
    n.inits.append(helper.make_tensor(w, TensorProto.FLOAT, [3, 3, 3, 2], n.rng.standard_normal(54)))
    b = n.op("Conv", [a, w], kernel_shape=[3, 2], strides=[1, 2], pads=[0, 1, 2, 0])  # 15x8
    c = n.op("MaxPool", [b], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)  # 7x4
    d = n.op("AveragePool", [c], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 0, 0, 1], count_include_pad=0)
    x = RNG.standard_normal((3, 2, 15, 15)).astype(np.float32)
    m = quantized(n.model(d, [1, 3, 7, 4]), {"input": x})
    ref = layer_codes(m, x)
    for grid in ("2x2", "3x3", "4x3"):
        tile(m, grid)
        cm, out = run_c_codes(m, x, tmp_path / grid)
        assert cm.patches > 1
        for k in ref:
            np.testing.assert_array_equal(out[k], ref[k])


def test_c_patch_based_under_the_sanitizer(digits, tmp_path):
    """Every tile and the split in its own object: a copy outside a window is caught."""
    need_cc()
    m = quantized(str(MODELS / "mbv3_digits.onnx"), {"input": digits})
    tile(m, "3x3")
    cm, out = run_c_codes(m, digits[:2], tmp_path, separate_buffers=True, extra_cflags=SANITIZE)
    ref = layer_codes(m, digits[:2])
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])


def test_c_arena_shrinks(digits):
    """The planner sees one patch's tiles at a time: the generated program's peak
    SRAM (arena with scratch, I/O buffers) is lower than layer by layer."""
    m = quantized(str(MODELS / "mbv3_digits.onnx"), {"input": digits})
    layer = emit_model(m)
    tile(m, "auto")
    patched = emit_model(m)
    assert patched.patches > 1
    assert patched.sram_peak_bytes_excl_input < 0.8 * layer.sram_peak_bytes_excl_input
    assert patched.arena_bytes < layer.arena_bytes


def test_c_arena_of_the_committed_mobilenetv2():
    path = MODELS / "mbv2_digits.onnx"
    x = RNG.uniform(-0.3, 0.7, (2, 3, 160, 160)).astype(np.float32)
    m = quantized(str(path), {"input": x})
    layer = emit_model(m)
    tile(m, "auto")
    patched = emit_model(m)
    # measured when written: 460,800 -> 122,944 bytes without the input (3.7x), 171,408 with it (2.7x)
    assert patched.sram_peak_bytes_excl_input * 3 < layer.sram_peak_bytes_excl_input
    assert patched.sram_peak_bytes * 2 < layer.sram_peak_bytes


def test_report_counts_the_patch_based_c(tmp_path, digits):
    need_cc()
    art0 = qcc.compile(str(MODELS / "mbv3_digits.onnx"), str(tmp_path / "a"), calib={"input": digits},
                       bits=(8,), quiet=True)
    art = qcc.compile(str(MODELS / "mbv3_digits.onnx"), str(tmp_path / "b"), calib={"input": digits},
                      bits=(8,), patch="2x2", quiet=True)
    assert art.report["code"]["patches"] == 4 and art0.report["code"]["patches"] == 0
    t, t0 = art.report["totals"], art0.report["totals"]
    cm = emit_model(art.module)
    assert t["sram_peak_bytes"] == cm.sram_peak_bytes < t0["sram_peak_bytes"]
    assert not any("runs every layer whole" in w for w in art.report["warnings"])
    c = art.run({"input": digits}, backend="c")
    c0 = art0.run({"input": digits}, backend="c")
    for k in c:
        np.testing.assert_array_equal(c[k], c0[k])


# ------------------------------------------------------------------ bare metal


@pytest.mark.parametrize("target", ["cortex-m4", "rv32imac"])
def test_c_patch_based_on_bare_metal_qemu(target, digits, tmp_path):
    from qcc.backends.c import targets as tg

    why = tg.toolchain_missing(target)
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    m = quantized(str(MODELS / "mbv3_digits.onnx"), {"input": digits})
    ref = layer_codes(m, digits[:2])
    layer = emit_model(m, target=target)
    tile(m, "2x2")
    cm = emit_model(m, target=target)
    assert cm.patches == 4
    out, info = tg.build_and_run(cm.files, target, codes_of(m, digits[:2]), tmp_path / "p", codes=True)
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])
    _, info0 = tg.build_and_run(layer.files, target, codes_of(m, digits[:2]), tmp_path / "l", codes=True)
    # exact instruction counts: the halo recompute and the copies cost something, but not 2x
    assert info0["instructions"] < info["instructions"] < 2 * info0["instructions"]


# ------------------------------------------------------------------ analysis fixes


def test_channel_scale_is_pointwise_with_a_constant_scale_and_a_barrier_with_a_gate(digits):
    m = quantized(str(MODELS / "mbv3_digits.onnx"), {"input": digits})
    g = rf.graph(m)
    cs = next(op for op in g.ops if isinstance(op, q.ChannelScaleOp))
    assert rf.op_kind(cs) == "pointwise"
    assert not rf._tileable(cs, g)  # the SE gate is computed from a global pool of the stage
    gate = cs.operands[1]
    const = q.ConstantOp.from_values(np.full(rf.shape_of(gate), 3, np.int8), q.qparams_of(gate.type))
    m.body.block.first_op.body.block.insert_op_before(const, cs)
    cs.operands = [cs.operands[0], const.results[0]]
    g = rf.graph(m)
    assert rf._tileable(cs, g)


def test_swish_is_pointwise():
    from test_patches import _Net

    n = _Net([1, 2, 12, 12], seed=5)
    c = n.conv("input", 2, 3, 3, 1)
    s = n.op("Sigmoid", [c])
    y = n.conv(n.op("Mul", [c, s]), 3, 3, 3, 2)
    from qcc.passes.recognize_activations import RecognizeActivationsPass

    m = qcc.import_model(n.model(y, [1, 3, 6, 6]))
    RecognizeActivationsPass().apply(None, m)
    g = rf.graph(m)
    sw = next(op for op in g.ops if getattr(op, "onnx_type", "") == "Swish")
    assert rf.op_kind(sw) == "pointwise" and g.index[sw] in rf.candidates(g)
    x = RNG.standard_normal((2, 2, 12, 12)).astype(np.float32)
    ref = run_samples(m, {"input": x})
    tile(m, "3x3")
    out = run_samples(m, {"input": x})
    for k in ref:
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-5, atol=1e-5)


def test_c_patch_based_at_mixed_precision(tmp_path, digits):
    """4-bit activations and weights inside the stage: the integer ops do not care where a tile lies."""
    need_cc()
    kw = dict(calib={"input": digits}, bits=(4, 8), size_budget_kb=55, quiet=True)
    art0 = qcc.compile(str(MODELS / "mbv3_digits.onnx"), str(tmp_path / "a"), **kw)
    art = qcc.compile(str(MODELS / "mbv3_digits.onnx"), str(tmp_path / "b"), patch="3x3", **kw)
    assert any(o["a_bits"] == 4 or o["w_bits"] == 4 for o in art.report["ops"])
    assert art.report["code"]["patches"] == 9
    c, c0 = art.run({"input": digits}, backend="c"), art0.run({"input": digits}, backend="c")
    for k in c:
        np.testing.assert_array_equal(c[k], c0[k])
    assert art.report["totals"]["sram_peak_bytes"] < art0.report["totals"]["sram_peak_bytes"]


def test_auto_keeps_layer_by_layer_c_when_patches_would_not_save_sram(tmp_path, digits, monkeypatch):
    """`--patch auto` chose its split on tensor sizes; when the materialized C (kernel
    scratch included) is not smaller, the layer-by-layer C is emitted and the report
    says so. Whatever the kernels' scratch, auto never emits more SRAM than layer by layer."""
    from qcc.backends.c import emit

    kw = dict(calib={"input": digits}, bits=(8,), quiet=True)
    plain = qcc.compile(str(MODELS / "mbv3_digits.onnx"), str(tmp_path / "p"), **kw)
    art = qcc.compile(str(MODELS / "mbv3_digits.onnx"), str(tmp_path / "a"), patch="auto", **kw)
    assert art.report["totals"]["sram_peak_bytes_excl_input"] <= plain.report["totals"]["sram_peak_bytes_excl_input"]
    real = emit.emit_model

    def costly_patches(module, **kw):  # as if the tiles' kernels needed a huge scratch
        cm = real(module, **kw)
        if cm.patches:
            cm.sram_peak_bytes_excl_input += 1 << 30
        return cm

    monkeypatch.setattr(emit, "emit_model", costly_patches)
    art = qcc.compile(str(MODELS / "mbv3_digits.onnx"), str(tmp_path / "b"), patch="auto", **kw)
    assert art.report["patch"]["grid"][0] > 1 and art.report["code"]["patches"] == 0
    assert any("the C runs layer by layer" in w for w in art.report["warnings"])
    assert art.report["totals"]["sram_peak_bytes"] == plain.report["totals"]["sram_peak_bytes"]
    fixed = qcc.compile(str(MODELS / "mbv3_digits.onnx"), str(tmp_path / "c"), patch="2x2", **kw)
    assert fixed.report["code"]["patches"] == 4  # a fixed grid is honoured


def test_report_warns_when_the_c_runs_layer_by_layer(tmp_path, digits):
    """A --float build's C does not tile (only quantized stages are materialized):
    the report says the patches live in the interpreters only."""
    need_cc()
    art = qcc.compile(str(MODELS / "mbv3_digits.onnx"), str(tmp_path / "f"), calib={"input": digits},
                      float_only=True, patch="2x2", quiet=True)
    assert art.report["code"]["patches"] == 0
    assert any("runs every layer whole" in w for w in art.report["warnings"])
