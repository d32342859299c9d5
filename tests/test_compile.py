"""The quantizing compile, end to end: quality on the committed models, bit-exact
model.mlir, the report contract, constraints and errors."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import qcc
from conftest import DIGIT_MODELS, MODELS

REPORT_OP_KEYS = {"name", "op_type", "w_bits", "a_bits", "macs"}
REPORT_TOTALS = {"weight_bytes", "bitops", "macs", "sram_peak_bytes", "sram_peak_bytes_excl_input", "flash_bytes"}


@pytest.fixture(scope="module")
def data():
    with np.load(MODELS / "digits_calib.npz") as c, np.load(MODELS / "digits_test.npz") as t:
        return c["input"], t["input"], t["label"]


@pytest.fixture(scope="module")
def compiled(data, tmp_path_factory):
    """Compiles each (model, config) once for the whole module."""
    calib = data[0]
    cache = {}

    def get(model, kind):
        key = (model, kind)
        if key not in cache:
            out = str(tmp_path_factory.mktemp(f"{model}_{kind}") / "out")
            if kind == "int8":
                cache[key] = qcc.compile(MODELS / f"{model}.onnx", out, calib={"input": calib}, bits=(8,))
            else:
                budget = 0.6 * get(model, "int8").report["totals"]["weight_bytes"] / 1024
                cache[key] = qcc.compile(MODELS / f"{model}.onnx", out, calib={"input": calib}, bits=(4, 8),
                                         size_budget_kb=budget)
        return cache[key]

    return get


def _quality(art, model, xs, labels):
    fl = qcc.interpret(MODELS / f"{model}.onnx", {"input": xs})["logits"]
    ql = art.run({"input": xs})["logits"]
    return (float((fl.argmax(1) == labels).mean()), float((ql.argmax(1) == labels).mean()),
            float((ql.argmax(1) == fl.argmax(1)).mean()))


@pytest.mark.parametrize("model", DIGIT_MODELS)
def test_int8_meets_the_quality_targets(model, data, compiled):
    calib, xs, labels = data
    art = compiled(model, "int8")
    acc_f, acc_q, agree = _quality(art, model, xs, labels)
    assert agree >= 0.99
    assert acc_q >= acc_f - 0.005
    assert all(o["w_bits"] in (8, None) and o["a_bits"] in (8, None) for o in art.report["ops"])


@pytest.mark.parametrize("model", DIGIT_MODELS)
def test_mixed_precision_at_0_6x_int8_bytes_within_one_point(model, data, compiled):
    calib, xs, labels = data
    budget = 0.6 * compiled(model, "int8").report["totals"]["weight_bytes"] / 1024
    am = compiled(model, "mixed")
    assert am.report["totals"]["weight_bytes"] <= budget * 1024
    assert any(o["w_bits"] == 4 for o in am.report["ops"])
    acc_f, acc_q, _ = _quality(am, model, xs, labels)
    assert acc_q >= acc_f - 0.01


def test_model_mlir_runs_bit_exactly_under_qcc_interpret(data, tmp_path):
    calib, xs, _ = data
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "qcc.cli", str(MODELS / "mbv3_digits.onnx"), "-o", str(out),
                        "--calib", str(MODELS / "digits_calib.npz"), "--bits", "4,8", "--size-budget", "50", "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    np.savez(tmp_path / "in.npz", input=xs[:50])
    r = subprocess.run([sys.executable, "-m", "qcc.cli", "interpret", str(out / "model.mlir"), "--inputs",
                        str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.npz"), "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    from qcc.interpreter import run_samples
    from qcc.ir import parse_module_file

    again = run_samples(parse_module_file(out / "model.mlir"), {"input": xs[:50]})["logits"]
    with np.load(tmp_path / "o.npz") as z:
        assert np.array_equal(z["logits"], again.astype(np.float32))
    text = (out / "model.mlir").read_text()
    assert "quant.conv" in text and "!quant.uniform<i4:0" in text and "elided" not in text


def test_report_follows_the_contract(compiled):
    art = compiled("mbv3_digits", "mixed")
    rep = json.loads((pathlib.Path(art.out_dir) / "report.json").read_text())
    assert rep == json.loads(json.dumps(art.report, default=float))
    assert REPORT_TOTALS <= set(rep["totals"])
    for o in rep["ops"]:
        assert REPORT_OP_KEYS <= set(o)
    conv = [o for o in rep["ops"] if o["op_type"] == "Conv"]
    assert conv and all(set(o["metrics"]) >= {"w_sqnr", "a_sqnr", "w_mse", "a_mse", "ref_sqnr"} for o in conv)
    assert rep["totals"]["macs"] == sum(o["macs"] for o in rep["ops"]) > 5_000_000
    assert rep["totals"]["sram_peak_bytes"] >= rep["totals"]["sram_peak_bytes_excl_input"] > 0
    (inp,) = rep["inputs"]
    assert inp["name"] == "input" and inp["shape"] == [1, 1, 32, 32] and inp["quantization"]["bits"] == 8
    html = (pathlib.Path(art.out_dir) / "report.html").read_text()
    assert html.count("<svg") >= 3 and "node_Conv" in html


def test_without_calibration_data_the_build_works_and_says_so(data, tmp_path):
    _, xs, labels = data
    art = qcc.compile(MODELS / "lenet_digits.onnx", str(tmp_path / "out"), bits=(8,))
    assert art.report["calibration"]["synthetic"] is True
    assert any("synthetic" in w for w in art.report["warnings"])
    ys = art.run({"input": xs[:20]})["logits"]
    assert ys.shape == (20, 10) and np.isfinite(ys).all()


def test_sqnr_min_picks_the_narrowest_width_that_meets_it(data, tmp_path):
    calib, _, _ = data
    art = qcc.compile(MODELS / "lenet_digits.onnx", str(tmp_path / "out"), calib={"input": calib},
                      bits=(2, 4, 8), sqnr_min=20)
    for o in art.report["ops"]:
        m = o["metrics"]
        if o["w_bits"]:
            assert m["w_sqnr"][str(o["w_bits"])] >= 20
            narrower = [b for b in (2, 4, 8) if b < o["w_bits"]]
            assert all(m["w_sqnr"][str(b)] < 20 for b in narrower)


def test_uhlich_strategy_assigns_widths(data, tmp_path):
    calib, _, _ = data
    art = qcc.compile(MODELS / "resnet_digits.onnx", str(tmp_path / "out"), calib={"input": calib},
                      bits=(2, 4, 8, 16), strategy="uhlich", sqnr_min=25)
    ws = {o["w_bits"] for o in art.report["ops"] if o["w_bits"]}
    assert ws <= {2, 4, 8, 16} and ws
    assert all("Uhlich" in o["reason"] for o in art.report["ops"] if o["integer"])


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "qcc.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args,fragment", [
    (["--sqnr-min", "120"], "--sqnr-min 120 dB is impossible: op '"),
    (["--size-budget", "1"], "--size-budget 1 KB is impossible"),
    (["--bitops-budget", "1000"], "--bitops-budget 1000 is impossible"),
    (["--bits", "3,8"], "--bits '3,8'"),
    (["--calib-method", "magic"], "--calib-method"),
    (["--target", "z80"], "--target"),
    (["--size-budget", "-5"], "--size-budget must be a non-negative number"),
])
def test_bad_options_and_impossible_constraints_are_one_line_errors(args, fragment, tmp_path):
    out = tmp_path / "out"
    r = run_cli(str(MODELS / "lenet_digits.onnx"), "-o", str(out), "--calib", str(MODELS / "digits_calib.npz"),
                "-q", *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in r.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".qcc-")]


def test_out_dir_that_qcc_did_not_create_needs_force(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    args = [str(MODELS / "lenet_digits.onnx"), "-o", str(out), "--bits", "8", "-q"]
    r = run_cli(*args)
    assert r.returncode == 2 and "--force" in r.stderr
    assert (out / "notes.txt").read_text() == "keep me"
    r = run_cli(*args, "--force")
    assert r.returncode == 0, r.stderr
    assert (out / "model.mlir").exists()
    r = run_cli(*args)  # now it is qcc's own directory: rewriting it is fine
    assert r.returncode == 0, r.stderr


def test_calib_file_missing_an_input_names_it(tmp_path):
    np.savez(tmp_path / "c.npz", image=np.zeros((4, 1, 32, 32), np.float32))
    r = run_cli(str(MODELS / "lenet_digits.onnx"), "-o", str(tmp_path / "o"), "--calib", str(tmp_path / "c.npz"))
    assert r.returncode == 2 and "no array for graph input(s) input" in r.stderr


def test_mobilenetv3_small_with_batchnorm_compiles_to_int8(tmp_path):
    """The TorchScript export keeps 34 BatchNormalization nodes: fold-batchnorm removes
    them, every conv and gemm becomes integer, and top-1 agrees with float."""
    from conftest import load_split

    calib, xs = load_split(MODELS / "digits96_calib.npz")[0][:32], load_split(MODELS / "digits96_test.npz")[0][:60]
    path = MODELS / "mbv3_small_digits.onnx"
    art = qcc.compile(path, str(tmp_path / "out"), calib={"input": calib}, bits=(8,))
    assert not art.report["warnings"]
    assert "onnx.BatchNormalization" not in (tmp_path / "out" / "model.mlir").read_text()
    assert {o["op_type"] for o in art.report["ops"] if o["w_bits"]} == {"Conv", "Gemm"}
    fl = qcc.interpret(path, {"input": xs})["logits"]
    ql = art.run({"input": xs})["logits"]
    assert (fl.argmax(1) == ql.argmax(1)).mean() >= 0.98


def test_qcc_run_executes_the_generated_c_bit_exactly(data, tmp_path):
    import shutil

    from conftest import IN_CI

    if shutil.which("gcc") is None and not IN_CI:
        pytest.skip("no gcc on this machine (CI installs it)")
    calib, xs, _ = data
    out = tmp_path / "out"
    r = run_cli(str(MODELS / "lenet_digits.onnx"), "-o", str(out), "--calib", str(MODELS / "digits_calib.npz"),
                "--bits", "4,8", "--size-budget", "40", "-q")
    assert r.returncode == 0, r.stderr
    assert {"model.c", "model.h", "Makefile"} <= {p.name for p in out.iterdir()}
    np.savez(tmp_path / "in.npz", input=xs[:30])
    r = run_cli("run", str(out), "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "c.npz"))
    assert r.returncode == 0, r.stderr
    r = run_cli("interpret", str(out / "model.mlir"), "--inputs", str(tmp_path / "in.npz"), "--output",
                str(tmp_path / "i.npz"), "-q")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "c.npz") as c, np.load(tmp_path / "i.npz") as i:
        assert np.array_equal(c["logits"], i["logits"])
    rep = json.loads((out / "report.json").read_text())
    assert rep["code"]["arena_bytes"] < rep["code"]["naive_activation_bytes"]
    r = run_cli("run", str(out), "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "q.npz"),
                "--on", "qemu")
    assert r.returncode == 2 and "compiled for --target host" in r.stderr


def test_fuse_activation_changes_no_bit(data):
    """Folding ReLU/ReLU6 clamps into their producers leaves every output code unchanged."""
    from xdsl.context import Context

    from qcc.interpreter import run_samples
    from qcc.passes.calibrate import annotate, record_float
    from qcc.passes.fuse_activation import FuseActivationPass
    from qcc.passes.lower_to_quant import LowerToQuantPass

    calib, xs, _ = data
    module = qcc.import_model(MODELS / "mbv3_digits.onnx")
    rec = record_float(module, {"input": calib[:32]})
    from qcc.interpreter import main_func

    annotate(module, {k: v for k, v in rec.stats.items() if hasattr(k, "attributes")},
             [rec.stats[a] for a in main_func(module).args], "minmax", (8,), 32, "test")
    LowerToQuantPass().apply(Context(), module)
    fused = module.clone()
    FuseActivationPass().apply(Context(), fused)
    fused.verify()
    n_clamps = lambda m: sum(1 for o in m.walk() if o.name == "quant.clamp")  # noqa: E731
    assert n_clamps(module) > 0 and n_clamps(fused) < n_clamps(module)
    a = run_samples(module, {"input": xs[:40]})["logits"]
    b = run_samples(fused, {"input": xs[:40]})["logits"]
    assert np.array_equal(a, b)


def test_outside_model_with_generated_weights_compiles_to_integer_and_c(tmp_path):
    """onnx's light_squeezenet makes its weights with ConstantOfShape: fold-constants turns
    them into constants, every conv becomes integer, and the C build equals the interpreter."""
    import shutil

    from conftest import IN_CI, light_models_dir

    out = tmp_path / "sq"
    art = qcc.compile(light_models_dir() / "light_squeezenet.onnx", str(out), bits=(8,))
    assert [o["op_type"] for o in art.report["ops"] if not o["integer"]] == ["Softmax"]
    assert sum(1 for o in art.report["ops"] if o["op_type"] == "Conv" and o["w_bits"] == 8) == 26
    if shutil.which("gcc") is None and not IN_CI:
        pytest.skip("no gcc on this machine (CI installs it)")
    x = {"data_0": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    c = art.run(x, backend="c")
    i = art.run(x, backend="interpreter")
    assert all(np.array_equal(c[k], i[k]) for k in i)
