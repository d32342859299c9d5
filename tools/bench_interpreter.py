#!/usr/bin/env python3
"""Benchmark qcc's float reference interpreter against onnxruntime.

Both run single-threaded on the same model and the same inputs:

* the project's digits models `models/{mbv3,resnet,lenet}_digits.onnx` on all
  samples of `models/digits_test.npz` (key `input`): qcc via `run_samples`,
  onnxruntime as one batched `run` over the same array (the batch dimension
  is dynamic);
* onnx's bundled `onnx/backend/test/data/light/light_*.onnx` models (weights
  made by ConstantOfShape) on one random normal input of batch 1.

Each side gets one untimed warm-up run, then the two alternate N times (so
both see the same machine load) and the best wall-clock time of each is
reported.  Import (ONNX -> IR) and session creation are not timed.

Error column: max |qcc - ort| / max |ort| over every output (elementwise
relative error is meaningless next to zeros, so the error is relative to the
output's magnitude); `nan` marks outputs that are not finite on both sides
in the same places.

Usage:
    python tools/bench_interpreter.py [--repeat N] [--only SUBSTR ...]
                                      [--no-light | --light-only] [--json FILE]
"""

from __future__ import annotations

import os

# Single-threaded BLAS for numpy: must be set before numpy is imported.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
for _v in _THREAD_VARS:
    os.environ[_v] = "1"

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ["mbv3_digits", "resnet_digits", "lenet_digits"]


def _blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return "BLAS threads: env vars set to 1 (threadpoolctl not installed)"
    threadpool_limits(1)  # belt and braces: also caps pools already loaded
    libs = [f"{i.get('internal_api')}={i.get('num_threads')}" for i in threadpool_info()]
    return "BLAS threads: " + (", ".join(libs) or "no BLAS pool found")


def _best_pair(fa, fb, repeat: int) -> tuple[float, object, float, object]:
    """Best wall times of `fa` and `fb` after one warm-up each, alternating
    runs so that both sides see the same machine load."""
    out_a, out_b = fa(), fb()  # warm-up
    best_a = best_b = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out_a = fa()
        t1 = time.perf_counter()
        out_b = fb()
        t2 = time.perf_counter()
        best_a, best_b = min(best_a, t1 - t0), min(best_b, t2 - t1)
    return best_a, out_a, best_b, out_b


def _rel_err(qs: list[np.ndarray], os_: list[np.ndarray]) -> float:
    worst = 0.0
    for q, o in zip(qs, os_):
        q = np.asarray(q, dtype=np.float64).reshape(o.shape)
        o = np.asarray(o, dtype=np.float64)
        fq, fo = np.isfinite(q), np.isfinite(o)
        if not np.array_equal(fq, fo) or not np.array_equal(q[~fq], o[~fo]):
            return float("nan")
        if not fo.any():
            continue
        scale = np.max(np.abs(o[fo]))
        diff = np.max(np.abs(q[fq] - o[fo]))
        worst = max(worst, float(diff / scale) if scale > 0 else float(diff))
    return worst


def _cases(args) -> list[tuple[str, str, str]]:
    """(name, path, kind) with kind 'digits' or 'light'."""
    cases = []
    if not args.light_only:
        cases += [(m, str(ROOT / "models" / f"{m}.onnx"), "digits") for m in DIGITS]
    if not args.no_light:
        import onnx

        light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
        for p in sorted(glob.glob(str(light / "light_*.onnx"))):
            cases.append((Path(p).stem, p, "light"))
    if args.only:
        cases = [c for c in cases if any(s in c[0] for s in args.only)]
    return cases


def _graph_inputs(model) -> list:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def bench_one(name: str, path: str, kind: str, repeat: int, chunk: int | None) -> dict:
    import onnx
    import onnxruntime as ort

    import qcc
    from qcc.interpreter import io_names, keep_freed_memory, main_func, run_samples

    keep_freed_memory()  # as the qcc command does

    model = onnx.load(path)
    gin = _graph_inputs(model)
    if kind == "digits":
        with np.load(ROOT / "models" / "digits_test.npz") as z:
            x = z["input"].astype(np.float32)
        feeds = {gin[0].name: x}
    else:
        rng = np.random.default_rng(0)
        feeds = {}
        for i in gin:
            shape = [d.dim_value or 1 for d in i.type.tensor_type.shape.dim]
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)

    t0 = time.perf_counter()
    module = qcc.import_model(path)
    t_import = time.perf_counter() - t0
    in_names, out_names = io_names(main_func(module))
    kw = {} if chunk is None else {"chunk": chunk}
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # no warnings about unused initializers of the light models
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    ort_names = [o.name for o in sess.get_outputs()]
    t_q, q_out, t_o, o_out = _best_pair(
        lambda: run_samples(module, {n: feeds[n] for n in in_names}, **kw),
        lambda: sess.run(None, feeds), repeat)

    err = _rel_err([q_out[n] for n in out_names], [o_out[ort_names.index(n)] for n in out_names])
    return {
        "model": name, "kind": kind, "samples": int(next(iter(feeds.values())).shape[0]),
        "qcc_ms": t_q * 1e3, "ort_ms": t_o * 1e3, "ratio": t_q / t_o,
        "max_rel_err": err, "pre_softmax_rel_err": _pre_softmax_err(model, feeds),
        "import_ms": t_import * 1e3,
    }


def _pre_softmax_err(model, feeds) -> float | None:
    """Error on the logits when a graph output is a Softmax (untimed extra run).

    The light_* models have constant 0.02 weights, so their logits reach ~1e9
    and differ only in the last float32 bits; a softmax of them turns that
    summation-order noise into O(1) differences. The logits show whether the
    arithmetic itself is float32-faithful.
    """
    import onnx
    import onnxruntime as ort

    import qcc
    from qcc.interpreter import io_names, main_func, run_samples

    producers = {o: n for n in model.graph.node for o in n.output}
    logits = [producers[o.name].input[0] for o in model.graph.output
              if o.name in producers and producers[o.name].op_type == "Softmax"]
    if not logits:
        return None
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in logits)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    o = sess.run(None, feeds)
    try:
        module = qcc.import_model(m)
    except Exception:  # logits without a declared type: let qcc infer from the full graph
        return None
    in_names, out_names = io_names(main_func(module))
    q = run_samples(module, {n: feeds[n] for n in in_names})
    return _rel_err([q[n] for n in out_names], o)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=7, help="timed runs per side, best is kept (default 7)")
    p.add_argument("--only", nargs="*", default=[], help="run models whose name contains any of these")
    p.add_argument("--no-light", action="store_true", help="skip onnx's light_* models")
    p.add_argument("--light-only", action="store_true", help="only onnx's light_* models")
    p.add_argument("--chunk", type=int, default=None, help="run_samples chunk (default: its own)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)

    threads = _blas_threads()
    import onnxruntime as ort

    print(f"# single thread: {', '.join(v + '=1' for v in _THREAD_VARS[:2])} (+MKL/BLIS/...); "
          f"{threads}; onnxruntime intra_op=inter_op=1, sequential")
    print(f"# numpy {np.__version__}, onnxruntime {ort.__version__}, python {platform.python_version()}, "
          f"{platform.machine()}; best of {args.repeat} alternating runs after 1 warm-up; "
          f"err = max|qcc-ort| / max|ort| over the outputs (pre-softmax: same on the Softmax input)")
    hdr = (f"{'model':<22} {'n':>4} {'qcc ms':>10} {'ort ms':>10} {'ratio':>7} {'max rel err':>12}"
           f" {'pre-softmax':>12}")
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for name, path, kind in _cases(args):
        try:
            r = bench_one(name, path, kind, args.repeat, args.chunk)
        except Exception as e:  # keep going: one model failing should not hide the rest
            r = {"model": name, "kind": kind, "error": f"{type(e).__name__}: {e}"}
            print(f"{name:<22} error: {r['error']}", flush=True)
        else:
            pre = r["pre_softmax_rel_err"]
            print(f"{name:<22} {r['samples']:>4} {r['qcc_ms']:>10.1f} {r['ort_ms']:>10.1f} "
                  f"{r['ratio']:>6.2f}x {r['max_rel_err']:>12.2e} "
                  f"{'-' if pre is None else format(pre, '.2e'):>12}", flush=True)
        rows.append(r)
    ok = [r for r in rows if "ratio" in r]
    if ok:
        geo = float(np.exp(np.mean(np.log([r["ratio"] for r in ok]))))
        print("-" * len(hdr))
        print(f"{'geomean ratio':<22} {'':>4} {'':>10} {'':>10} {geo:>6.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": threads, "repeat": args.repeat, "numpy": np.__version__,
                       "onnxruntime": ort.__version__, "results": rows}, f, indent=2)
    return 0 if len(ok) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
