"""Patch-based inference: receptive-field analysis (qcc.receptive_field), the
tile-patches pass, patch-by-patch execution (qcc.patches) and its memory model.

The analysis is checked against an independent oracle (perturbing input rows of a
linear network and watching which output rows move); execution against the
layer-by-layer interpreters (bit for bit at int8, float to rounding); the memory
figures against hand-computed arena plans."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from xdsl.dialects.builtin import DenseArrayBase, i64

import qcc
from qcc import receptive_field as rf
from qcc.driver import Options, build
from qcc.errors import QccError
from qcc.interpreter import run_samples
from qcc.passes.tile_patches import tile
from qcc.patches import GRID_ATTR, PatchRunner

from conftest import MODELS, load_split

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------ model builders


class _Net:
    """A tiny ONNX graph builder with random weights (NCHW float32)."""

    def __init__(self, shape, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.shape = list(shape)
        self.k = 0

    def _name(self, p):
        self.k += 1
        return f"{p}{self.k}"

    def conv(self, x, cin, cout, k=3, s=1, p=None, group=1, d=1, bias=True):
        p = (k - 1) // 2 * d if p is None else p
        w = self._name("w")
        self.inits.append(helper.make_tensor(
            w, TensorProto.FLOAT, [cout, cin // group, k, k],
            (self.rng.standard_normal((cout, cin // group, k, k)) * (2.0 / (cin // group * k * k)) ** 0.5).ravel()))
        ins = [x, w]
        if bias:
            b = self._name("b")
            self.inits.append(helper.make_tensor(b, TensorProto.FLOAT, [cout], self.rng.standard_normal(cout) * 0.1))
            ins.append(b)
        y = self._name("conv")
        self.nodes.append(helper.make_node("Conv", ins, [y], name=y, kernel_shape=[k, k], strides=[s, s],
                                           pads=[p] * 4, group=group, dilations=[d, d]))
        return y

    def op(self, kind, ins, **attrs):
        y = self._name(kind.lower())
        self.nodes.append(helper.make_node(kind, ins, [y], name=y, **attrs))
        return y

    def relu6(self, x):
        lo, hi = self._name("lo"), self._name("hi")
        self.inits += [helper.make_tensor(lo, TensorProto.FLOAT, [], [0.0]),
                       helper.make_tensor(hi, TensorProto.FLOAT, [], [6.0])]
        return self.op("Clip", [x, lo, hi])

    def model(self, out, out_shape):
        g = helper.make_graph(self.nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, self.shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
        onnx.checker.check_model(m)
        return m


def mbv2_style(size=48, width=8, classes=10) -> onnx.ModelProto:
    """A MobileNetV2-style network: stem conv s2 + ReLU6, inverted residuals
    (1x1 expand x6, 3x3 depthwise, 1x1 linear projection, residual adds), GAP, Gemm."""
    n = _Net([1, 3, size, size])
    x = n.relu6(n.conv("input", 3, width, 3, 2))

    def block(x, cin, cout, s, t):
        h = x
        if t != 1:
            h = n.relu6(n.conv(h, cin, cin * t, 1))
        h = n.relu6(n.conv(h, cin * t, cin * t, 3, s, group=cin * t))
        h = n.conv(h, cin * t, cout, 1)
        return n.op("Add", [x, h]) if s == 1 and cin == cout else h

    x = block(x, width, width, 1, 1)
    x = block(x, width, 12, 2, 6)
    x = block(x, 12, 12, 1, 6)
    x = block(x, 12, 16, 2, 6)
    x = block(x, 16, 16, 1, 6)
    x = n.op("GlobalAveragePool", [x])
    x = n.op("Flatten", [x])
    w, b = n._name("fcw"), n._name("fcb")
    n.inits += [helper.make_tensor(w, TensorProto.FLOAT, [classes, 16], n.rng.standard_normal(classes * 16) * 0.3),
                helper.make_tensor(b, TensorProto.FLOAT, [classes], np.zeros(classes))]
    y = n.op("Gemm", [x, w, b], transB=1)
    return n.model(y, [1, classes])


def linear_branchy(size=24) -> onnx.ModelProto:
    """Linear ops only (so perturbations always propagate): strided, dilated and
    asymmetric-padded convs, average/max pools, a residual add and a channel concat."""
    n = _Net([1, 2, size, size], seed=1)
    a = n.conv("input", 2, 4, 3, 1)
    b = n.conv(a, 4, 4, 3, 2)  # stride 2
    c = n.conv(b, 4, 4, 3, 1, d=2)  # dilation 2
    r = n.op("Add", [b, c])  # residual branch
    p = n.op("AveragePool", [r], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=0)
    q = n.conv(r, 4, 4, 5, 1)
    cat = n.op("Concat", [p, q], axis=1)
    y = n.conv(cat, 8, 4, 3, 2, p=0)  # no padding, stride 2
    return n.model(y, [1, 4, (size // 2 - 3) // 2 + 1, (size // 2 - 3) // 2 + 1])


_BUILT: dict = {}


def quantized(model, calib=None, bits=(8,)):
    """A uniform int8 build (of a committed model: built once per session, cloned)."""
    if isinstance(model, str):
        if model not in _BUILT:
            _BUILT[model] = build(model, Options(bits=bits, calib=calib, quiet=True))[0]
        return _BUILT[model].clone()
    return build(model, Options(bits=bits, calib=calib, quiet=True))[0]


@pytest.fixture(scope="module")
def digits():
    return load_split(MODELS / "digits_test.npz")[0][:12]


# ------------------------------------------------------------------ analysis


def test_window_needs_matches_the_onnx_window():
    w = rf.Window(kernel=3, stride=2, dilation=2, pad=2)
    lo, hi = w.needs(np.array([0, 3]), np.array([3, 5]))
    # output o reads o*2-2, o*2, o*2+2
    assert list(lo) == [-2, 4] and list(hi) == [7, 11]


def _perturbation_rows(module, size, out_rows: tuple[int, int]) -> tuple[int, int]:
    """Hull of input rows whose perturbation changes output rows [a, b): an oracle
    independent of the interval arithmetic (the network is linear)."""
    x = RNG.standard_normal((1, 2, size, size)).astype(np.float32)
    y0 = qcc.interpret(module, {"input": x})
    key = next(iter(y0))
    rows = []
    for r in range(size):
        xp = x.copy()
        xp[:, :, r, :] += 10.0
        y = qcc.interpret(module, {"input": xp})[key]
        if not np.allclose(y[:, :, out_rows[0]:out_rows[1], :], y0[key][:, :, out_rows[0]:out_rows[1], :],
                           atol=1e-4):
            rows.append(r)
    return min(rows), max(rows) + 1


def test_regions_match_perturbation_oracle():
    size = 24
    module = qcc.import_model(linear_branchy(size))
    g = rf.graph(module)
    last = len(g.ops) - 1
    assert last in rf.candidates(g)  # the final conv's result cuts the graph
    y_rows = rf.shape_of(g.ops[last].results[0])[2]
    a = rf.analyze(g, last, (3, 3))
    (lo, hi), _ = a.regions[g.input]
    edges = rf.grid_bounds(y_rows, 3)
    for i in range(3):
        assert (lo[i], hi[i]) == _perturbation_rows(module, size, (edges[0][i], edges[1][i]))


def test_recompute_and_halo_are_computed_from_the_tiles():
    module = qcc.import_model(mbv2_style(32))
    g = rf.graph(module)
    cands = rf.candidates(g)
    a1 = rf.analyze(g, cands[-1], (1, 1))
    assert a1.extra_macs == 0 and a1.halo() == 0.0  # one patch: nothing recomputed
    a4 = rf.analyze(g, cands[-1], (4, 4))
    assert a4.extra_macs > 0 and a4.halo() > 0
    assert a4.stage_macs == a1.stage_macs == a1.patch_macs
    # sum of tile areas of the input equals (1 + halo) * area
    (hl, hh), (wl, wh) = a4.regions[g.input]
    assert (hh - hl).sum() * (wh - wl).sum() == pytest.approx((1 + a4.halo()) * 32 * 32)


def test_splits_stop_at_global_pooling_and_se_gates():
    g = rf.graph(qcc.import_model(mbv2_style(32)))
    cands = rf.candidates(g)
    gap = next(i for i, op in enumerate(g.ops) if getattr(op, "onnx_type", "") == "GlobalAveragePool")
    assert cands and max(cands) < gap
    # every residual add of the stage is a split (it is the only live tensor)
    adds = [i for i, op in enumerate(g.ops) if getattr(op, "onnx_type", "") == "Add"]
    assert set(adds) <= set(cands)
    # inside a residual block the block input stays live: no split between expand and add
    first_add = adds[0]
    block_start = max(i for i in cands if i < first_add)
    assert not any(block_start < i < first_add for i in cands)


def test_mbv3_squeeze_excite_is_a_barrier(digits):
    m = quantized(str(MODELS / "mbv3_digits.onnx"), {"input": digits[:4]})
    g = rf.graph(m)
    cands = rf.candidates(g)
    first_gap = next(i for i, op in enumerate(g.ops) if op.name == "quant.global_avg_pool")
    assert cands and max(cands) < first_gap


# ------------------------------------------------------------------ execution


def _count_patches(monkeypatch) -> list:
    calls = []
    orig = PatchRunner._patch

    def spy(self, env, i, j):
        calls.append((i, j))
        return orig(self, env, i, j)

    monkeypatch.setattr(PatchRunner, "_patch", spy)
    return calls


@pytest.mark.parametrize("name", ["resnet_digits", "mbv3_digits", "lenet_digits"])
@pytest.mark.parametrize("grid", ["2x2", "3x3", "4x3", "auto"])
def test_int8_patch_based_is_bit_exact(name, grid, digits, monkeypatch):
    m = quantized(str(MODELS / f"{name}.onnx"), {"input": digits[:8]})
    ref = run_samples(m, {"input": digits})
    info = tile(m, grid)
    calls = _count_patches(monkeypatch)
    out = run_samples(m, {"input": digits})
    n = info["grid"][0] * info["grid"][1]
    assert len(calls) == n and n > 1  # the stage really ran patch by patch
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])


@pytest.mark.parametrize("grid", ["2x2", "3x3", "5x5", "auto"])
def test_int8_mobilenetv2_style_bit_exact_at_many_splits(grid, monkeypatch):
    x = RNG.standard_normal((6, 3, 48, 48)).astype(np.float32)
    m = quantized(mbv2_style(48), {"input": x})
    ref = run_samples(m, {"input": x})
    g = rf.graph(m)
    splits = rf.candidates(g) if grid != "auto" else [None]
    for split in splits[::3]:  # every third split: stem, inside and between inverted residuals
        if split is None:
            tile(m, grid)
        else:
            for op in g.ops:
                op.attributes.pop(GRID_ATTR, None)
            fixed = rf.parse_grid(grid)
            if min(rf.shape_of(g.ops[split].results[0])[2:]) < fixed[0]:
                continue
            g.ops[split].attributes[GRID_ATTR] = DenseArrayBase.from_list(i64, list(fixed))
        calls = _count_patches(monkeypatch)
        out = run_samples(m, {"input": x})
        assert len(calls) > 1
        for k in ref:
            np.testing.assert_array_equal(out[k], ref[k])


def test_float_patch_based_matches_layer_by_layer():
    model = mbv2_style(40)
    m = qcc.import_model(model)
    x = RNG.standard_normal((3, 3, 40, 40)).astype(np.float32)
    ref = run_samples(m, {"input": x})
    info = tile(m, "3x3")
    assert info["grid"] == [3, 3]
    out = run_samples(m, {"input": x})
    for k in ref:
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-5, atol=1e-5)


def test_float_patch_based_on_branchy_linear_graph():
    m = qcc.import_model(linear_branchy(24))
    x = RNG.standard_normal((2, 2, 24, 24)).astype(np.float32)
    ref = run_samples(m, {"input": x})
    g = rf.graph(m)
    for split in rf.candidates(g):
        for op in g.ops:
            op.attributes.pop(GRID_ATTR, None)
        h = rf.shape_of(g.ops[split].results[0])[2]
        g.ops[split].attributes[GRID_ATTR] = DenseArrayBase.from_list(i64, [min(3, h), min(2, h)])
        out = run_samples(m, {"input": x})
        for k in ref:
            np.testing.assert_allclose(out[k], ref[k], rtol=1e-5, atol=1e-5)


def test_committed_mobilenetv2_bit_exact():
    path = MODELS / "mbv2_digits.onnx"
    if not path.exists():
        pytest.skip("models/mbv2_digits.onnx not present")
    x = RNG.uniform(-0.3, 0.7, (2, 3, 160, 160)).astype(np.float32)
    m = quantized(str(path), {"input": x})
    ref = run_samples(m, {"input": x})
    info = tile(m, "auto")
    assert info["sram_reduction"] >= 4 and info["recompute_overhead"] <= 0.15
    out = run_samples(m, {"input": x})
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])


# ------------------------------------------------------------------ memory


def test_memory_of_a_chain_by_hand():
    # x 1x1x8x8 f32 (256 B) -> conv 3x3 -> relu -> conv 3x3 s2 (4x4, 64 B) -> add -> gap
    n = _Net([1, 1, 8, 8])
    c1 = n.conv("input", 1, 1, 3, 1, bias=False)
    r = n.op("Relu", [c1])
    c2 = n.conv(r, 1, 1, 3, 2, bias=False)
    s = n.op("Add", [c2, c2])
    gap = n.op("GlobalAveragePool", [s])
    m = qcc.import_model(n.model(gap, [1, 1, 1, 1]))
    g = rf.graph(m)
    lay = rf.layer_memory(g)
    assert (lay.sram_peak_bytes, lay.sram_peak_bytes_excl_input) == (512, 512)  # input + conv1 output
    a = rf.analyze(g, 2, (2, 2))
    mem = rf.patch_memory(a)
    # conv1 and relu tiles of 5x5 f32 (100 -> 112 aligned) + the whole 4x4 split (64)
    assert mem.sram_peak_bytes_excl_input == 112 + 112 + 64
    assert mem.sram_peak_bytes == 288 + 256
    assert a.extra_macs == 17 * 9


def test_auto_respects_overhead_and_reports_a_frontier(digits):
    m = quantized(str(MODELS / "mbv3_digits.onnx"), {"input": digits[:4]})
    info = tile(m, "auto", max_overhead=0.05)
    assert info["recompute_overhead"] <= 0.05
    front = info["frontier"]
    assert len(front) >= 2
    peaks = [f["sram_peak_bytes_excl_input"] for f in front]
    over = [f["recompute_overhead"] for f in front]
    assert peaks == sorted(peaks) and all(a > b for a, b in zip(over, over[1:]))
    assert info["sram_peak_bytes_excl_input"] < info["layer_sram_peak_bytes_excl_input"]
    loose = tile(m, "auto", max_overhead=1.0)
    assert loose["sram_peak_bytes_excl_input"] <= info["sram_peak_bytes_excl_input"]


# ------------------------------------------------------------------ driver, CLI, errors


def test_compile_with_patch_writes_report_and_interprets(tmp_path, digits, monkeypatch):
    art = qcc.compile(str(MODELS / "resnet_digits.onnx"), str(tmp_path / "out"), calib={"input": digits[:8]},
                      bits=(8,), emit="none", patch="2x2")
    r = json.loads((tmp_path / "out" / "report.json").read_text())
    p = r["patch"]
    assert p["grid"] == [2, 2] and p["split"] and "frontier" in p
    assert r["totals"]["sram_peak_bytes"] == p["sram_peak_bytes"]
    assert r["totals"]["sram_peak_bytes_excl_input"] == p["sram_peak_bytes_excl_input"]
    assert "Patch-based inference" in (tmp_path / "out" / "report.html").read_text()
    text = (tmp_path / "out" / "model.mlir").read_text()
    assert GRID_ATTR in text
    from qcc.ir import parse_module

    reparsed = parse_module(text)  # the choice is state in the IR: the re-parsed module runs patch by patch too
    calls = _count_patches(monkeypatch)
    a = run_samples(reparsed, {"input": digits})
    assert len(calls) == 4
    b = run_samples(art.module, {"input": digits})
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("bad", ["3", "0x2", "axb", "4x"])
def test_bad_patch_option_is_one_clear_error(bad):
    with pytest.raises(QccError, match="--patch"):
        rf.parse_grid(bad)


def test_cli_patch_errors(tmp_path, capsys):
    from qcc.cli import main

    rc = main([str(MODELS / "lenet_digits.onnx"), "-o", str(tmp_path / "o"), "--patch", "7", "-q"])
    assert rc == 2 and "--patch" in capsys.readouterr().err and not (tmp_path / "o").exists()
    rc = main([str(MODELS / "lenet_digits.onnx"), "-o", str(tmp_path / "o"), "--patch", "64x64", "-q",
               "--bits", "8", "--emit", "none"])
    assert rc == 2 and "smaller than the grid" in capsys.readouterr().err


def test_no_split_is_a_clear_error():
    n = _Net([1, 2, 8, 8])
    y = n.op("GlobalAveragePool", ["input"])
    m = qcc.import_model(n.model(y, [1, 2, 1, 1]))
    with pytest.raises(QccError, match="no split point"):
        tile(m, "auto")


@pytest.mark.parametrize("name", ["mbv3_digits", "resnet_digits"])
def test_patch_interpreter_matches_generated_c(name, tmp_path, digits):
    """The generated C runs the stage patch by patch too (materialize-patches, see
    test_patches_c.py); the patch-based interpreter of the same build agrees bit for bit."""
    import os

    from qcc.backends.c.run import compiler

    if compiler() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no gcc on PATH (or $CC): the C backend must be tested in CI")
        pytest.skip("no gcc on PATH (or $CC): the C backend tests need a host C compiler")
    art = qcc.compile(str(MODELS / f"{name}.onnx"), str(tmp_path / "out"), calib={"input": digits[:8]},
                      bits=(8,), patch="3x3")
    assert art.report["patch"]["grid"] == [3, 3]
    c = art.run({"input": digits}, backend="c")
    interp = art.run({"input": digits}, backend="interpreter")
    for k in c:
        np.testing.assert_array_equal(c[k], interp[k])


def test_a_split_marked_on_a_non_cut_is_refused(digits):
    m = quantized(str(MODELS / "resnet_digits.onnx"), {"input": digits[:8]})
    g = rf.graph(m)
    inside_block = next(i for i, op in enumerate(g.ops) if i not in rf.candidates(g) and op.name == "quant.conv")
    g.ops[inside_block].attributes[GRID_ATTR] = DenseArrayBase.from_list(i64, [2, 2])
    with pytest.raises(QccError, match="does not cut the graph"):
        run_samples(m, {"input": digits[:2]})


def test_analysis_work_is_linear_in_ops():
    """A chain twice as long costs twice the interval updates (counted, not timed)."""
    def model(depth):
        n = _Net([1, 2, 16, 16])
        x = "input"
        for _ in range(depth):
            x = n.op("Relu", [n.conv(x, 2, 2, 3, 1)])
        return n.model(x, [1, 2, 16, 16])

    counts = []
    for depth in (20, 40):
        g = rf.graph(qcc.import_model(model(depth)))
        calls = [0]
        orig = rf.Window.needs

        def counting(self, lo, hi, orig=orig):
            calls[0] += 1
            return orig(self, lo, hi)

        rf.Window.needs = counting
        try:
            cands = rf.candidates(g)
            rf.analyze(g, cands[-1], (4, 4))
        finally:
            rf.Window.needs = orig
        counts.append((len(cands), calls[0]))
    assert counts[1][0] == 2 * counts[0][0]
    assert counts[1][1] == 2 * counts[0][1]  # two axes per conv, once per op for all n patches


def test_ceil_mode_pools_and_asymmetric_pads():
    n = _Net([1, 2, 15, 15], seed=3)
    a = n.conv("input", 2, 3, 3, 1)
    w = n._name("w")
    n.inits.append(helper.make_tensor(w, TensorProto.FLOAT, [3, 3, 3, 2], n.rng.standard_normal(54)))
    b = n.op("Conv", [a, w], kernel_shape=[3, 2], strides=[1, 2], pads=[0, 1, 2, 0])  # 15x8
    c = n.op("MaxPool", [b], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)  # 7x4
    d = n.op("AveragePool", [c], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 0, 0, 1], count_include_pad=0)
    m = qcc.import_model(n.model(d, [1, 3, 7, 4]))
    x = RNG.standard_normal((3, 2, 15, 15)).astype(np.float32)
    ref = run_samples(m, {"input": x})
    for grid in ("2x2", "3x3", "4x3"):
        g = rf.graph(m)
        for op in g.ops:
            op.attributes.pop(GRID_ATTR, None)
        fixed = rf.parse_grid(grid)
        g.ops[len(g.ops) - 1].attributes[GRID_ATTR] = DenseArrayBase.from_list(i64, list(fixed))
        out = run_samples(m, {"input": x})
        for k in ref:
            np.testing.assert_allclose(out[k], ref[k], rtol=1e-5, atol=1e-5)
    # int8: the same graph quantized, bit for bit
    q8 = quantized(n.model(d, [1, 3, 7, 4]), {"input": x})
    ref = run_samples(q8, {"input": x})
    tile(q8, "3x3")
    out = run_samples(q8, {"input": x})
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])


# ------------------------------------------------------------------ value-driven precision (QuantMCU)


def test_snap_keeps_outlier_tiles_and_puts_the_others_on_the_low_bit_grid():
    from qcc.patch_precision import snap, step

    t = RNG.integers(-128, 128, (5, 3, 4, 4)).astype(np.int8)
    t[0] = np.clip(t[0], -20, 20)  # sample 0 without outliers (zp = -3, threshold 30)
    t[1, 0, 0, 0] = 100  # sample 1 with one
    out, outlier = snap(t, -3, 4, 30)
    assert not outlier[0] and outlier[1]
    np.testing.assert_array_equal(out[1], t[1])
    d = step(4, 30)
    assert d == 5  # ceil(30 / 7)
    k = (out[0].astype(np.int64) + 3) / d
    assert np.all(k == np.round(k)) and np.abs(k).max() <= 8
    assert np.abs(out[0].astype(np.int64) - t[0]).max() <= d // 2


def test_value_driven_precision_is_applied_per_tile(digits):
    from qcc.patch_precision import PRECISION_ATTR, assign

    m = quantized(str(MODELS / "mbv3_digits.onnx"), {"input": digits[:8]})
    ref = run_samples(m, {"input": digits})
    tile(m, "2x2")
    info = assign(m, {"input": digits[:8]}, bits=4, outlier_quantile=0.75, max_entropy_loss=100.0)
    marked = [op for op in m.walk() if PRECISION_ATTR in op.attributes]
    assert len(marked) == len(info["narrowed"]) > 0
    assert 0 < info["bitops_saved"] < info["bitops_8bit_patch"] and info["bitops_reduction"] > 1
    low = run_samples(m, {"input": digits})
    assert not all(np.array_equal(low[k], ref[k]) for k in ref)  # narrowing changed something
    # threshold -1: every tile is an outlier and keeps its 8 bits -> bit-exact with plain int8 again
    for op in marked:
        op.attributes[PRECISION_ATTR] = DenseArrayBase.from_list(i64, [4, -1])
    same = run_samples(m, {"input": digits})
    for k in ref:
        np.testing.assert_array_equal(same[k], ref[k])


def test_batchnorm_per_channel_operands_do_not_block_tiling():
    n = _Net([1, 2, 12, 12], seed=4)
    c = n.conv("input", 2, 3, 3, 1)
    names = []
    for what, vals in (("g", [1.0, 2.0, 0.5]), ("b", [0.1, -0.2, 0.3]), ("m", [0.0, 0.5, -0.5]), ("v", [1.0, 2.0, 4.0])):
        names.append(n._name(what))
        n.inits.append(helper.make_tensor(names[-1], TensorProto.FLOAT, [3], vals))
    bn = n.op("BatchNormalization", [c, *names])
    y = n.conv(n.op("Relu", [bn]), 3, 3, 3, 2)
    m = qcc.import_model(n.model(y, [1, 3, 6, 6]))
    g = rf.graph(m)
    bn_index = next(i for i, op in enumerate(g.ops) if op.onnx_type == "BatchNormalization")
    assert bn_index in rf.candidates(g) and len(g.ops) - 1 in rf.candidates(g)
    x = RNG.standard_normal((2, 2, 12, 12)).astype(np.float32)
    ref = run_samples(m, {"input": x})
    tile(m, "3x3")
    out = run_samples(m, {"input": x})
    for k in ref:
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-5, atol=1e-5)
