"""The compile driver: ONNX model -> OUT/ (model.mlir, report.json, report.html).

Owns the pipeline order and OUT/'s life cycle. Every stage is a registered pass
that leaves its state in the IR (ranges, metrics, widths), so `qcc-opt` can
replay or resume any part:

    fold-constants, fold-batchnorm, recognize-activations, fold-constant-mul-div, calibrate, measure-sensitivity,
    assign-bit-widths, lower-to-quant, fuse-activation, cancel-quantize-pairs, fuse-residual-add

OUT/ is written into a fresh sibling directory and renamed into place only when
everything succeeded: a failure never leaves a half-written OUT/.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation

from qcc.errors import QccError
from qcc.interpreter import single_thread_blas

MARKER = ".qcc-output"
TARGETS = ("host", "cortex-m4", "cortex-m7", "cortex-a53", "rv32imac", "rv64gc")


@dataclass
class Options:
    target: str = "host"
    emit: str = "c"
    calib: Mapping[str, np.ndarray] | str | None = None
    calib_method: str = "minmax"
    bits: tuple[int, ...] = (4, 8)
    sqnr_min: float = 0.0
    size_budget_kb: float = 0.0
    bitops_budget: float = 0.0
    strategy: str = "greedy"
    float_only: bool = False
    input_shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)
    force: bool = False
    quiet: bool = False
    patch: str = "none"  # none, auto or NxN: patch-based inference of the first stage (tile-patches)
    patch_max_overhead: float = 0.2  # recomputed MACs allowed to --patch auto, as a fraction of all MACs


class Stage:
    """Prints `qcc: <stage>... done in X s` on stderr (unless quiet)."""

    def __init__(self, quiet: bool, timings: dict[str, float]):
        self.quiet = quiet
        self.timings = timings

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        if not self.quiet:
            print(f"qcc: {name}...", end="", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            out = fn()
        except BaseException:
            if not self.quiet:  # end the progress line; the error follows on its own line
                print(" failed", file=sys.stderr, flush=True)
            raise
        dt = time.perf_counter() - t
        self.timings[name] = dt
        if not self.quiet:
            print(f" {dt:.2f} s", file=sys.stderr, flush=True)
        return out


def _calibration_inputs(module: ModuleOp, calib) -> tuple[dict[str, np.ndarray], str]:
    from qcc.interpreter import io_names, main_func
    from qcc.passes.calibrate import synthetic_inputs

    if calib is None:
        return synthetic_inputs(module), "synthetic"
    if isinstance(calib, str | os.PathLike):
        from qcc.cli import load_npz

        data, source = load_npz(os.fspath(calib)), os.fspath(calib)
    else:
        data, source = {k: np.asarray(v) for k, v in calib.items()}, "in-memory arrays"
    names, _ = io_names(main_func(module))
    missing = [n for n in names if n not in data]
    if missing:
        raise QccError(f"--calib {source}: no array for graph input(s) {', '.join(missing)} "
                       f"(the file holds: {', '.join(sorted(data)) or 'nothing'})")
    return {n: data[n] for n in names}, source


@single_thread_blas
def build(model, opts: Options) -> tuple[ModuleOp, dict]:
    """Runs the pipeline; returns the final module and the report dict."""
    from qcc.importer import import_model
    from qcc.passes.assign_bit_widths import assign
    from qcc.calibration_ranges import TensorStats
    from qcc.interpreter import main_func
    from qcc.passes.calibrate import activation_widths, annotate, record_float
    from qcc.passes.cancel_quantize_pairs import CancelQuantizePairsPass
    from qcc.passes.fold_batchnorm import FoldBatchNormPass
    from qcc.passes.fold_constant_mul_div import FoldConstantMulDivPass
    from qcc.passes.fold_constants import FoldConstantsPass
    from qcc.passes.fuse_activation import FuseActivationPass
    from qcc.passes.fuse_residual_add import FuseResidualAddPass
    from qcc.passes.lower_to_quant import LowerToQuantPass
    from qcc.passes.recognize_activations import RecognizeActivationsPass
    from qcc.passes.measure_sensitivity import SENSITIVITY, measure, metrics_attr
    from qcc.report import build_report

    if opts.target not in TARGETS:
        raise QccError(f"--target '{opts.target}' is not one of {', '.join(TARGETS)}")
    if opts.calib_method not in ("minmax", "percentile", "mse", "entropy"):
        raise QccError(f"--calib-method '{opts.calib_method}' is not one of minmax, percentile, mse, entropy")
    if isinstance(model, str | os.PathLike) and not os.path.isfile(model):
        raise QccError(f"{os.fspath(model)}: no such file")
    timings: dict[str, float] = {}
    stage = Stage(opts.quiet, timings)
    ctx = Context()
    module = stage("import", lambda: import_model(model, opts.input_shapes))
    stage("fold-constants", lambda: FoldConstantsPass().apply(ctx, module))
    stage("fold-batchnorm", lambda: FoldBatchNormPass().apply(ctx, module))
    stage("recognize-activations", lambda: RecognizeActivationsPass().apply(ctx, module))
    stage("fold-constant-mul-div", lambda: FoldConstantMulDivPass().apply(ctx, module))
    float_module = module.clone()
    info: dict[str, Any] = {"timings": timings, "options": _options_json(opts)}
    if opts.float_only:
        info["calibration"] = None
        info["patch"] = _tile_patches(module, opts, stage)
        return module, build_report(module, float_module, None, info)

    inputs, source = _calibration_inputs(module, opts.calib)
    n = min(len(v) for v in inputs.values())
    if n == 0:
        raise QccError(f"calibration data {source}: no samples")
    progress = _progress(opts.quiet)
    widths = activation_widths(opts.bits)
    record = stage("calibrate", lambda: record_float(module, inputs, progress=progress("calibrate"),
                                                      method=opts.calib_method))
    fn = main_func(module)
    annotate(module, {k: v for k, v in record.stats.items() if isinstance(k, Operation)},
             [record.stats.get(a) or TensorStats() for a in fn.args], opts.calib_method, widths, n, source)
    info["calibration"] = {"source": source, "samples": n, "method": opts.calib_method,
                           "synthetic": source == "synthetic"}
    metrics = stage("measure-sensitivity",
                    lambda: measure(module, inputs, opts.bits, progress=progress("sensitivity"), record=record))
    for op, m in metrics.items():
        op.attributes[SENSITIVITY] = metrics_attr(m)
    stage("assign-bit-widths", lambda: assign(module, opts.bits, sqnr_min=opts.sqnr_min,
                                              size_budget_kb=opts.size_budget_kb,
                                              bitops_budget=opts.bitops_budget, strategy=opts.strategy))
    annotated = module.clone()
    stage("lower-to-quant", lambda: LowerToQuantPass().apply(ctx, module))
    stage("fuse-activation", lambda: FuseActivationPass().apply(ctx, module))
    stage("cancel-quantize-pairs", lambda: CancelQuantizePairsPass().apply(ctx, module))
    stage("fuse-residual-add", lambda: FuseResidualAddPass().apply(ctx, module))
    module.verify()
    info["patch"] = _tile_patches(module, opts, stage)
    return module, build_report(module, float_module, annotated, info)


def _tile_patches(module: ModuleOp, opts: Options, stage: Stage) -> dict | None:
    if opts.patch == "none":
        return None
    from qcc.passes.tile_patches import tile

    return stage("tile-patches", lambda: tile(module, opts.patch, opts.patch_max_overhead))


def _options_json(opts: Options) -> dict:
    return {"target": opts.target, "emit": opts.emit, "bits": list(opts.bits), "sqnr_min": opts.sqnr_min,
            "size_budget_kb": opts.size_budget_kb, "bitops_budget": opts.bitops_budget,
            "strategy": opts.strategy, "float": opts.float_only, "calib_method": opts.calib_method,
            "patch": opts.patch, "patch_max_overhead": opts.patch_max_overhead}


def _progress(quiet: bool):
    def make(label: str):
        if quiet or not sys.stderr.isatty():
            return None
        from qcc.cli import Progress

        return Progress(f"  {label}")

    return make


def prepare_out_dir(out_dir: str, force: bool) -> None:
    """Refuses a non-empty OUT/ that qcc did not create, unless --force."""
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise QccError(f"-o {out_dir}: exists and is not a directory")
        entries = os.listdir(out_dir)
        if entries and MARKER not in entries and not force:
            raise QccError(f"-o {out_dir}: directory is not empty and was not written by qcc "
                           "(use --force to write into it)")
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise QccError(f"-o {out_dir}: parent directory {parent} does not exist")


def write_out_dir(out_dir: str, files: Mapping[str, str | bytes]) -> None:
    """Writes all files into a temporary sibling, then swaps it into place."""
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    tmp = tempfile.mkdtemp(prefix=".qcc-tmp-", dir=parent)
    try:
        for name, data in {**files, MARKER: "written by qcc\n"}.items():
            mode = "wb" if isinstance(data, bytes) else "w"
            with open(os.path.join(tmp, name), mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
                f.write(data)
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=".qcc-old-", dir=parent)
            os.rmdir(old)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclass
class Artifact:
    """What `qcc.compile` returns: the output directory, the final IR and the report."""

    out_dir: str
    module: ModuleOp
    report: dict

    def run(self, inputs: Mapping[str, np.ndarray], *, backend: str = "auto",
            on: str = "host") -> dict[str, np.ndarray]:
        """Runs the compiled model: the generated C ("c"), or the bit-exact interpreter
        of model.mlir ("interpreter"); "auto" takes the C build when there is one and a
        host compiler, else the interpreter (same results). The C runs on the host
        (`on="host"`, whatever the target: the C is portable) or, with `on="qemu"`,
        built for the artifact's target and run under qemu."""
        from qcc.backends.c.run import compiler

        if on not in ("host", "qemu"):
            raise QccError(f"on='{on}' is not one of host, qemu")
        has_c = os.path.isfile(os.path.join(self.out_dir, "model.c"))
        if backend == "c" or on == "qemu" or (backend == "auto" and has_c and compiler() is not None):
            if backend == "interpreter":
                raise QccError("on='qemu' runs the generated C, not the interpreter")
            return run_out_dir(self.out_dir, inputs, on=on)
        if backend not in ("auto", "interpreter"):
            raise QccError(f"backend '{backend}' is not one of auto, c, interpreter")
        from qcc.interpreter import run_samples

        return {k: np.asarray(v, np.float32) for k, v in run_samples(self.module, inputs).items()}


def emit_code(module: ModuleOp, opts: Options, report: dict) -> dict[str, str]:
    """C sources for the module, quantized or --float (portable C99; a Makefile for --target). A model
    the C backend cannot express yet still compiles to model.mlir: the report says why."""
    if opts.emit == "none":
        return {}
    if opts.emit in ("llvm", "obj"):
        return emit_llvm_code(module, opts, report)
    if opts.emit != "c":
        report["warnings"].append(f"--emit {opts.emit} is not available yet: no code was generated")
        return {}
    from qcc.backends.c.emit import emit_model

    try:
        cm = emit_model(module, target=opts.target)
        if cm.patches and opts.patch == "auto":
            # the split was chosen on the tensors alone; kernel scratch can outweigh the tiles'
            # savings: then the C runs layer by layer (a fixed NxN grid is always honoured)
            from qcc.passes.materialize_patches import unmarked

            plain = emit_model(unmarked(module), target=opts.target)
            if plain.sram_peak_bytes_excl_input <= cm.sram_peak_bytes_excl_input:
                report["warnings"].append(
                    f"--patch auto: the patch-based C would need {cm.sram_peak_bytes_excl_input} bytes of SRAM "
                    f"(without the input), layer by layer {plain.sram_peak_bytes_excl_input}: "
                    "the C runs layer by layer")
                cm = plain
    except QccError as e:
        report["warnings"].append(f"no C code generated: {e}")
        return {}
    _code_memory(report, cm)
    report["code"] = {"language": "c99", "files": sorted(cm.files), "arena_bytes": cm.arena_bytes,
                      "naive_activation_bytes": cm.naive_bytes, "target": opts.target,
                      "integer_entry_point": cm.has_run_q, "float": opts.float_only, "patches": cm.patches}
    if report.get("patch") and not cm.patches:
        report["warnings"].append("patch-based execution is modelled by the interpreters (qcc interpret); the "
                                  "generated C runs every layer whole (its arena is code.arena_bytes)")
    if opts.target != "host":
        from qcc.backends.c.targets import object_sizes, toolchain_missing

        why = toolchain_missing(opts.target, run=False)
        if why:
            report["warnings"].append(f"{why}: the Makefile for {opts.target} cannot build here; flash_bytes "
                                      "is the estimate of weights and tables without code")
        else:
            # Flash as the target's compiler lays it out: code, weights and tables (text) + data.
            with tempfile.TemporaryDirectory(prefix="qcc-size-") as work:
                sizes = object_sizes(cm.files, opts.target, work)
            totals = report["totals"]
            totals["flash_estimate_bytes"] = totals.get("flash_bytes")
            totals["flash_bytes"] = sizes["text"] + sizes["data"]
            report["code"]["object_bytes"] = sizes
    return dict(cm.files)


def _code_memory(report: dict, code) -> None:
    """The generated program's own memory figures replace the IR-level estimate: its
    arena includes kernel scratch and in-place sharing, and with --patch the stage's
    tiles (materialize-patches)."""
    totals = report["totals"]
    totals["arena_bytes"] = code.arena_bytes
    totals["naive_activation_bytes"] = code.naive_bytes
    totals["sram_estimate_bytes"] = totals.get("sram_peak_bytes")
    totals["sram_peak_bytes"] = code.sram_peak_bytes
    totals["sram_peak_bytes_excl_input"] = code.sram_peak_bytes_excl_input


def emit_llvm_code(module: ModuleOp, opts: Options, report: dict) -> dict[str, str | bytes]:
    """OUT/model.ll (--emit llvm) or OUT/model.o (--emit obj) for --target, with model.h."""
    if opts.float_only:
        report["warnings"].append("--float builds have no LLVM backend yet: no code was generated")
        return {}
    from qcc.backends.llvm import emit_llvm, object_code

    try:
        lm = emit_llvm(module, opts.target)
    except QccError as e:
        report["warnings"].append(f"no LLVM code generated: {e}")
        return {}
    _code_memory(report, lm)
    files: dict[str, str | bytes] = {"model.h": lm.files["model.h"]}
    if opts.emit == "llvm":
        files["model.ll"] = lm.files["model.ll"]
    else:
        files["model.o"] = object_code(lm)
    report["code"] = {"language": "llvm" if opts.emit == "llvm" else "object", "files": sorted(files),
                      "arena_bytes": lm.arena_bytes, "naive_activation_bytes": lm.naive_bytes,
                      "target": opts.target, "integer_entry_point": lm.has_run_q}
    return files


def compile_model(model, out_dir: str, opts: Options) -> Artifact:
    from qcc.ir import print_module
    from qcc.report import render_html

    prepare_out_dir(out_dir, opts.force)
    module, report = build(model, opts)
    code = emit_code(module, opts, report)
    text = print_module(module)
    files = {"model.mlir": text, **code, "report.json": json.dumps(report, indent=2, default=_json_default),
             "report.html": render_html(report)}
    write_out_dir(out_dir, files)
    return Artifact(out_dir, module, report)


def out_dir_target(out_dir: str) -> str:
    """The --target OUT/ was compiled for (report.json), "host" when it does not say."""
    try:
        with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as f:
            rep = json.load(f)
    except (OSError, ValueError):
        return "host"
    return (rep.get("code") or {}).get("target") or (rep.get("options") or {}).get("target") or "host"


def run_out_dir(out_dir: str, inputs: Mapping[str, np.ndarray], on: str = "host") -> dict[str, np.ndarray]:
    """Builds OUT/model.c and runs it over every sample (first axis): for the host with
    `on="host"`, for OUT/'s target under qemu with `on="qemu"`."""
    return run_out_dir_info(out_dir, inputs, on)[0]


def run_out_dir_info(out_dir: str, inputs: Mapping[str, np.ndarray],
                     on: str = "host") -> tuple[dict[str, np.ndarray], dict]:
    """`run_out_dir` plus the run's info (target; instructions per inference under qemu-system)."""
    from qcc.backends.c import targets
    from qcc.backends.c.run import BuildError

    if on not in ("host", "qemu"):
        raise QccError(f"--on {on}: not one of host, qemu")
    src = os.path.join(out_dir, "model.c")
    if not os.path.isfile(src) and any(os.path.isfile(os.path.join(out_dir, f)) for f in ("model.ll", "model.o")):
        from qcc.backends.llvm.run import run_out_dir as run_llvm  # --emit llvm|obj: JIT, or model.o under qemu

        return run_llvm(out_dir, inputs, on, "host" if on == "host" else out_dir_target(out_dir))
    if not os.path.isfile(src):
        raise QccError(f"{out_dir}: no model.c (see report.json's warnings for why no code was generated)")
    target = "host" if on == "host" else out_dir_target(out_dir)
    if on == "qemu" and target == "host":
        raise QccError(f"--on qemu: {out_dir} was compiled for --target host; compile with --target "
                       f"{', '.join(t for t in targets.TARGETS if t != 'host')} to run under qemu")
    why = targets.toolchain_missing(target)
    if why:
        raise QccError(why)
    files = {}
    for name in ("model.c", "model.h"):
        with open(os.path.join(out_dir, name), encoding="utf-8") as f:
            files[name] = f.read()
    with tempfile.TemporaryDirectory(prefix="qcc-run-") as work:
        try:
            exe = targets.build(files, target, work)
        except BuildError as e:
            raise QccError(f"building {src} for {target} failed: {_first_error(e)}") from None
        try:
            return targets.run(exe, target, files, inputs)
        except BuildError as e:
            raise QccError(f"running {src} on {target} failed: {_first_error(e)}") from None


def _first_error(e: Exception) -> str:
    """The line of a build/run failure that says what went wrong (the compiler's first error)."""
    lines = str(e).splitlines()
    found = [ln.strip() for ln in lines[1:] if "error" in ln.lower() or "undefined reference" in ln]
    return found[0] if found else (lines[0] if lines else "")


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")
