"""Generated-C latency on the host, side by side with onnxruntime, one sample at a time.

    python tools/bench_c.py [--models mbv3_digits,resnet_digits,lenet_digits,mbv3_small_digits] [--json out.json]

For each model: qcc --bits 8 (uniform int8) compiled to C, built with gcc -O2 and with
-O3 -march=native, timed in-process by the generated harness (qcc_model_run, float in/out,
quantize/dequantize included); next to onnxruntime on the float model and on its own int8
QDQ model (quantize_static, per-channel MinMax), both single-threaded, batch 1, best of
several runs of many inferences. Also the static arena against the naive sum of tensors.
The MCU part of issue 4 (qemu-system -icount) is not here yet.
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mbv3_digits,resnet_digits,lenet_digits,mbv3_small_digits")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    import qcc
    from bench_quant import DATA, load_split, ort_quantize
    from qcc.backends.c.run import build_host, run_host
    from qcc.interpreter import keep_freed_memory

    keep_freed_memory()
    rows = []
    print(f"{'model':20} {'qcc C -O2 us':>13} {'qcc C -O3 native':>17} {'ort float us':>13} {'ort int8 us':>12} "
          f"{'arena B':>9} {'naive B':>10}")
    with tempfile.TemporaryDirectory() as d:
        work = pathlib.Path(d)
        for name in args.models.split(","):
            path = MODELS / f"{name}.onnx"
            calib = load_split(MODELS / f"{DATA[name]}_calib.npz")[0]
            art = qcc.compile(path, str(work / name), calib={"input": calib}, bits=(8,), force=True)
            files = {n: (work / name / n).read_text() for n in ("model.c", "model.h")}
            x = calib[:1]
            res = {}
            for label, flags in (("O2", ()), ("O3", ("-O3", "-march=native"))):
                exe = build_host(files, work / f"{name}_{label}", extra_cflags=flags)
                _, ns = run_host(exe, files, {"input": x}, bench_iters=args.runs)
                res[label] = ns / 1e3
            qpath = work / f"{name}_qdq.onnx"
            ort_quantize(path, calib, qpath)
            row = {"model": name, "qcc_c_O2_us": res["O2"], "qcc_c_O3_native_us": res["O3"],
                   "ort_float_us": ort_latency_us(path, x, args.runs), "ort_int8_us": ort_latency_us(qpath, x, args.runs),
                   "arena_bytes": art.report["code"]["arena_bytes"],
                   "naive_bytes": art.report["code"]["naive_activation_bytes"]}
            rows.append(row)
            print(f"{name:20} {row['qcc_c_O2_us']:13.1f} {row['qcc_c_O3_native_us']:17.1f} {row['ort_float_us']:13.1f} "
                  f"{row['ort_int8_us']:12.1f} {row['arena_bytes']:9d} {row['naive_bytes']:10d}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
