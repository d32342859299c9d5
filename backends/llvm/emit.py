"""model.ll / model.o / model.h for a quantized module.

The module is cloned (the caller's IR is untouched), lowered by
`pipeline.lower_to_llvm_dialect` and translated by `xdsl.backend.llvm.convert_module`.
The functions keep the C backend's ABI (model.h comes from the C backend's
emitter): `qcc_model_run` and, when the graph has quantized edges,
`qcc_model_run_q`; `qcc_body` and the data are internal. Objects are built by
llvmlite's target machine for the target's triple, CPU and features, after
LLVM's -O2 pipeline (-O3 for Cortex-M).
"""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.binding as llvm
import llvmlite.ir as ir
from xdsl.backend.llvm.convert import convert_module
from xdsl.dialects import llvm as xllvm
from xdsl.dialects.builtin import ModuleOp

from qcc.errors import QccError

from .pipeline import lower_to_llvm_dialect


@dataclass(frozen=True)
class Target:
    triple: str  # "" = the host's
    cpu: str = ""
    features: str = ""
    abi: str = ""
    index_bits: int = 64
    opt: int = 2  # LLVM optimisation level (module pipeline and code generation)


# Float ABIs and code models as the C backend's targets (backends/c/targets.py) build
# them, so that either backend's object links with the same harness and runtime:
# Cortex-M with the FPU's hard-float ABI (eabihf), RISC-V with -mcmodel=medany.
# rv32imac is scheduled as the SiFive E31 (an rv32imac core): with LLVM's generic RV32
# model the scheduler hoists every load of an unrolled dot product and spills.
# -O3 executes fewer instructions than -O2 on Cortex-M4 (digit models under qemu -icount),
# more on rv32imac: each target keeps the better one.
TARGETS = {
    "host": Target(""),
    "cortex-m4": Target("thumbv7em-none-eabihf", "cortex-m4", "+dsp,+vfp4d16sp", index_bits=32, opt=3),
    "cortex-m7": Target("thumbv7em-none-eabihf", "cortex-m7", "+dsp,+fp-armv8d16", index_bits=32, opt=3),
    "rv32imac": Target("riscv32-unknown-elf", "sifive-e31", "+m,+a,+c", "ilp32", index_bits=32),
    "cortex-a53": Target("aarch64-linux-gnu", "cortex-a53", "+neon"),
    "rv64gc": Target("riscv64-linux-gnu", "generic-rv64", "+m,+a,+f,+d,+c", "lp64d"),
}

_ready = False


def _init() -> None:
    global _ready
    if not _ready:
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
        _ready = True


def target_machine(target: str, *, jit: bool = False) -> llvm.TargetMachine:
    _init()
    t = TARGETS.get(target)
    if t is None:
        raise QccError(f"--target {target}: the LLVM backend knows {', '.join(TARGETS)}")
    if not t.triple:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        triple = llvm.get_process_triple()
        return llvm.Target.from_triple(triple).create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=t.opt,
            reloc="pic", codemodel="jitdefault" if jit else "default", jit=jit)
    bare = "linux" not in t.triple
    return llvm.Target.from_triple(t.triple).create_target_machine(
        cpu=t.cpu, features=t.features, opt=t.opt, reloc="static" if bare else "pic",
        codemodel="medium" if t.triple.startswith("riscv") else "default", abiname=t.abi)


@dataclass
class LLVMModel:
    files: dict[str, str]  # model.ll, model.h
    ir_module: ir.Module
    arena_bytes: int
    naive_bytes: int
    has_run_q: bool
    target: str
    sram_peak_bytes: int = 0  # arena + input/output buffers outside it (report.json's rule)
    sram_peak_bytes_excl_input: int = 0


def emit_llvm(module: ModuleOp, target: str = "host") -> LLVMModel:
    """model.ll (target triple and data layout set) and model.h for `module`."""
    from qcc.backends.c.emit import emit_model

    tm = target_machine(target)
    work = module.clone()
    t = TARGETS[target]
    lw = lower_to_llvm_dialect(work, t.index_bits, dsp="+dsp" in t.features.split(","))
    header = emit_model(module).files["model.h"]  # the C backend's header: one ABI for both backends
    internal = {op.sym_name.data for op in work.ops
                if isinstance(op, xllvm.FuncOp) and op.linkage.linkage.data == "internal"}
    mod = convert_module(work, fallback_target_triple=tm.triple, data_layout=str(tm.target_data))
    for fn in mod.functions:  # convert_module keeps neither linkage nor these facts
        if fn.name in internal:
            fn.linkage = "internal"
        fn.attributes.add("nounwind")
    for g in mod.global_values:
        if isinstance(g, ir.GlobalVariable):
            if g.initializer is None:  # the arena: zero-initialised, like C's static storage
                g.initializer = ir.Constant(g.value_type, None)
            g.align = 16
            g.unnamed_addr = True
    text = str(mod)
    llvm.parse_assembly(text).verify()  # invalid IR is a bug in qcc: an internal error, not a user error
    return LLVMModel({"model.ll": text, "model.h": header}, mod, lw.arena_bytes, lw.naive_bytes, lw.q_edge, target,
                     lw.sram_peak_bytes, lw.sram_peak_bytes_excl_input)


def optimized(text: str, tm: llvm.TargetMachine, level: int = 2) -> llvm.ModuleRef:
    """The parsed module after LLVM's -O`level` pipeline for `tm`."""
    m = llvm.parse_assembly(text)
    m.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=level)
    pto.loop_unrolling = True
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(m, pb)
    return m


def object_code(model: LLVMModel) -> bytes:
    """model.o for the model's target."""
    tm = target_machine(model.target)
    obj = tm.emit_object(optimized(model.files["model.ll"], tm, TARGETS[model.target].opt))
    if TARGETS[model.target].triple.endswith("eabihf"):
        obj = mark_hard_float(obj)
    return obj


_SHT_ARM_ATTRIBUTES = 0x70000003


def _uleb(b: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, i


def mark_hard_float(obj: bytes) -> bytes:
    """Records the hard-float calling convention (Tag_ABI_VFP_args = 1) in an ARM
    object's build attributes. LLVM writes it only when the float ABI is given
    explicitly (llc -float-abi=hard), which llvmlite cannot do, and ld refuses to
    link an object without it with -mfloat-abi=hard code. The pair takes the place
    of Tag_ABI_FP_exceptions = 0, which states the default (same size, no
    relayout)."""
    b = bytearray(obj)
    shoff = int.from_bytes(b[0x20:0x24], "little")
    shentsize = int.from_bytes(b[0x2E:0x30], "little")
    shnum = int.from_bytes(b[0x30:0x32], "little")
    for k in range(shnum):
        h = shoff + k * shentsize
        if int.from_bytes(b[h + 4:h + 8], "little") != _SHT_ARM_ATTRIBUTES:
            continue
        off, size = int.from_bytes(b[h + 16:h + 20], "little"), int.from_bytes(b[h + 20:h + 24], "little")
        i = off + 1  # "A"
        i += 4
        i = b.index(0, i) + 1  # vendor "aeabi"
        if b[i] != 1:  # File attributes
            break
        i += 5
        while i < off + size:
            tag, j = _uleb(b, i)
            if tag in (4, 5, 67) or (tag > 32 and tag % 2 == 1):
                j = b.index(0, j) + 1
                i = j
                continue
            val, j = _uleb(b, j)
            if tag == 28:
                return bytes(b)  # already recorded
            if tag == 21 and val == 0 and j - i == 2:
                b[i:j] = bytes((28, 1))
                return bytes(b)
            i = j
    raise RuntimeError("cannot record the hard-float ABI in the ARM object's attributes")
