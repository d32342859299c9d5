"""Compile-time scaling benchmark: import and interpret time vs graph size.

    python tools/bench_import.py [--sizes 100,1000,10000] [--json out.json]

Builds chains of N elementwise/conv ops (a 1x8x8x8 activation through
Conv 1x1 -> Relu -> Add -> Mul, repeated) and times qcc's import (ONNX file ->
verified IR) and one interpreter run, next to onnxruntime's session creation
and run on the same file, in the same process. Also times the import of the
1,746-node light_densenet121 bundled with onnx. Time per op stays flat when
both scale linearly.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def chain_model(n_ops: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    c = 8
    nodes, inits = [], []
    w = numpy_helper.from_array((rng.standard_normal((c, c, 1, 1)) / np.sqrt(c)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal((c, 1, 1)).astype(np.float32) * 0.1, "b")
    s = numpy_helper.from_array(np.full((c, 1, 1), 0.9, np.float32), "s")
    inits += [w, b, s]
    prev = "x"
    kinds = ["Conv", "Relu", "Add", "Mul"]
    for i in range(n_ops):
        k = kinds[i % 4]
        out = f"t{i}" if i < n_ops - 1 else "y"
        ins = {"Conv": [prev, "w"], "Relu": [prev], "Add": [prev, "b"], "Mul": [prev, "s"]}[k]
        nodes.append(helper.make_node(k, ins, [out], name=f"n{i}"))
        prev = out
    g = helper.make_graph(nodes, f"chain{n_ops}",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 8, 8])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    from qcc.interpreter import keep_freed_memory

    keep_freed_memory()  # as the qcc command does

    import onnxruntime as ort

    import qcc
    from qcc.interpreter import run_main

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    results = {"chains": [], "densenet121": {}}
    print(f"{'ops':>6} {'import s':>9} {'us/op':>7} {'interp s':>9} {'us/op':>7} "
          f"{'ort load s':>10} {'ort run s':>9} {'max rel err':>11}")
    with tempfile.TemporaryDirectory() as d:
        for n in (int(x) for x in args.sizes.split(",")):
            path = os.path.join(d, f"chain{n}.onnx")
            onnx.save(chain_model(n), path)
            x = np.random.default_rng(1).standard_normal((1, 8, 8, 8)).astype(np.float32)
            t_imp = best(lambda: qcc.import_model(path), args.repeat)
            module = qcc.import_model(path)
            t_run = best(lambda: run_main(module, [x]), args.repeat)
            t_load = best(lambda: ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]), args.repeat)
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            t_ort = best(lambda: sess.run(None, {"x": x}), args.repeat)
            got, ref = run_main(module, [x])[0], sess.run(None, {"x": x})[0]
            err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
            row = dict(ops=n, import_s=t_imp, interpret_s=t_run, ort_load_s=t_load, ort_run_s=t_ort, rel_err=err)
            results["chains"].append(row)
            print(f"{n:>6} {t_imp:>9.3f} {t_imp / n * 1e6:>7.1f} {t_run:>9.3f} {t_run / n * 1e6:>7.1f} "
                  f"{t_load:>10.3f} {t_ort:>9.4f} {err:>11.2e}")
    chains = results["chains"]
    if len(chains) >= 2:
        a, b = chains[0], chains[-1]
        k = b["ops"] / a["ops"]
        print(f"growth {a['ops']} -> {b['ops']} ops (x{k:g}): import x{b['import_s'] / a['import_s']:.1f}, "
              f"interpret x{b['interpret_s'] / a['interpret_s']:.1f} (linear = x{k:g})")

    dn = pathlib.Path(onnx.__file__).parent / "backend/test/data/light/light_densenet121.onnx"
    n_nodes = len(onnx.load(dn).graph.node)
    t = best(lambda: qcc.import_model(dn), args.repeat)
    t_load = best(lambda: ort.InferenceSession(str(dn), so, providers=["CPUExecutionProvider"]), args.repeat)
    results["densenet121"] = dict(nodes=n_nodes, import_s=t, ort_load_s=t_load)
    print(f"light_densenet121: {n_nodes} nodes, qcc import {t:.2f} s (target <= 5 s), "
          f"onnxruntime session creation {t_load:.2f} s")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
