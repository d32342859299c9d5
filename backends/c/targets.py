"""Targets of the C backend: how to build the generated C for each one and run it.

Owns the target table (compiler, flags, emulator), the bare-metal runtime that
ships in `runtime/` (startup, linker scripts, semihosting) and the build/run
API other tools use for instruction-count benchmarks:

    toolchain_missing(target) -> str | None     # why `target` cannot be built/run here
    build(files, target, workdir, profile=False) -> Path
    run(exe, target, files, inputs, codes=False) -> (outputs, info)

`host` and the Linux-class targets (cortex-a53, rv64gc) use run.py's stdio
harness, the latter statically linked and run under qemu-user. The MCU targets
(cortex-m4, cortex-m7, rv32imac) link a semihosting harness with qcc's own
startup code and run under qemu-system with -icount shift=0, where virtual time
advances 1 ns per instruction; `info["instructions"]` is then the instruction
count of one inference, and with `profile=True` `info["layers"]` splits it per
kernel step. docs/targets.md describes the memory maps, I/O and counting.
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
import shutil
import struct
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qcc.errors import QccError

from . import run as hostrun

RUNTIME = pathlib.Path(__file__).with_name("runtime")
WARN = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
SEMIHOST = ("-semihosting-config", "enable=on,target=native")
QEMU_SYSTEM = ("-nographic", "-monitor", "none", "-serial", "none", "-icount", "shift=0", *SEMIHOST)
EMULATOR_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "host", "linux" (qemu-user) or "baremetal" (qemu-system)
    cc: str  # the compiler's command name ("" = the host's $CC or gcc)
    arch_flags: tuple[str, ...] = ()  # code generation: used for the Makefile and every build
    link_flags: tuple[str, ...] = ()
    emulator: tuple[str, ...] = ()  # qemu-user: the prefix of the command; qemu-system: `-kernel ELF` follows
    runtime: str = ""  # bare-metal startup file and linker script stem in runtime/
    libc: str = ""  # the file that must exist in the compiler's search path (C library check)
    package: str = ""  # the Debian packages that provide the toolchain

    @property
    def ar(self) -> str:
        return self.cc[:-3] + "ar" if self.cc.endswith("gcc") else "ar"


_M_LINK = ("-nostartfiles", "--specs=nosys.specs", "-Wl,--gc-sections")
TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("host", "host", ""),
    Target("cortex-m4", "baremetal", "arm-none-eabi-gcc",
           ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), _M_LINK,
           ("qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", *QEMU_SYSTEM),
           "cortex_m", "libc.a", "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"),
    Target("cortex-m7", "baremetal", "arm-none-eabi-gcc",
           ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"), _M_LINK,
           ("qemu-system-arm", "-M", "mps2-an500", "-cpu", "cortex-m7", *QEMU_SYSTEM),
           "cortex_m", "libc.a", "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"),
    Target("rv32imac", "baremetal", "riscv64-unknown-elf-gcc",
           ("-march=rv32imac", "-mabi=ilp32", "-mcmodel=medany", "--specs=picolibc.specs"),
           ("-nostartfiles", "-Wl,--gc-sections"),
           ("qemu-system-riscv32", "-M", "virt", "-bios", "none", *QEMU_SYSTEM),
           "riscv", "picolibc.specs", "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc"),
    Target("cortex-a53", "linux", "aarch64-linux-gnu-gcc", ("-mcpu=cortex-a53",), ("-static",),
           ("qemu-aarch64", "-cpu", "cortex-a53"), package="gcc-aarch64-linux-gnu qemu-user"),
    Target("rv64gc", "linux", "riscv64-linux-gnu-gcc", ("-march=rv64gc", "-mabi=lp64d"), ("-static",),
           ("qemu-riscv64", "-cpu", "rv64"), package="gcc-riscv64-linux-gnu qemu-user"),
)}


def target(name: str) -> Target:
    t = TARGETS.get(name)
    if t is None:
        raise QccError(f"target '{name}' is not one of {', '.join(TARGETS)}")
    return t


def compiler_of(t: Target) -> str | None:
    return hostrun.compiler() if t.kind == "host" else shutil.which(t.cc)


@functools.cache
def _has_file(cc: str, flags: tuple[str, ...], name: str) -> bool:
    r = subprocess.run([cc, *flags, f"-print-file-name={name}"], capture_output=True, text=True)
    return r.returncode == 0 and os.path.isabs(r.stdout.strip()) and os.path.exists(r.stdout.strip())


def toolchain_missing(name: str, *, run: bool = True) -> str | None:
    """None when `name` can be built (and, with `run`, executed) here; else why not."""
    t = target(name)
    cc = compiler_of(t)
    hint = f" (Debian: apt-get install {t.package})" if t.package else ""
    if cc is None:
        return f"--target {name}: no C compiler {t.cc or 'gcc (or $CC)'} on PATH{hint}"
    if t.libc and not _has_file(cc, tuple(f for f in t.arch_flags if f.startswith("--specs")), t.libc):
        return f"--target {name}: {t.cc} has no C library ({t.libc} not found){hint}"
    if run and t.emulator and shutil.which(t.emulator[0]) is None:
        return f"--target {name}: no emulator {t.emulator[0]} on PATH{hint}"
    return None


def makefile_vars(name: str) -> dict[str, str]:
    """CC, AR and TARGET_FLAGS (code generation flags) of the generated Makefile for `name`."""
    t = target(name)
    if t.kind == "host":
        return {"CC": "cc", "AR": "ar", "TARGET_FLAGS": ""}
    return {"CC": t.cc, "AR": t.ar, "TARGET_FLAGS": " ".join(t.arch_flags)}


# ------------------------------------------------------------------ build


def _compile(cmd: list[str], work: pathlib.Path) -> None:
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if r.returncode != 0:
        raise hostrun.BuildError(f"{' '.join(cmd)} failed in {work}:\n{r.stderr[-4000:]}")


def build(files: Mapping[str, str], name: str, workdir, *, profile: bool = False,
          cflags: Sequence[str] = WARN, extra_cflags: Sequence[str] = ()) -> pathlib.Path:
    """Writes model.c/model.h and the target's harness into `workdir`, builds the
    executable for target `name` (-Werror by default) and returns its path.
    `profile` compiles model.c's QCC_PROFILE_POINT hooks in (bare-metal only)."""
    t = target(name)
    why = toolchain_missing(name, run=False)
    if why:
        raise QccError(why)
    cc = compiler_of(t)
    work = pathlib.Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    if t.kind != "baremetal":
        if profile:
            raise QccError(f"--target {name}: per-layer profiles need a bare-metal target (instruction counter)")
        return hostrun.build_host(files, work, cflags=(*cflags, *t.arch_flags), extra_cflags=extra_cflags, cc=cc,
                                  ldflags=t.link_flags)
    for fname, text in files.items():
        (work / fname).write_text(text, encoding="utf-8")
    (work / "main.c").write_text(hostrun._harness_baremetal(hostrun.io_meta(files)), encoding="utf-8")
    for src in ("semihost.h", "semihost.c", f"{t.runtime}.c", f"{t.runtime}.ld"):
        shutil.copyfile(RUNTIME / src, work / src)
    exe = work / "model.elf"
    prof = ("-DQCC_PROFILE",) if profile else ()
    cmd = [cc, *cflags, *t.arch_flags, *prof, *extra_cflags, "-ffunction-sections", "-fdata-sections", "-I.",
           "model.c", "main.c", "semihost.c", f"{t.runtime}.c", "-T", f"{t.runtime}.ld", *t.link_flags,
           "-o", exe.name, "-lm"]
    _compile(cmd, work)
    return exe


def object_sizes(files: Mapping[str, str], name: str, workdir) -> dict[str, int]:
    """Section sizes of model.c compiled for target `name` (-O2, the generated Makefile's
    optimisation level): `text` (code and read-only data: weights, tables), `data`
    and `bss` (the static arena), in bytes, as binutils' `size` reports them (Berkeley
    format). Flash holds text + data; SRAM holds data + bss."""
    t = target(name)
    why = toolchain_missing(name, run=False)
    if why:
        raise QccError(why)
    cc = compiler_of(t)
    size = shutil.which(cc[:-3] + "size") if cc.endswith("gcc") else shutil.which("size")
    if size is None:
        raise QccError(f"--target {name}: no binutils 'size' next to {cc}")
    work = pathlib.Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    for fname in ("model.c", "model.h"):
        (work / fname).write_text(files[fname], encoding="utf-8")
    _compile([cc, "-std=c99", "-O2", *t.arch_flags, "-c", "model.c", "-o", "model.o"], work)
    r = subprocess.run([size, "-B", "model.o"], cwd=work, capture_output=True, text=True)
    rows = r.stdout.split("\n")
    if r.returncode != 0 or len(rows) < 2:
        raise QccError(f"{size} model.o failed: {r.stderr.strip()[-200:]}")
    text, data, bss = (int(v) for v in rows[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


# -------------------------------------------------------------------- run


def _steps(model_c: str) -> list[tuple[int, str]]:
    """(step, description) of each kernel step, from the comments in qcc_body."""
    return [(int(k), d.strip()) for k, d in re.findall(r"^    /\* step (\d+): (.*?) \*/$", model_c, flags=re.M)]


def run(exe, name: str, files: Mapping[str, str], inputs: Mapping[str, np.ndarray], *,
        codes: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """Runs a built executable over every sample (first axis of each input).

    Returns (outputs keyed by output name, info). For bare-metal targets info holds
    `instructions` (median over the samples, one inference) and `instructions_per_sample`;
    with a profile build also `layers`: one dict per kernel step (step, op, instructions,
    median over the samples). Other targets have no exact counter: `instructions` is None."""
    t = target(name)
    why = toolchain_missing(name)
    if why:
        raise QccError(why)
    if t.kind != "baremetal":
        outs, _ = hostrun.run_host(exe, files, inputs, codes=codes, emulator=t.emulator)
        return outs, {"instructions": None, "target": name,
                      "note": "no instruction counter under qemu-user or on the host"}
    meta = hostrun.io_meta(files)
    blob, n = hostrun.pack_inputs(meta, inputs, codes)
    exe = pathlib.Path(exe)
    work = exe.parent
    (work / "in.bin").write_bytes(struct.pack("<4I", hostrun.BAREMETAL_MAGIC, int(codes), n, 0) + blob)
    for f in ("out.bin", "counts.bin"):
        (work / f).unlink(missing_ok=True)
    cmd = [*t.emulator, "-kernel", exe.name]
    try:
        r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=EMULATOR_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise hostrun.BuildError(f"{' '.join(cmd)} did not finish in {EMULATOR_TIMEOUT_S} s in {work}") from None
    if r.returncode != 0:
        raise hostrun.BuildError(f"{' '.join(cmd)} exited with {r.returncode} in {work}:\n"
                                 f"{(r.stdout + r.stderr)[-4000:]}")
    outs = hostrun.unpack_outputs(meta, (work / "out.bin").read_bytes(), n, codes, f"{exe} on {name}")
    per, layers = _counts((work / "counts.bin").read_bytes(), n)
    info: dict = {"target": name, "instructions_per_sample": per,
                  "instructions": int(np.median(per)) if per else None}
    if layers:
        steps = dict(_steps(files["model.c"]))
        med = np.median(np.asarray(layers, np.int64), axis=0)
        info["layers"] = [{"step": k, "op": steps.get(k, ""), "instructions": int(v)} for k, v in enumerate(med)]
    return outs, info


def _counts(raw: bytes, n: int) -> tuple[list[int], list[list[int]]]:
    """Per-sample instruction counts and (profile builds) per-step counts from counts.bin."""
    profile, overhead = struct.unpack_from("<2Q", raw, 0)
    per, layers, off = [], [], 16
    for _ in range(n):
        (dt,) = struct.unpack_from("<Q", raw, off)
        off += 8
        per.append(dt)
        if profile:
            (k,) = struct.unpack_from("<Q", raw, off)
            points = np.frombuffer(raw, "<u8", 2 * k, off + 8).reshape(k, 2).astype(np.int64)
            off += 8 + 16 * k
            layers.append([max(int(e - b - overhead), 0) for b, e in zip(points[:-1, 1], points[1:, 0])])
    if off != len(raw):
        raise hostrun.BuildError(f"counts.bin: {len(raw)} bytes, parsed {off}")
    return per, layers


def build_and_run(files: Mapping[str, str], name: str, inputs: Mapping[str, np.ndarray], workdir, *,
                  codes: bool = False, profile: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    exe = build(files, name, workdir, profile=profile)
    return run(exe, name, files, inputs, codes=codes)
