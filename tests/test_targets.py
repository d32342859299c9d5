"""Cross targets (qcc.backends.c.targets) against the integer interpreter, bit for bit.

Every committed model at uniform int8 and at mixed 4/8 bits is built once per
target with -Werror and run on a few samples in one emulator run per entry point:
qemu-user for the Linux-class targets (cortex-a53, rv64gc), qemu-system with qcc's
bare-metal runtime for the MCUs (cortex-m4 and rv32imac on every model, cortex-m7
on one; every model also builds for cortex-m7). The float entry point must return
exactly the interpreter's float32 outputs, the integer one exactly its codes.
test_c_backend's generated cases for every quant op run the same way on rv64gc,
cortex-m4 and rv32imac, and hypothesis draws batches of random convolutions for
rv64gc and rv32imac (one program, one emulator run per batch). A program with a
known instruction count checks the bare-metal counters, a profiled build checks
the per-step counts, and `qcc run --on qemu` / `Artifact.run(on="qemu")` are
checked end to end (with `make` in OUT/ building for the target).

Without a toolchain or emulator the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qcc
from qcc import numerics as nx
from conftest import MODELS, load_split
from qcc.backends.c import emit_model
from qcc.backends.c import targets as tg
from qcc.backends.c.run import io_meta
from qcc.interpreter import run_samples
from test_c_backend import (assert_bits_equal, conv_case, fc_case, interpreter_codes, module_of, other_op_cases,
                            random_inputs)

N_SAMPLES = 3
MODEL_FILES = {"lenet": "lenet_digits", "resnet": "resnet_digits", "mbv3": "mbv3_digits",
               "mbv3_small": "mbv3_small_digits"}
BUDGET_4_8 = {"lenet": 40, "resnet": 120, "mbv3": 55, "mbv3_small": 800}  # KB, between all-4-bit and int8
CONFIGS = {"int8": lambda m: dict(bits=(8,)), "int4-8": lambda m: dict(bits=(4, 8), size_budget_kb=BUDGET_4_8[m])}
EXTRA_CONFIGS = {"int16": lambda m: dict(bits=(16,)),  # 64-bit accumulators on 32-bit cores
                 "mixed-2-16": lambda m: dict(bits=(2, 4, 8, 16), size_budget_kb=25)}
RUN_TARGETS = ("cortex-a53", "rv64gc", "cortex-m4", "rv32imac")
CASES = [(m, c, t) for m in MODEL_FILES for c in CONFIGS for t in RUN_TARGETS] + [
    ("mbv3", "int8", "cortex-m7"), ("lenet", "int16", "rv32imac"), ("lenet", "int16", "cortex-m4"),
    ("lenet", "mixed-2-16", "rv32imac"), ("lenet", "mixed-2-16", "cortex-m7")]


def need(target: str, *, run: bool = True) -> None:
    why = tg.toolchain_missing(target, run=run)
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)


def _data(model: str):
    if model == "mbv3_small":
        return load_split(MODELS / "digits96_calib.npz")[0][:32], load_split(MODELS / "digits96_test.npz")[0]
    return load_split(MODELS / "digits_calib.npz")[0], load_split(MODELS / "digits_test.npz")[0]


_ARTIFACTS: dict = {}


def compiled(model: str, config: str, tmp_path_factory):
    """The compiled module, its C and a few test samples; once per session."""
    key = (model, config)
    if key not in _ARTIFACTS:
        calib, test = _data(model)
        out = tmp_path_factory.mktemp(f"qcc_{model}_{config}")
        art = qcc.compile(MODELS / f"{MODEL_FILES[model]}.onnx", str(out), calib={"input": calib}, force=True,
                          quiet=True, **{**CONFIGS, **EXTRA_CONFIGS}[config](model))
        _ARTIFACTS[key] = (art.module, emit_model(art.module), {"input": test[:N_SAMPLES]})
    return _ARTIFACTS[key]


@pytest.mark.parametrize("model,config,target", CASES, ids=["-".join(c) for c in CASES])
def test_generated_c_is_bit_exact_on_the_target(model, config, target, tmp_path_factory):
    need(target)
    module, cm, xs = compiled(model, config, tmp_path_factory)
    exe = tg.build(cm.files, target, tmp_path_factory.mktemp(f"{target}_{model}_{config}"))
    got, info = tg.run(exe, target, cm.files, xs)
    want = run_samples(module, xs)
    for name in want:
        assert_bits_equal(got[name], want[name], f"{target}: float output {name!r}")
    assert cm.has_run_q
    meta = io_meta(cm.files)
    d = meta["inputs"][0]
    qp = nx.QParams(d["bits"], True, (d["scale"],), (d["zero_point"],))
    codes_in = {"input": nx.quantize(np.asarray(xs["input"], np.float32), qp)}
    got_q, info_q = tg.run(exe, target, cm.files, codes_in, codes=True)
    want_q = interpreter_codes(module, xs)
    for j, o in enumerate(meta["outputs"]):
        assert_bits_equal(got_q[o["name"]], want_q[j].reshape(got_q[o["name"]].shape), f"{target}: codes {j}")
    if tg.TARGETS[target].kind == "baremetal":
        assert len(info["instructions_per_sample"]) == N_SAMPLES
        assert info_q["instructions"] > 1000 and info["instructions"] > info_q["instructions"]  # + quantize


@pytest.mark.parametrize("model", list(MODEL_FILES))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_model_builds_with_werror_for_every_target(model, config, tmp_path_factory):
    """Build only: the run test covers the other targets' builds (all with -Werror)."""
    for target in ("cortex-m7", "host"):
        need(target, run=False)
        _, cm, _ = compiled(model, config, tmp_path_factory)
        exe = tg.build(cm.files, target, tmp_path_factory.mktemp(f"werror_{target}"))
        assert exe.is_file() and exe.stat().st_size > 0


def _loop_model() -> dict[str, str]:
    """A stand-in model.c whose qcc_model_run spins a loop of exactly 2n+1 instructions, n = its input."""
    io = {"inputs": [{"name": "x", "shape": [1, 1], "size": 1}], "outputs": [{"name": "y", "shape": [1, 1], "size": 1}],
          "run_q": False}
    h = ("#include <stdint.h>\n#define QCC_INPUT0_SIZE 1\n#define QCC_OUTPUT0_SIZE 1\n"
         "int qcc_model_run(const float *input0, float *output0);\n"
         f"/* qcc-io {json.dumps(io)} */\n")
    c = """#include "model.h"
int qcc_model_run(const float *input0, float *output0)
{
    unsigned n = (unsigned)input0[0];
#if defined(__riscv)
    __asm__ volatile("1: addi %0, %0, -1\\n bnez %0, 1b" : "+r"(n));
#else
    __asm__ volatile("1: subs %0, %0, #1\\n bne 1b" : "+r"(n) : : "cc");
#endif
    output0[0] = input0[0];
    return 0;
}
"""
    return {"model.c": c, "model.h": h}


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7", "rv32imac"])
def test_instruction_counter_counts_a_known_loop(target, tmp_path):
    """Each count is the loop's 2n+1 instructions plus the same call overhead: exactly
    (minstret) on rv32, within 3 instructions (the 4-instruction SysTick synchronisation
    loop at either end) on Cortex-M."""
    need(target)
    ns = np.array([1, 1000, 1001, 1003, 100_000, 100_007, 2_345_678], np.float32)
    files = _loop_model()
    exe = tg.build(files, target, tmp_path)
    got, info = tg.run(exe, target, files, {"x": ns[:, None]})
    assert got["y"][:, 0].tolist() == ns.tolist()
    extra = np.asarray(info["instructions_per_sample"]) - (2 * ns.astype(np.int64) + 1)
    assert extra.min() >= -3 and extra.max() <= 40, extra
    assert extra.max() - extra.min() <= (0 if target == "rv32imac" else 6), extra


def test_profile_splits_the_count_per_step(tmp_path_factory):
    need("rv32imac")
    module, cm, xs = compiled("lenet", "int8", tmp_path_factory)
    exe = tg.build(cm.files, "rv32imac", tmp_path_factory.mktemp("profile"), profile=True)
    got, info = tg.run(exe, "rv32imac", cm.files, xs)
    assert_bits_equal(got["logits"], run_samples(module, xs)["logits"], "profiled build")
    layers = info["layers"]
    assert [d["step"] for d in layers] == list(range(len(layers))) and "quant.conv" in layers[0]["op"]
    total = sum(d["instructions"] for d in layers)
    conv = sum(d["instructions"] for d in layers if "quant.conv" in d["op"])
    # the float entry point quantizes/dequantizes outside the steps; the convs dominate lenet
    assert 0.5 * info["instructions"] < total < info["instructions"] and conv > 0.8 * total


def _qcc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "qcc.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_qcc_run_on_qemu_runs_the_artifacts_target(tmp_path):
    need("cortex-m4")
    out = tmp_path / "out"
    r = _qcc(str(MODELS / "lenet_digits.onnx"), "-o", str(out), "--target", "cortex-m4", "--bits", "8",
             "--calib", str(MODELS / "digits_calib.npz"), "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "report.json").read_text())["code"]["target"] == "cortex-m4"
    xs, _ = load_split(MODELS / "digits_test.npz")
    np.savez(tmp_path / "in.npz", input=xs[:4])
    r = _qcc("run", str(out), "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "m4.npz"),
             "--on", "qemu")
    assert r.returncode == 0, r.stderr
    assert "on cortex-m4 under qemu" in r.stderr and "instructions per inference" in r.stderr
    r = _qcc("run", str(out), "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "host.npz"))
    assert r.returncode == 0, r.stderr
    r = _qcc("interpret", str(out / "model.mlir"), "--inputs", str(tmp_path / "in.npz"), "--output",
             str(tmp_path / "i.npz"), "-q")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "m4.npz") as m4, np.load(tmp_path / "host.npz") as h, np.load(tmp_path / "i.npz") as i:
        assert_bits_equal(m4["logits"], i["logits"], "qcc run --on qemu")
        assert_bits_equal(h["logits"], i["logits"], "qcc run --on host of a cortex-m4 build")
    # the Makefile builds for the target: an ARM object in libmodel.a
    r = subprocess.run(["make", "-s"], cwd=out, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    head = (out / "model.o").read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 40  # EM_ARM
    assert (out / "libmodel.a").is_file()


def test_qcc_run_on_qemu_errors_are_one_line(tmp_path):
    out = tmp_path / "out"
    r = _qcc(str(MODELS / "lenet_digits.onnx"), "-o", str(out), "--bits", "8", "-q")
    assert r.returncode == 0, r.stderr
    xs, _ = load_split(MODELS / "digits_test.npz")
    np.savez(tmp_path / "in.npz", input=xs[:2])
    r = _qcc("run", str(out), "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.npz"),
             "--on", "qemu")
    assert r.returncode == 2 and "compiled for --target host" in r.stderr and len(r.stderr.splitlines()) == 1
    r = _qcc("run", str(out), "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.npz"),
             "--on", "mars")
    assert r.returncode == 2 and "--on" in r.stderr and "Traceback" not in r.stderr


def test_the_compile_options_and_the_target_table_agree():
    from qcc.driver import TARGETS

    assert set(TARGETS) == set(tg.TARGETS)


def test_a_missing_toolchain_is_named(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    tg._has_file.cache_clear()
    why = tg.toolchain_missing("cortex-m4")
    assert why is not None and "arm-none-eabi-gcc" in why and "apt-get install" in why
    with pytest.raises(qcc.QccError, match="arm-none-eabi-gcc"):
        tg.build({}, "cortex-m4", "/nonexistent/work")


# ------------------------------------------------ every quant op, random cases


def check_on_target(module, feeds: dict, target: str, work, names: list[str]) -> None:
    """Builds `module` for `target`, runs both entry points over all samples in one
    emulator run each, compares with the interpreter bit for bit (naming the case)."""
    cm = emit_model(module)
    exe = tg.build(cm.files, target, work)
    got, _ = tg.run(exe, target, cm.files, feeds)
    want = run_samples(module, feeds)
    meta = io_meta(cm.files)
    codes_in = {}
    for d in meta["inputs"]:
        qp = nx.QParams(d["bits"], True, (d["scale"],), (d["zero_point"],))
        codes_in[d["name"]] = nx.quantize(np.asarray(feeds[d["name"]], np.float32), qp)
    got_q, _ = tg.run(exe, target, cm.files, codes_in, codes=True)
    want_q = interpreter_codes(module, feeds)
    for j, d in enumerate(meta["outputs"]):
        assert_bits_equal(got[d["name"]], want[d["name"]], f"{target}: case {names[j]} (float)")
        assert_bits_equal(got_q[d["name"]], want_q[j], f"{target}: case {names[j]} (codes)")


OP_TARGETS = ("rv64gc", "cortex-m4", "rv32imac")


@pytest.mark.parametrize("target", OP_TARGETS)
def test_every_quant_op_on_the_target(target, tmp_path):
    """test_c_backend's generated op cases (every conv path through random convs, FC,
    every other quant op), all in one program per group, on 64- and 32-bit targets."""
    need(target)
    rng = np.random.default_rng(7)
    groups = {"conv": [conv_case(rng, i) for i in range(24)] + [fc_case(rng, i) for i in range(12)],
              "other": other_op_cases()}
    for name, cases in groups.items():
        feeds = random_inputs(cases, 3, np.random.default_rng(1))
        check_on_target(module_of(cases), feeds, target, tmp_path / name, [c.name for c in cases])


@pytest.mark.parametrize("target", ["rv64gc", "rv32imac"])
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_convolutions_are_bit_exact_on_the_target(target, seed, tmp_path):
    """Hypothesis draws the seed of ~20 random conv/FC cases (shapes, strides, dilations,
    groups, 2..16-bit widths, per-channel scales), batched into one program per example,
    run under qemu-user (rv64gc) and bare metal (rv32imac)."""
    need(target)
    rng = np.random.default_rng(seed)
    cases = [conv_case(rng, i) for i in range(int(rng.integers(0, 30)), 45, 3)] + \
        [fc_case(rng, i) for i in range(int(rng.integers(0, 6)), 12, 3)]
    feeds = random_inputs(cases, 2, rng)
    check_on_target(module_of(cases), feeds, target, tmp_path / f"s{seed}", [c.name for c in cases])


def test_artifact_run_on_qemu(tmp_path):
    """The library: art.run(inputs, on="qemu") runs the artifact's target, on="host" the host build."""
    need("rv32imac")
    calib, test = _data("lenet")
    art = qcc.compile(MODELS / "lenet_digits.onnx", str(tmp_path / "out"), target="rv32imac", calib={"input": calib},
                      bits=(8,), quiet=True)
    assert "rv32imac" in (tmp_path / "out" / "Makefile").read_text()
    xs = {"input": test[:2]}
    want = run_samples(art.module, xs)["logits"]
    assert_bits_equal(art.run(xs, on="qemu")["logits"], want, "art.run(on='qemu')")
    assert_bits_equal(art.run(xs)["logits"], want, "art.run()")
    with pytest.raises(qcc.QccError, match="on='mars'"):
        art.run(xs, on="mars")


def test_report_memory_is_the_built_programs(tmp_path):
    """For an MCU target report.json's flash_bytes is what the target's compiler lays
    out (code + weights + tables) and sram_peak_bytes is the static arena it reserves."""
    need("cortex-m4", run=False)
    art = qcc.compile(str(MODELS / "lenet_digits.onnx"), str(tmp_path / "out"), target="cortex-m4", bits=(8,),
                      quiet=True)
    totals, obj = art.report["totals"], art.report["code"]["object_bytes"]
    assert totals["flash_bytes"] == obj["text"] + obj["data"]
    assert totals["flash_bytes"] > totals["weight_bytes"]  # code and requantization tables come on top
    assert obj["bss"] >= totals["arena_bytes"] == totals["sram_peak_bytes"]  # run_q: I/O codes live in the arena
    assert totals["sram_peak_bytes_excl_input"] <= totals["sram_peak_bytes"]
