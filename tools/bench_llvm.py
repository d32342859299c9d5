"""LLVM backend vs C backend: executed instructions per inference (and per MAC)
under qemu-system with -icount (bare-metal Cortex-M4 and rv32imac), the same
harness and inputs, on the issue's four micro layers (tools/bench_c.py's
micro_models) and the digit models at int8. Whole inferences through the integer
entry point qcc_model_run_q are counted for both backends (codes in, codes out: no
float quantize/dequantize, which soft-float double arithmetic would dominate on
the MCUs), so per-MAC figures include only the small call overhead beyond the
layers. Not a test: a script for people.

    python tools/bench_llvm.py [--targets cortex-m4,rv32imac] [--models lenet_digits,...]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))


def measure(module, xs: dict, target: str, work: pathlib.Path) -> tuple[int, int, bool]:
    """(C instructions, LLVM instructions, outputs identical) for one inference."""
    from qcc.backends.c import emit_model
    from qcc.backends.c import targets as tg
    from qcc.backends.llvm import emit_llvm
    from qcc.backends.llvm.run import build_and_run

    from qcc import numerics as nx
    from qcc.backends.c.run import io_meta

    cm = emit_model(module, target=target)
    codes = {}
    for d in io_meta(cm.files)["inputs"]:
        qp = nx.QParams(d["bits"], True, (d["scale"],), (d["zero_point"],))
        codes[d["name"]] = nx.quantize(xs[d["name"]], qp)
    c_out, ci = tg.build_and_run(cm.files, target, codes, work / f"c_{target}", codes=True)
    l_out, li = build_and_run(emit_llvm(module, target), codes, work / f"llvm_{target}", codes=True)
    same = all(np.array_equal(c_out[k], l_out[k]) for k in c_out)
    return ci["instructions"], li["instructions"], same


def main(argv=None) -> int:
    import onnx

    import qcc
    from bench_c import micro_models
    from qcc.backends.c import targets as tg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="cortex-m4,rv32imac")
    ap.add_argument("--models", default="lenet_digits,resnet_digits,mbv3_digits")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="bench-llvm-") as tmp:
        work = pathlib.Path(tmp)
        jobs = []
        for name, (m, macs, shape) in micro_models().items():
            p = work / f"micro_{name}.onnx"
            onnx.save(m, p)
            xs = rng.normal(0, 1, size=(8, *shape[1:])).astype(np.float32)
            art = qcc.compile(p, str(work / f"micro_{name}"), calib={"input": xs}, bits=(8,), force=True, emit="none")
            jobs.append((name, art.module, {"input": xs[:1]}, macs))
        with np.load(ROOT / "models" / "digits_calib.npz") as z:
            calib = z["input"]
        for model in filter(None, args.models.split(",")):
            art = qcc.compile(ROOT / "models" / f"{model}.onnx", str(work / model), calib={"input": calib},
                              bits=(8,), force=True, emit="none")
            jobs.append((model, art.module, {"input": calib[:1]}, art.report["totals"]["macs"]))
        for t in args.targets.split(","):
            why = tg.toolchain_missing(t)
            if why:
                print(f"{t}: skipped ({why})")
                continue
            print(f"\n{t}: instructions per inference (qcc_model_run_q), C backend vs LLVM backend")
            print(f"  {'layer/model':16} {'MACs':>10} {'C':>12} {'LLVM':>12} {'C/MAC':>7} {'LLVM/MAC':>8} "
                  f"{'LLVM/C':>7} same")
            for name, module, xs, macs in jobs:
                c, ll, same = measure(module, xs, t, work / name)
                print(f"  {name:16} {macs:10,} {c:12,} {ll:12,} {c / macs:7.2f} {ll / macs:8.2f} {ll / c:7.2f} "
                      f"{'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
