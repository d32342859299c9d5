"""The `qcc` command line: a thin layer over the library API.

    qcc interpret MODEL.onnx|MODEL.mlir --inputs IN.npz --output OUT.npz [--input-shape NAME=D0,...]

Every user-facing failure prints one line `qcc: error: ...` on stderr and exits
with status 2; nothing is left half-written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from qcc.errors import QccError, internal_error


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2, like every other qcc error
        raise QccError(message if self.prog == "qcc" else f"{self.prog}: {message}")


def _interpret_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="qcc interpret", description="Run the numpy reference interpreter.")
    p.add_argument("model", help="an .onnx model or a model.mlir written by qcc")
    p.add_argument("--inputs", required=True, help="npz with one array per graph input (first axis = samples)")
    p.add_argument("--output", required=True, help="npz to write, one float32 array per graph output")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="bind the dynamic dimensions of an input (repeatable)")
    p.add_argument("--chunk", type=int, default=64, help="samples per interpreter pass (default 64)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def load_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise QccError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:
        raise QccError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None


def save_npz_atomic(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Writes next to the target and renames, so a failure never leaves a partial file."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise QccError(f"{path}: directory {d} does not exist")
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal."""

    def __init__(self, label: str, quiet: bool = False):
        self.label = label
        self.enabled = not quiet and sys.stderr.isatty()
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({rate:.0f}/s)")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def cmd_interpret(argv: Sequence[str]) -> int:
    from qcc.importer import import_model, parse_input_shapes
    from qcc.interpreter import io_names, main_func, run_samples

    args = _interpret_parser().parse_args(argv)
    if args.chunk <= 0:
        raise QccError("--chunk must be positive")
    shapes = parse_input_shapes(args.input_shape)
    if args.model.endswith(".mlir"):
        from qcc.ir import parse_module_file

        if shapes:
            raise QccError("--input-shape applies to .onnx models; a .mlir module has static shapes")
        module = parse_module_file(args.model)
    else:
        module = import_model(args.model, shapes)
    inputs = load_npz(args.inputs)
    in_names, _ = io_names(main_func(module))
    missing = [n for n in in_names if n not in inputs]
    if missing:
        raise QccError(f"{args.inputs}: no array for graph input(s) {', '.join(missing)} "
                       f"(the file holds: {', '.join(sorted(inputs)) or 'nothing'})")
    extra = sorted(set(inputs) - set(in_names))
    if extra and not args.quiet:
        print(f"qcc: note: ignoring arrays not named after a graph input: {', '.join(extra)}", file=sys.stderr)
    results = run_samples(module, {k: v for k, v in inputs.items() if k in in_names},
                          chunk=args.chunk, progress=Progress("interpret", args.quiet))
    save_npz_atomic(args.output, {k: np.asarray(v, dtype=np.float32) for k, v in results.items()})
    return 0


def cmd_run(argv: Sequence[str]) -> int:
    from qcc.driver import run_out_dir_info

    p = _Parser(prog="qcc run", description="Build OUT/'s generated code and run it.")
    p.add_argument("out", metavar="OUT/", help="a directory written by qcc")
    p.add_argument("--inputs", required=True, help="npz with one array per graph input (first axis = samples)")
    p.add_argument("--output", required=True, help="npz to write, one float32 array per graph output")
    p.add_argument("--on", default="host", choices=("host", "qemu"),
                   help="host (default): build for this machine; qemu: build for OUT/'s --target, run under qemu")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    args = p.parse_args(argv)
    if not os.path.isdir(args.out):
        raise QccError(f"{args.out}: no such directory")
    results, info = run_out_dir_info(args.out, load_npz(args.inputs), on=args.on)
    save_npz_atomic(args.output, {k: np.asarray(v, dtype=np.float32) for k, v in results.items()})
    if not args.quiet and args.on == "qemu":
        n = len(next(iter(results.values()), ()))
        count = f": {info['instructions']:,} instructions per inference" if info.get("instructions") else ""
        print(f"qcc: ran {n} samples on {info['target']} under qemu{count}", file=sys.stderr)
    return 0


def _compile_parser() -> argparse.ArgumentParser:
    from qcc.driver import TARGETS

    p = _Parser(prog="qcc", description="Compile an ONNX model: calibrate, choose bit widths, quantize, report.")
    p.add_argument("model", help="the .onnx model")
    p.add_argument("-o", "--out", required=True, metavar="OUT/", help="output directory")
    p.add_argument("--target", default="host", choices=TARGETS)
    p.add_argument("--emit", default="c", choices=("c", "llvm", "obj", "none"),
                   help="c (default): model.c/model.h/Makefile; none: only model.mlir and the reports")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="bind the dynamic dimensions of an input (repeatable)")
    p.add_argument("--calib", metavar="FILE.npz", help="calibration data, one array per input, first axis samples")
    p.add_argument("--calib-method", default="minmax", choices=("minmax", "percentile", "mse", "entropy"))
    p.add_argument("--bits", default="4,8", help="candidate bit widths, e.g. 8 or 4,8 or 2,4,8,16 (default 4,8)")
    p.add_argument("--sqnr-min", type=float, default=0.0, metavar="DB", help="minimum local SQNR per op")
    p.add_argument("--size-budget", type=float, default=0.0, metavar="KB", help="weight-size budget in KiB")
    p.add_argument("--bitops-budget", type=float, default=0.0, metavar="N", help="BitOPs budget")
    p.add_argument("--strategy", default="greedy", choices=("greedy", "uhlich"), help="bit-width assignment")
    p.add_argument("--patch", default="none", help="none, auto or NxN: run the first stage patch by patch (the split "
                   "and, for auto, the grid chosen to minimise peak SRAM)")
    p.add_argument("--patch-max-overhead", type=float, default=0.2, metavar="F",
                   help="--patch auto: recomputed MACs allowed, as a fraction of the model's MACs (default 0.2)")
    p.add_argument("--float", action="store_true", help="no quantization: a float32 build")
    p.add_argument("--force", action="store_true", help="write into a non-empty OUT/ that qcc did not create")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def cmd_compile(argv: Sequence[str]) -> int:
    from qcc.driver import Options, compile_model
    from qcc.importer import parse_input_shapes
    from qcc.passes.calibrate import parse_bits

    args = _compile_parser().parse_args(argv)
    for name, v in (("--sqnr-min", args.sqnr_min), ("--size-budget", args.size_budget),
                    ("--bitops-budget", args.bitops_budget)):
        if v < 0 or v != v:
            raise QccError(f"{name} must be a non-negative number, got {v}")
    if args.patch != "none":
        from qcc.receptive_field import parse_grid

        parse_grid(args.patch)
    if not args.patch_max_overhead >= 0:
        raise QccError(f"--patch-max-overhead must be a non-negative fraction, got {args.patch_max_overhead}")
    opts = Options(target=args.target, emit=args.emit, calib=args.calib, calib_method=args.calib_method,
                   bits=parse_bits(args.bits), sqnr_min=args.sqnr_min, size_budget_kb=args.size_budget,
                   bitops_budget=args.bitops_budget, strategy=args.strategy, float_only=args.float,
                   input_shapes=parse_input_shapes(args.input_shape), force=args.force, quiet=args.quiet,
                   patch=args.patch, patch_max_overhead=args.patch_max_overhead)
    art = compile_model(args.model, args.out, opts)
    if not args.quiet:
        t = art.report["totals"]
        print(f"qcc: wrote {args.out}/model.mlir, report.json, report.html: weights {t['weight_bytes']:,} bytes "
              f"(float {t['float_weight_bytes']:,}), {t['macs']:,} MACs, peak SRAM ~{t['sram_peak_bytes']:,} bytes",
              file=sys.stderr)
        if "code" in art.report:
            print(f"qcc: wrote model.c, model.h, Makefile: static arena {art.report['code']['arena_bytes']:,} bytes "
                  f"(naive {art.report['code']['naive_activation_bytes']:,}); run with `qcc run {args.out} "
                  "--inputs IN.npz --output OUT.npz`", file=sys.stderr)
        for w in art.report["warnings"][:5]:
            print(f"qcc: warning: {w}", file=sys.stderr)
    return 0


_USAGE = """usage: qcc MODEL.onnx -o OUT/ [--calib CALIB.npz] [--bits 4,8] [--sqnr-min DB] [--size-budget KB]
                         [--bitops-budget N] [--calib-method M] [--strategy S] [--patch none|auto|NxN]
                         [--float] [--force]
       qcc run OUT/ --inputs IN.npz --output RES.npz [--on host|qemu]
       qcc interpret MODEL.onnx|OUT/model.mlir --inputs IN.npz --output OUT.npz [--input-shape NAME=D0,...]
       qcc --version

  (compile)   import, calibrate, measure sensitivity, assign bit widths, quantize; writes OUT/model.mlir,
              OUT/report.json and OUT/report.html (qcc MODEL -h for every option)
  run         build OUT/'s generated C for the host (or its --target under qemu) and run it
  interpret   run the numpy reference interpreter (float for .onnx, bit-exact integer for quantized .mlir)
"""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from qcc.interpreter import keep_freed_memory

    keep_freed_memory()
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(_USAGE)
            return 0 if argv else 2
        if argv[0] == "--version":
            from qcc import __version__

            print(f"qcc {__version__}")
            return 0
        if argv[0] == "interpret":
            return cmd_interpret(argv[1:])
        if argv[0] == "run":
            return cmd_run(argv[1:])
        if argv[0].startswith("-") or argv[0].endswith(".onnx") or os.path.exists(argv[0]) or "-o" in argv \
                or "--out" in argv:
            return cmd_compile(argv)
        raise QccError(f"unknown command '{argv[0]}' (commands: interpret; or compile with qcc MODEL.onnx -o OUT/)")
    except QccError as e:
        print(f"qcc: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qcc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in qcc, not in the input
        return internal_error("qcc", e)


if __name__ == "__main__":
    sys.exit(main())
