"""The `qcc` and `qcc-opt` command lines: results, and one-line errors with exit status 2."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import MODELS, ort_run, rel_err


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qcc.cli", *args], capture_output=True, text=True)


def run_opt(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qcc.opt", *args], capture_output=True, text=True, input=stdin)


def assert_one_line_error(r: subprocess.CompletedProcess, *fragments: str, status: int = 2):
    assert r.returncode == status, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_interpret_writes_float32_outputs_keyed_by_output_name(tmp_path, digits_test):
    xs = digits_test["input"][:20]
    np.savez(tmp_path / "in.npz", input=xs)
    r = run("interpret", str(MODELS / "lenet_digits.onnx"), "--inputs", str(tmp_path / "in.npz"),
            "--output", str(tmp_path / "out.npz"))
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "out.npz") as z:
        assert z.files == ["logits"]
        got = z["logits"]
    assert got.dtype == np.float32 and got.shape == (20, 10)
    assert rel_err(got, ort_run(MODELS / "lenet_digits.onnx", {"input": xs})[0]) <= 1e-4


def test_interpret_runs_the_printed_mlir_of_a_model(tmp_path, digits_test):
    mlir = tmp_path / "lenet.mlir"
    r = run_opt(str(MODELS / "lenet_digits.onnx"), "--print-large-constants", "-o", str(mlir))
    assert r.returncode == 0, r.stderr
    xs = digits_test["input"][:5]
    np.savez(tmp_path / "in.npz", input=xs)
    r = run("interpret", str(mlir), "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.npz"))
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "o.npz") as z:
        assert rel_err(z["logits"], ort_run(MODELS / "lenet_digits.onnx", {"input": xs})[0]) <= 1e-4


@pytest.mark.parametrize("case", ["no_model", "not_onnx", "no_npz", "bad_npz", "missing_input", "bad_shape",
                                  "bad_option", "bad_dir", "bad_chunk", "unknown_command"])
def test_interpret_errors_are_one_line_and_write_nothing(tmp_path, case, digits_test):
    model = str(MODELS / "lenet_digits.onnx")
    good_in = tmp_path / "in.npz"
    np.savez(good_in, input=digits_test["input"][:2])
    out = tmp_path / "out.npz"
    args, expect = {
        "no_model": (["interpret", str(tmp_path / "nope.onnx"), "--inputs", str(good_in), "--output", str(out)],
                     ["nope.onnx: no such file"]),
        "not_onnx": (["interpret", str(good_in), "--inputs", str(good_in), "--output", str(out)],
                     ["not a valid ONNX model"]),
        "no_npz": (["interpret", model, "--inputs", str(tmp_path / "x.npz"), "--output", str(out)],
                   ["x.npz: no such file"]),
        "bad_npz": (["interpret", model, "--inputs", model, "--output", str(out)], ["not a readable .npz"]),
        "missing_input": (None, ["no array for graph input(s) input (the file holds: image)"]),
        "bad_shape": (None, ["expected an array of shape (samples, 1, 32, 32), got (2, 1, 28, 28)"]),
        "bad_option": (["interpret", model, "--inputs", str(good_in), "--output", str(out), "--frobnicate"],
                       ["--frobnicate"]),
        "bad_dir": (["interpret", model, "--inputs", str(good_in), "--output", str(tmp_path / "no" / "o.npz")],
                    ["does not exist"]),
        "bad_chunk": (["interpret", model, "--inputs", str(good_in), "--output", str(out), "--chunk", "0"],
                      ["--chunk"]),
        "unknown_command": (["frobnicate"], ["unknown command 'frobnicate'"]),
    }[case]
    if case == "missing_input":
        np.savez(tmp_path / "other.npz", image=digits_test["input"][:2])
        args = ["interpret", model, "--inputs", str(tmp_path / "other.npz"), "--output", str(out)]
    if case == "bad_shape":
        np.savez(tmp_path / "shape.npz", input=np.zeros((2, 1, 28, 28), np.float32))
        args = ["interpret", model, "--inputs", str(tmp_path / "shape.npz"), "--output", str(out)]
    r = run(*args)
    assert_one_line_error(r, *expect)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".npz" and p.name.startswith("tmp")] == []


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("qcc ")
    assert run().returncode == 2


def test_qcc_opt_reads_onnx_and_elides_large_constants():
    r = run_opt(str(MODELS / "lenet_digits.onnx"))
    assert r.returncode == 0, r.stderr
    assert "onnx.Conv" in r.stdout and "elided>" in r.stdout
    r2 = run_opt(str(MODELS / "lenet_digits.onnx"), "--print-large-constants")
    assert "elided>" not in r2.stdout


def test_qcc_opt_print_ir_after_all_goes_to_stderr():
    r = run_opt(str(MODELS / "lenet_digits.onnx"), "-p", "dce", "--print-ir-after-all")
    assert r.returncode == 0, r.stderr
    assert "IR Dump After dce" in r.stderr and "onnx.Conv" in r.stderr


@pytest.mark.parametrize("args,fragment", [
    (["-p", "no-such-pass"], "no-such-pass"),
    (["-p", "dce{bogus=1}"], "bogus"),
])
def test_qcc_opt_bad_pipeline_is_one_line(args, fragment):
    r = run_opt(str(MODELS / "lenet_digits.onnx"), *args)
    assert_one_line_error(r, fragment)


def test_qcc_opt_parse_error_exits_2():
    r = run_opt("--split-input-file", stdin="func.func @f( {\n")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_dialects_are_registered_for_xdsl_opt():
    r = subprocess.run(["xdsl-opt", "--print-op-generic"], input=(
        'func.func @f(%x: tensor<1x4xf32>) -> tensor<1x4xf32> {\n'
        '  %y = onnx.Relu %x : (tensor<1x4xf32>) -> tensor<1x4xf32>\n'
        '  func.return %y : tensor<1x4xf32>\n}\n'), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert '"onnx.Relu"' in r.stdout
