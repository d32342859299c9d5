"""Generated-C speed: the host beside onnxruntime, and instruction counts on MCUs.

    python tools/bench_c.py [--models mbv3_digits,resnet_digits,lenet_digits,mbv3_small_digits]
                            [--mcu cortex-m4,rv32imac] [--mcu-model mbv3_digits] [--no-host] [--json out.json]

Host: for each model, qcc --bits 8 (uniform int8) compiled to C, built with gcc -O2 and with
-O3 -march=native, timed in-process by the generated harness (qcc_model_run, float in/out,
quantize/dequantize included); next to onnxruntime on the float model and on its own int8
QDQ model (quantize_static, per-channel MinMax), both single-threaded, batch 1, best of
several runs of many inferences, all in the same run (compare ratios: the machine may be
loaded). Also peak SRAM (the static arena) against the naive sum of tensors, and flash.

MCU (issue 4): per target, instructions per inference and per MAC of one model with its
per-layer breakdown (qemu-system -icount shift=0 through qcc.backends.c.targets), and four
micro-benchmarks built as tiny quantized ONNX models (random weights, int8): 3x3 conv
16->16 at 32x32, 3x3 depthwise 32 ch at 32x32, 1x1 conv 32->64 at 32x32, fully connected
512->128, each counted as the instructions of its layer only. CMSIS-NN v7's figures are
printed beside them as the issue quotes them (measured by the issue under the same kind of
harness at -O2, not by this script). Everything is compiled with --target for the MCU (its
C holds the microcontroller kernels alone); the peak SRAM (report.json sram_peak_bytes) of
three models is printed for that C and for the host's.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
sys.path.insert(0, str(ROOT / "tools"))


def ort_latency_us(path, x: np.ndarray, runs: int) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feeds = {"input": x[:1]}
    for _ in range(10):
        sess.run(None, feeds)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(runs):
            sess.run(None, feeds)
        best = min(best, (time.perf_counter() - t) / runs)
    return best * 1e6


# instr/MAC of ARM's CMSIS-NN v7 as the issue quotes them (Cortex-M4 with DSP; portable C on rv32imac)
CMSIS_NN = {"cortex-m4": {"conv": 2.33, "depthwise": 8.08, "pointwise": 2.65, "fc": 1.97},
            "rv32imac": {"conv": 5.51, "depthwise": 17.41, "pointwise": 5.52, "fc": 5.77}}
ISSUE_TARGET = {"cortex-m4": {"conv": 1.5, "depthwise": 5.0, "pointwise": 1.5, "fc": 1.5},
                "rv32imac": {"conv": 3.0, "depthwise": 10.0, "pointwise": 3.0, "fc": 3.0}}


def micro_models() -> dict:
    """name -> (onnx.ModelProto, MACs of its one layer, input shape): the issue's four layer shapes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def graph(name, node, shape, out_shape, w, b):
        g = helper.make_graph([node], name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        onnx.checker.check_model(m)
        return m

    def conv(name, c, m, hw, k, group):
        w = rng.normal(0, 0.2, size=(m, c // group, k, k)).astype(np.float32)
        b = rng.normal(0, 0.1, size=m).astype(np.float32)
        node = helper.make_node("Conv", ["input", "w", "b"], ["y"], name=name, group=group, pads=[k // 2] * 4,
                                kernel_shape=[k, k])
        return graph(name, node, [1, c, hw, hw], [1, m, hw, hw], w, b), m * (c // group) * k * k * hw * hw, (1, c, hw, hw)

    def fc(name, k, n):
        w = rng.normal(0, 0.05, size=(n, k)).astype(np.float32)
        b = rng.normal(0, 0.1, size=n).astype(np.float32)
        node = helper.make_node("Gemm", ["input", "w", "b"], ["y"], name=name, transB=1)
        return graph(name, node, [1, k], [1, n], w, b), k * n, (1, k)

    return {"conv": conv("conv3x3_16_16_32x32", 16, 16, 32, 3, 1),
            "depthwise": conv("dw3x3_32_32x32", 32, 32, 32, 3, 32),
            "pointwise": conv("pw1x1_32_64_32x32", 32, 64, 32, 1, 1),
            "fc": fc("fc_512_128", 512, 128)}


def _layer_instructions(info: dict) -> int:
    layers = [x for x in info.get("layers", []) if "quant.conv" in x["op"] or "quant.fully_connected" in x["op"]
              or "quant.add" in x["op"]]
    return sum(x["instructions"] for x in layers)


def mcu_section(targets: list[str], model: str, work: pathlib.Path,
                sram_models=("lenet_digits", "resnet_digits", "mbv3_digits")) -> dict:
    import onnx

    import qcc
    from bench_quant import DATA, load_split
    from qcc.backends.c import targets as tg

    out: dict = {"micro": [], "models": []}
    for t in targets:
        why = tg.toolchain_missing(t)
        if why:
            print(f"{t}: skipped ({why})")
            continue
        path = MODELS / f"{model}.onnx"
        calib = load_split(MODELS / f"{DATA[model]}_calib.npz")[0]
        art = qcc.compile(path, str(work / f"mcu_{model}"), calib={"input": calib}, bits=(8,), force=True, target=t)
        files = {n: (work / f"mcu_{model}" / n).read_text() for n in ("model.c", "model.h")}
        exe = tg.build(files, t, work / f"mcu_{model}_{t}", profile=True)
        _, info = tg.run(exe, t, files, {"input": calib[:1]})
        macs = art.report["totals"]["macs"]
        tot = art.report["totals"]
        row = {"target": t, "model": model, "instructions": info["instructions"], "macs": macs,
               "instr_per_mac": info["instructions"] / macs, "layers": info.get("layers", []),
               "sram_peak_bytes": tot.get("sram_peak_bytes"), "naive_activation_bytes": tot.get("naive_activation_bytes"),
               "flash_bytes": tot.get("flash_bytes")}
        out["models"].append(row)
        print(f"\n{t}: {model}: {row['instructions']:,} instructions per inference, {macs:,} MACs, "
              f"{row['instr_per_mac']:.2f} instr/MAC; peak SRAM {row['sram_peak_bytes']} B "
              f"(naive {row['naive_activation_bytes']} B), flash {row['flash_bytes']} B")
        print(f"  {'step':>4} {'instructions':>13}  op")
        for x in sorted(row["layers"], key=lambda x: -x["instructions"])[:12]:
            print(f"  {x['step']:4d} {x['instructions']:13,}  {x['op'][:90]}")
        print(f"\n  {'layer':10} {'MACs':>9} {'instr':>11} {'instr/MAC':>9} {'CMSIS-NN v7*':>12} {'issue target':>12}")
        for name, (m, lmacs, shape) in micro_models().items():
            p = work / f"micro_{name}.onnx"
            onnx.save(m, p)
            xs = np.random.default_rng(1).normal(0, 1, size=(8, *shape[1:])).astype(np.float32)
            qcc.compile(p, str(work / f"micro_{name}"), calib={"input": xs}, bits=(8,), force=True, target=t)
            mf = {n: (work / f"micro_{name}" / n).read_text() for n in ("model.c", "model.h")}
            exe = tg.build(mf, t, work / f"micro_{name}_{t}", profile=True)
            _, minfo = tg.run(exe, t, mf, {"input": xs[:1]})
            li = _layer_instructions(minfo)
            r = {"target": t, "layer": name, "macs": lmacs, "instructions": li, "instr_per_mac": li / lmacs,
                 "cmsis_nn_v7_quoted": CMSIS_NN.get(t, {}).get(name), "issue_target": ISSUE_TARGET.get(t, {}).get(name)}
            out["micro"].append(r)
            peer = "-" if r["cmsis_nn_v7_quoted"] is None else f"{r['cmsis_nn_v7_quoted']:.2f}"
            goal = "-" if r["issue_target"] is None else f"<= {r['issue_target']:.1f}"
            print(f"  {name:10} {lmacs:9,} {li:11,} {r['instr_per_mac']:9.2f} {peer:>12} {goal:>12}")
        print("  * CMSIS-NN v7 figures as quoted by the issue (same kind of harness, -O2), not measured here")
        # SRAM: the C for this target (microcontroller kernels, small scratch) against the host's C
        print(f"\n  {'model':20} {'sram_peak_bytes':>16} {'(--target host)':>16}")
        for name in sram_models:
            calib = load_split(MODELS / f"{DATA[name]}_calib.npz")[0][:32]
            peaks = [qcc.compile(MODELS / f"{name}.onnx", str(work / f"sram_{name}_{tt}"), calib={"input": calib},
                                 bits=(8,), force=True, target=tt).report["totals"]["sram_peak_bytes"]
                     for tt in (t, "host")]
            out.setdefault("sram", []).append({"target": t, "model": name, "sram_peak_bytes": peaks[0],
                                               "sram_peak_bytes_host_c": peaks[1]})
            print(f"  {name:20} {peaks[0]:16,} {peaks[1]:16,}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mbv3_digits,resnet_digits,lenet_digits,mbv3_small_digits")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--json")
    ap.add_argument("--mcu", default="cortex-m4,rv32imac", help="targets for the instruction counts ('' = none)")
    ap.add_argument("--mcu-model", default="mbv3_digits", help="the model whose per-layer breakdown is shown")
    ap.add_argument("--no-host", action="store_true", help="skip the host/onnxruntime timings")
    args = ap.parse_args(argv)

    import qcc
    from bench_quant import DATA, load_split, ort_quantize
    from qcc.backends.c.run import build_host, run_host
    from qcc.interpreter import keep_freed_memory

    keep_freed_memory()
    rows = []
    result: dict = {"host": rows}
    with tempfile.TemporaryDirectory() as d:
        work = pathlib.Path(d)
        if not args.no_host:
            print(f"{'model':20} {'qcc C -O2 us':>13} {'qcc C -O3 native':>17} {'ort float us':>13} "
                  f"{'ort int8 us':>12} {'O3/ort float':>12} {'arena B':>9} {'naive B':>10} {'flash B':>9}")
        for name in ([] if args.no_host else args.models.split(",")):
            path = MODELS / f"{name}.onnx"
            calib = load_split(MODELS / f"{DATA[name]}_calib.npz")[0]
            art = qcc.compile(path, str(work / name), calib={"input": calib}, bits=(8,), force=True)
            files = {n: (work / name / n).read_text() for n in ("model.c", "model.h")}
            x = calib[:1]
            res = {}
            for label, flags in (("O2", ()), ("O3", ("-O3", "-march=native"))):
                exe = build_host(files, work / f"{name}_{label}", extra_cflags=flags)
                # best of several runs of many inferences, like the onnxruntime figures
                res[label] = min(run_host(exe, files, {"input": x}, bench_iters=args.runs)[1] for _ in range(5)) / 1e3
            qpath = work / f"{name}_qdq.onnx"
            ort_quantize(path, calib, qpath)
            row = {"model": name, "qcc_c_O2_us": res["O2"], "qcc_c_O3_native_us": res["O3"],
                   "ort_float_us": ort_latency_us(path, x, args.runs), "ort_int8_us": ort_latency_us(qpath, x, args.runs),
                   "arena_bytes": art.report["code"]["arena_bytes"],
                   "naive_bytes": art.report["code"]["naive_activation_bytes"],
                   "flash_bytes": art.report["totals"].get("flash_bytes")}
            rows.append(row)
            print(f"{name:20} {row['qcc_c_O2_us']:13.1f} {row['qcc_c_O3_native_us']:17.1f} {row['ort_float_us']:13.1f} "
                  f"{row['ort_int8_us']:12.1f} {row['qcc_c_O3_native_us'] / row['ort_float_us']:12.2f} "
                  f"{row['arena_bytes']:9d} {row['naive_bytes']:10d} {row['flash_bytes'] or 0:9d}")
        if args.mcu:
            result["mcu"] = mcu_section([t for t in args.mcu.split(",") if t], args.mcu_model, work)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
