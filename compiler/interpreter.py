"""The float reference interpreter for `onnx`-dialect IR.

Owns running `func.func @main` of an imported module with numpy: xDSL
`InterpreterFunctions` whose implementations call the kernels in
`qcc.float_kernels` (ONNX semantics, defined once there), and the sample-axis
driver used by the CLI and calibration.

Execution normally goes through `_Plan`, which runs the same kernels from a
flat list built once per module (decoded attributes, folded constants,
Conv+activation fusion, early freeing); the xDSL Interpreter path
(`_run_xdsl`) remains for bodies the plan does not handle and is the
reference the plan is checked against. `tools/bench_interpreter.py`
compares the speed with onnxruntime.

Sample axis: callers hand in arrays whose first axis is a set of independent
samples, each of the model's declared per-sample shape (batch 1). When every op
of the graph provably treats the leading dimension as a batch (`batchable`),
all samples of a chunk run in one pass; otherwise samples run one at a time.
Either way the results are identical to running each sample on its own.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, TensorType
from xdsl.interpreter import (
    Interpreter,
    InterpreterFunctions,
    PythonValues,
    impl,
    register_impls,
)
from xdsl.interpreters.func import FuncFunctions
from xdsl.ir import Operation

from qcc.dialects import onnx as donnx
from qcc.dialects.quant import QuantOp
from qcc.errors import QccError
from qcc.float_kernels import EPILOGUE, KERNELS, NUM_OUTPUTS


def module_opset(module: ModuleOp) -> int:
    a = module.attributes.get("onnx.opset")
    return int(a.value.data) if isinstance(a, IntegerAttr) else donnx_max_opset()


def donnx_max_opset() -> int:
    import onnx.defs

    return onnx.defs.onnx_opset_version()


def main_func(module: ModuleOp) -> func.FuncOp:
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == "main":
            return op
    raise QccError("the module has no func.func @main")


def io_names(fn: func.FuncOp) -> tuple[list[str], list[str]]:
    """ONNX names of the graph inputs and outputs (`qcc.name` arg/result attrs)."""

    def names(attrs, n: int, prefix: str) -> list[str]:
        out = []
        for i in range(n):
            name = None
            if attrs is not None and i < len(attrs.data):
                a = attrs.data[i].data.get(donnx.QCC_NAME)
                if isinstance(a, StringAttr):
                    name = a.data
            out.append(name or f"{prefix}{i}")
        return out

    ft = fn.function_type
    return (
        names(fn.arg_attrs, len(ft.inputs.data), "input"),
        names(fn.res_attrs, len(ft.outputs.data), "output"),
    )


def _run_onnx(self: "OnnxFloatFunctions", interpreter: Interpreter, op: donnx.OnnxOp, args: PythonValues):
    attrs = self._attrs.get(op)
    if attrs is None:
        attrs = self._attrs[op] = op.onnx_attrs()
        if op.onnx_type == "Split":
            attrs[NUM_OUTPUTS] = len(op.outputs)
    ins = list(args)
    if self.batch is not None and op.onnx_type in _BATCH_SHAPE_INPUT:
        ins = _patch_batch(op.onnx_type, ins, self.batch)
    kernel = KERNELS.get(op.onnx_type)
    if kernel is None:
        raise QccError(f"{op.onnx_type} has no float reference implementation")
    try:
        with np.errstate(all="ignore"):
            outs = kernel(ins, attrs, self.opset)
    except NotImplementedError as e:
        raise QccError(f"{op.onnx_type} '{op.node_name}': {e}") from None
    except (ValueError, IndexError) as e:
        # Shapes the model declares but its data contradicts (a mutilated weight,
        # an unbroadcastable bias) surface here; name the node, not numpy.
        raise QccError(f"node '{op.node_name}' ({op.onnx_type}, opset {self.opset}) "
                       f"cannot be evaluated: {e}") from None
    return tuple(np.asarray(o) for o in outs[: len(op.outputs)])


def _make_functions() -> type[InterpreterFunctions]:
    ns: dict[str, Any] = {
        "__doc__": "Float semantics of the onnx dialect: one generic impl per op class.",
    }
    for t, cls in donnx.OPS.items():
        ns[f"run_{t}"] = impl(cls)(_run_onnx)

    def run_novalue(self, interpreter, op, args):
        return (None,)

    ns["run_NoValue"] = impl(donnx.NoValueOp)(run_novalue)

    def __init__(self, opset: int, batch: int | None = None):
        self.opset = opset
        self.batch = batch
        self._attrs: dict[Operation, dict[str, Any]] = {}

    ns["__init__"] = __init__
    return register_impls(type("OnnxFloatFunctions", (InterpreterFunctions,), ns))


OnnxFloatFunctions = _make_functions()


# ----------------------------------------------------------------- batching

# Ops whose semantics never mix the leading dimension with others.
_BATCH_SAFE = set(
    """
    Abs Acos Acosh Add And Asin Asinh Atan Atanh AveragePool BatchNormalization
    BitShift Cast CastLike Ceil Celu Clip Constant Conv ConvTranspose Cos Cosh
    DepthToSpace DequantizeLinear Div Elu Equal Erf Exp Expand Floor Gelu
    GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual GroupNormalization
    HardSigmoid HardSwish InstanceNormalization IsInf IsNaN LRN LeakyRelu Less
    LessOrEqual Log Max MaxPool Mean Min Mish Mod Mul Neg Not Or PRelu Pow
    QuantizeLinear Reciprocal Relu Round Selu Shrink Sigmoid Sign Sin Sinh
    Softplus Softsign SpaceToDepth Sqrt Sub Sum Tan Tanh ThresholdedRelu Where
    Xor Reshape Resize Upsample
    """.split()
)
# Ops that are batch-safe when their axis/axes avoid dimension 0.
_AXIS_DEFAULTS: dict[str, Any] = {
    "Concat": None, "Softmax": "softmax", "LogSoftmax": "softmax", "Hardmax": "softmax",
    "Flatten": 1, "Gather": 0, "GatherElements": 0, "Split": 0, "ArgMax": 0, "ArgMin": 0,
    "TopK": -1, "LayerNormalization": -1, "CumSum": "input1",
    "Squeeze": "axes", "Unsqueeze": "axes", "ReduceMean": "axes", "ReduceSum": "axes",
    "ReduceMax": "axes", "ReduceMin": "axes", "ReduceProd": "axes", "ReduceL1": "axes",
    "ReduceL2": "axes", "ReduceSumSquare": "axes", "ReduceLogSum": "axes",
    "ReduceLogSumExp": "axes", "Transpose": "perm", "Slice": "slice", "Pad": "pad",
    "MatMul": "matmul", "Gemm": "gemm", "Tile": "tile",
}
# Ops with a constant shape-like input that names the batch extent.
_BATCH_SHAPE_INPUT = {"Reshape", "Resize", "Expand"}


def _const(v) -> np.ndarray | None:
    owner = getattr(v, "owner", None)
    if isinstance(owner, donnx.OnnxOp) and owner.onnx_type == "Constant":
        a = owner.attributes.get("value")
        if isinstance(a, donnx.DenseAttr):
            return a.array
    return None


def _rank(v) -> int:
    return len(v.type.get_shape()) if isinstance(v.type, TensorType) else 0


def _axis_ok(op: donnx.OnnxOp, opset: int) -> bool:
    t = op.onnx_type
    rule = _AXIS_DEFAULTS[t]
    attrs = op.onnx_attrs()
    rank = _rank(op.inputs[0]) if op.inputs else 0
    if t == "Squeeze" or t == "Unsqueeze":
        rank = _rank(op.outputs[0]) if t == "Unsqueeze" else rank
    def norm(a: int) -> int:
        return a + rank if a < 0 else a
    if isinstance(rule, int) or rule is None:
        axis = attrs.get("axis", rule)
        return axis is not None and norm(axis) != 0
    if rule == "softmax":
        axis = attrs.get("axis", -1 if opset >= 13 else 1)
        return norm(axis) != 0
    if rule == "input1":
        c = _const(op.inputs[1]) if len(op.inputs) > 1 else None
        return c is not None and norm(int(c.reshape(-1)[0])) != 0
    if rule == "axes":
        axes = attrs.get("axes")
        if axes is None and len(op.inputs) > 1:
            c = _const(op.inputs[1])
            if c is None:
                return False
            axes = [int(a) for a in c.reshape(-1)]
        if axes is None:
            return False  # all axes
        return all(norm(a) != 0 for a in axes)
    if rule == "perm":
        perm = attrs.get("perm")
        return perm is not None and perm[0] == 0
    if rule == "slice":
        axes = attrs.get("axes")
        if opset >= 10:
            if len(op.inputs) <= 3:
                return False
            c = _const(op.inputs[3])
            if c is None:
                return False
            axes = [int(a) for a in c.reshape(-1)]
        return axes is not None and all(norm(a) != 0 for a in axes)
    if rule == "pad":
        pads = attrs.get("pads")
        if pads is None and len(op.inputs) > 1:
            c = _const(op.inputs[1])
            pads = None if c is None else [int(p) for p in c.reshape(-1)]
        has_axes = len(op.inputs) > 3 and not isinstance(op.inputs[3].owner, donnx.NoValueOp)
        if pads is None or has_axes:
            return False
        return len(pads) == 2 * rank and pads[0] == 0 and pads[rank] == 0
    if rule == "matmul":
        # the right operand must be a constant (weights) or itself batched at rank >= 3
        return _const(op.inputs[1]) is not None or (_rank(op.inputs[0]) >= 3 and _rank(op.inputs[1]) >= 3)
    if rule == "gemm":
        return attrs.get("transA", 0) == 0 and _const(op.inputs[1]) is not None
    if rule == "tile":
        c = _const(op.inputs[1])
        return c is not None and int(c.reshape(-1)[0]) == 1
    return False


def batchable(module: ModuleOp) -> bool:
    """True when running samples stacked along dimension 0 equals running each alone."""
    fn = main_func(module)
    opset = module_opset(module)
    for a in fn.args:
        if _rank(a) == 0 or a.type.get_shape()[0] != 1:
            return False
    for op in fn.body.walk():
        if isinstance(op, donnx.NoValueOp) or isinstance(op, func.ReturnOp):
            continue
        if isinstance(op, QuantOp):
            if not _quant_batch_safe(op):
                return False
            continue
        if not isinstance(op, donnx.OnnxOp):
            return False
        if op.onnx_type == "Constant":
            continue
        for r in op.outputs:
            if _rank(r) == 0 or r.type.get_shape()[0] != 1:
                return False
        t = op.onnx_type
        if t in _BATCH_SAFE:
            if t == "Reshape" and _const(op.inputs[1]) is None:
                return False
            continue
        if t in _AXIS_DEFAULTS and _axis_ok(op, opset):
            continue
        return False
    return True


def _quant_batch_safe(op: QuantOp) -> bool:
    """Integer kernels treat axis 0 as samples when every tensor they touch is
    declared with batch 1 and they never mix or move axis 0."""
    from qcc.dialects import quant as q

    if isinstance(op, q.ConstantOp):
        return True
    for v in (*op.operands, *op.results):
        if isinstance(v.owner, q.ConstantOp):
            continue
        shape = v.type.get_shape()
        if not shape or shape[0] != 1:
            return False
    if isinstance(op, q.ConcatOp | q.PadOp):
        if op.attr("axis", 1) == 0:
            return False
        pads = op.attr("pads")
        if pads is not None and (pads[0] or pads[len(pads) // 2]):
            return False
    if isinstance(op, q.TransposeOp) and op.attr("perm")[0] != 0:
        return False
    if isinstance(op, q.SliceOp | q.InsertSliceOp) and op.attr("offsets")[0] != 0:
        return False
    return True


def _patch_batch(op_type: str, ins: list, batch: int) -> list:
    """Shape-like constant inputs spell batch 1; make them spell the chunk size."""
    if op_type == "Reshape" and ins[1] is not None:
        s = np.array(ins[1], copy=True)
        if s.size and s[0] == 1:
            s[0] = batch
        ins = [ins[0], s, *ins[2:]]
    elif op_type == "Resize" and len(ins) > 3 and ins[3] is not None and np.size(ins[3]):
        s = np.array(ins[3], copy=True)
        if s[0] == 1:
            s[0] = batch
        ins = [*ins[:3], s, *ins[4:]]
    return ins


# ------------------------------------------------------------------- drivers

Observer = Callable[[Operation, PythonValues], None]


class _Listener(Interpreter.Listener):
    def __init__(self, observer: Observer):
        self.observer = observer

    def did_interpret_op(self, op: Operation, results: PythonValues) -> None:
        self.observer(op, results)


def _run_xdsl(module: ModuleOp, args: Iterable[Any], *, batch: int | None = None,
              observer: Observer | None = None) -> tuple[Any, ...]:
    """@main through the generic xDSL Interpreter (bodies `_Plan` does not handle)."""
    fn = main_func(module)
    listeners = (_Listener(observer),) if observer else ()
    interp = Interpreter(module, listeners=listeners)
    interp.register_implementations(FuncFunctions())
    interp.register_implementations(OnnxFloatFunctions(module_opset(module), batch))
    return interp.call_op(fn, tuple(args))


# Elementwise ops (single tensor input, other inputs constant) fused into a
# preceding Conv; see `_Plan._fuse`.
_EPILOGUE_OPS = {"Relu", "Clip", "HardSwish", "HardSigmoid", "LeakyRelu", "Sigmoid", "Tanh",
                  "BatchNormalization"}

# Ops never evaluated ahead of time even when every input is a constant.
_NO_FOLD = {
    "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
    "Multinomial", "Bernoulli", "Dropout",
}


class _Plan:
    """@main of a module as a flat list of kernel calls, built once per run.

    Same semantics as interpreting the body op by op with the xDSL Interpreter
    (`_run_xdsl`), minus its per-op cost: values live in a list of slots, ONNX
    attributes are decoded once, ops whose inputs are all constants (Constant,
    ConstantOfShape weights, Unsqueeze of parameters, ...) run once when the
    plan is built, and a value is dropped after its last use so large
    activations are freed early. An observer still sees every op, in order.
    """

    def __init__(self, module: ModuleOp):
        try:
            self._build(module)
        except KeyError:  # a value defined outside @main's block
            raise _Unplannable() from None

    def _build(self, module: ModuleOp) -> None:
        fn = main_func(module)
        self.opset = opset = module_opset(module)
        blocks = list(fn.body.blocks)
        if len(blocks) != 1:
            raise _Unplannable()
        block = blocks[0]
        slot: dict[Any, int] = {}
        self.nargs = len(block.args)
        for a in block.args:
            slot[a] = len(slot)
        nslots = self.nargs
        consts: dict[int, Any] = {}
        # (op, kernel, attrs, in_slots, out_slots, patch, results-if-folded)
        steps: list[list] = []
        self.returns: list[int] | None = None
        for op in block.ops:
            if isinstance(op, func.ReturnOp):
                self.returns = [slot[v] for v in op.operands]
                self.return_op = op
                break
            if isinstance(op, donnx.NoValueOp):
                slot[op.results[0]] = nslots
                consts[nslots] = None
                nslots += 1
                steps.append([op, None, None, (), (slot[op.results[0]],), False, (None,)])
                continue
            if isinstance(op, QuantOp):  # integer semantics: qcc.int_kernels
                ins = tuple(slot[v] for v in op.operands)
                outs = []
                for r in op.results:
                    slot[r] = nslots
                    outs.append(nslots)
                    nslots += 1
                kernel = _int_kernel(op)
                folded = None
                if not ins:  # quant.constant
                    folded = tuple(kernel([], None, opset))
                    consts[outs[0]] = folded[0]
                steps.append([op, kernel, None, ins, tuple(outs), False, folded])
                continue
            if not isinstance(op, donnx.OnnxOp) or op.regions:
                raise _Unplannable()
            t = op.onnx_type
            attrs = op.onnx_attrs()
            if t == "Split":
                attrs[NUM_OUTPUTS] = len(op.results)
            ins = tuple(slot[v] for v in op.operands)
            outs = []
            for r in op.results:
                slot[r] = nslots
                outs.append(nslots)
                nslots += 1
            kernel = KERNELS.get(t)
            folded = None
            if kernel is not None and t not in _NO_FOLD and all(i in consts for i in ins) and (
                ins or t == "Constant"
            ):
                try:
                    with np.errstate(all="ignore"):
                        res = kernel([consts[i] for i in ins], attrs, opset)
                        folded = tuple(np.asarray(res[k]) for k in range(len(outs)))
                except Exception:  # left to run (and fail) where the op runs
                    folded = None
                if folded is not None:
                    for s, v in zip(outs, folded):
                        consts[s] = v
            steps.append([op, kernel, attrs, ins, tuple(outs), t in _BATCH_SHAPE_INPUT, folded])
        if self.returns is None:
            raise _Unplannable()
        self.nslots = nslots
        self.consts = consts
        self.steps = steps
        keep = set(self.returns)
        live = self._fuse([st for st in steps if st[6] is None], keep, consts, opset)
        # Last use of every runtime value: free it right after that step.
        last: dict[int, int] = {}
        for k, st in enumerate(live):
            for i in st[3]:
                last[i] = k
        runtime = []
        for k, st in enumerate(live):
            op, kernel, attrs, ins, outs, patch, _ = st
            used = tuple(j for j, s in enumerate(outs) if s in last or s in keep)
            free = tuple(i for i in dict.fromkeys(ins)
                         if last.get(i) == k and i not in keep and i not in consts)
            free += tuple(s for s in outs if s not in last and s not in keep)
            runtime.append((op, kernel, attrs, ins, outs, patch, used, free))
        self.runtime = runtime

    @staticmethod
    def _fuse(steps: list[list], keep: set[int], consts: dict[int, Any], opset: int) -> list[list]:
        """Conv followed by an elementwise op (activation, inference
        BatchNormalization) that is the only reader of its output: the op
        becomes the Conv kernel's EPILOGUE (chains compose), so it runs on
        output blocks while they are in cache instead of as a separate pass
        over the whole tensor (same values either way)."""
        readers: dict[int, int] = {}
        for st in steps:
            for i in st[3]:
                readers[i] = readers.get(i, 0) + 1
        producer = {s: k for k, st in enumerate(steps) for s in st[4]}
        out = list(steps)
        for k, st in enumerate(steps):
            op, kernel, attrs, ins, outs, patch, _ = st
            if getattr(op, "onnx_type", None) not in _EPILOGUE_OPS or kernel is None or not ins or len(outs) != 1:
                continue
            if op.onnx_type == "BatchNormalization" and attrs.get("training_mode", 0):
                continue  # batch statistics: not elementwise
            src = ins[0]
            p = producer.get(src)
            if p is None or readers.get(src) != 1 or src in keep or out[p] is None:
                continue
            conv = out[p]
            if getattr(conv[0], "onnx_type", None) != "Conv" or conv[1] is None or len(conv[4]) != 1:
                continue
            if any(i not in consts for i in ins[1:]):
                continue
            extra = [consts[i] for i in ins[1:]]
            before = conv[2].get(EPILOGUE)  # Conv -> BatchNormalization -> Relu chains

            def epilogue(y, kernel=kernel, attrs=attrs, extra=extra, before=before):
                return kernel([y if before is None else before(y), *extra], attrs, opset)[0]

            out[p] = [conv[0], conv[1], {**conv[2], EPILOGUE: epilogue}, conv[3], outs,
                      conv[5], None]
            out[k] = None
            producer[outs[0]] = p
        return [st for st in out if st is not None]

    def run(self, args: Iterable[Any], batch: int | None = None,
            observer: Observer | None = None) -> tuple[Any, ...]:
        args = tuple(args)
        if len(args) != self.nargs:
            raise QccError(f"@main takes {self.nargs} arguments, got {len(args)}")
        env: list[Any] = [None] * self.nslots
        env[: self.nargs] = args
        for s, v in self.consts.items():
            env[s] = v
        opset = self.opset
        with np.errstate(all="ignore"):
            if observer is None:
                for op, kernel, attrs, ins, outs, patch, used, free in self.runtime:
                    self._step(env, op, kernel, attrs, ins, outs, patch, used, batch, opset)
                    for s in free:
                        env[s] = None
            else:
                for op, kernel, attrs, ins, outs, patch, folded in self.steps:
                    if folded is None:
                        self._step(env, op, kernel, attrs, ins, outs, patch,
                                   range(len(outs)), batch, opset)
                    observer(op, tuple(env[s] for s in outs))
                observer(self.return_op, ())
        return tuple(env[s] for s in self.returns)

    @staticmethod
    def _step(env, op, kernel, attrs, ins, outs, patch, used, batch, opset) -> None:
        if kernel is None:
            raise QccError(f"{op.onnx_type} has no float reference implementation")
        vals = [env[i] for i in ins]
        if patch and batch is not None:
            vals = _patch_batch(op.onnx_type, vals, batch)
        try:
            res = kernel(vals, attrs, opset)
            for j in used:
                env[outs[j]] = np.asarray(res[j])
        except NotImplementedError as e:
            raise QccError(f"{op.onnx_type} '{op.node_name}': {e}") from None
        except (ValueError, IndexError) as e:
            # Shapes the model declares but its data contradicts (a mutilated weight,
            # an unbroadcastable bias) surface here; name the node, not numpy.
            kind = getattr(op, "onnx_type", op.name)
            raise QccError(f"node '{op.node_name}' ({kind}, opset {opset}) cannot be evaluated: {e}") from None


class _Unplannable(Exception):
    pass


def _int_kernel(op):
    """A quant op as a plan kernel: (inputs, attrs, opset) -> [result]."""
    from qcc.int_kernels import prepare

    run = prepare(op)
    return lambda vals, attrs, opset: [run(vals)]


def _ir_state(module: ModuleOp) -> list:
    """What a `_Plan` of `module` depends on, as objects compared by identity:
    @main's ops, their operands and attributes, the opset, the kernels."""
    fn = main_func(module)
    state: list = [fn, module.attributes.get("onnx.opset")]
    for block in fn.body.blocks:
        state.append(block)
        state.extend(block.args)
        for op in block.ops:
            state.append(op)
            state.extend(op.operands)
            state.extend(op.attributes.values())
            state.extend(op.results)
            if isinstance(op, donnx.OnnxOp):
                state.append(KERNELS.get(op.onnx_type))
    return state


# module -> (state, plan): plans are reused while @main is unchanged, so that
# constant folding (e.g. ConstantOfShape weights) is paid once per module.
_PLANS: "weakref.WeakKeyDictionary[ModuleOp, tuple[list, _Plan | None]]" = weakref.WeakKeyDictionary()


def _plan(module: ModuleOp) -> _Plan | None:
    """The (cached) plan of @main, or None when only the xDSL Interpreter can run it."""
    state = _ir_state(module)
    hit = _PLANS.get(module)
    if hit is not None and len(hit[0]) == len(state) and all(a is b for a, b in zip(hit[0], state)):
        return hit[1]
    try:
        plan = _Plan(module)
    except _Unplannable:
        plan = None
    _PLANS[module] = (state, plan)  # holding `state` keeps the identities valid
    return plan


def single_thread_blas(fn):
    """Runs `fn` with BLAS limited to one thread (threadpoolctl), whatever the
    process set up before importing qcc.

    qcc's numpy work comes in batches that one BLAS thread runs faster than two,
    and with threads the result depends on the machine's load: measured on the
    project's 2-core machines, the resnet_digits interpreter takes 81 ms with one
    OpenBLAS thread and 110 ms with two, and with the other core busy one
    calibration of a MobileNetV3-Small took 9.3 s in pointwise convolutions with
    two threads against 0.11 s with one (the threads spin and wait on each other).
    The previous limit is restored on return.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


_MALLOC_TUNED = False


def keep_freed_memory() -> None:
    """Lets glibc keep freed memory for reuse instead of returning it to the OS.

    Every kernel returns fresh arrays of a few MB. By default glibc serves
    those with mmap (or trims the heap top once they are freed), so each op
    pays page faults on memory it just gave back: measured on mbv3_digits,
    ~17k faults and a third of the wall time per run. Raising the mmap and
    trim thresholds keeps the pages mapped (peak memory is unchanged; the
    process just does not shrink after a run). Once per process; glibc only;
    QCC_MALLOC_TUNING=0 disables it. A process-wide setting, so the library
    never does this on its own: the `qcc`/`qcc-opt` commands and the
    benchmarks call it; an embedding application may.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    import os
    import sys

    if not sys.platform.startswith("linux") or os.environ.get("QCC_MALLOC_TUNING") == "0":
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: other libcs' mallopt differ
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 1 << 30)
    mallopt(m_trim_threshold, 1 << 30)


def run_main(module: ModuleOp, args: Iterable[Any], *, batch: int | None = None,
             observer: Observer | None = None, plan: _Plan | None = None) -> tuple[Any, ...]:
    """Runs @main once on exactly the given arguments (ONNX semantics, no sample axis).

    `plan` (from `_plan(module)`) saves rebuilding it when @main runs repeatedly.
    """
    if plan is None:
        plan = _plan(module)
    if plan is None:
        return _run_xdsl(module, args, batch=batch, observer=observer)
    if observer is None:  # a stage marked by tile-patches runs patch by patch (qcc.patches)
        from qcc.patches import runner

        patched = runner(module, plan)
        if patched is not None:
            return patched(args, batch)
    return plan.run(args, batch, observer)


def _per_sample_shape(declared: tuple[int, ...]) -> tuple[int, ...]:
    return declared[1:] if declared and declared[0] == 1 else declared


@single_thread_blas
def run_samples(module: ModuleOp, inputs: Mapping[str, np.ndarray], *, chunk: int = 64,
                progress: Callable[[int, int], None] | None = None,
                observer: Observer | None = None) -> dict[str, np.ndarray]:
    """Runs every sample (first axis of each input) and stacks the outputs.

    `inputs` maps graph input names to arrays of shape (samples, *per-sample
    shape); the per-sample shape is the declared input shape without its
    leading batch 1. Outputs come back the same way, in their own dtype.
    """
    fn = main_func(module)
    in_names, out_names = io_names(fn)
    declared = [tuple(a.type.get_shape()) for a in fn.args]
    out_declared = [tuple(t.get_shape()) for t in fn.function_type.outputs.data]
    missing = [n for n in in_names if n not in inputs]
    if missing:
        raise QccError(f"inputs: missing array for graph input(s) {', '.join(missing)}")
    arrays = []
    n_samples = None
    for name, shape, a in zip(in_names, declared, fn.args):
        arr = np.asarray(inputs[name])
        want = _per_sample_shape(shape)
        if arr.ndim != len(want) + 1 or tuple(arr.shape[1:]) != want:
            raise QccError(
                f"input '{name}': expected an array of shape (samples, {', '.join(map(str, want))}), "
                f"got {arr.shape}"
            )
        dtype = donnx.numpy_dtype(a.type.element_type)
        if arr.dtype != dtype:
            if arr.dtype.kind != dtype.kind and not (arr.dtype.kind in "iu" and dtype.kind in "iu"):
                if not (arr.dtype.kind in "iuf" and dtype.kind == "f"):
                    raise QccError(f"input '{name}': expected {dtype} data, got {arr.dtype}")
            arr = arr.astype(dtype)
        if n_samples is None:
            n_samples = arr.shape[0]
        elif arr.shape[0] != n_samples:
            raise QccError(f"input '{name}': {arr.shape[0]} samples, other inputs have {n_samples}")
        arrays.append(arr)
    n_samples = n_samples or 0
    use_batch = batchable(module)
    step = chunk if use_batch else 1
    plan = _plan(module)
    outs: list[list[np.ndarray]] = [[] for _ in out_names]
    done = 0
    while done < n_samples:
        k = min(step, n_samples - done)
        args = []
        for arr, shape in zip(arrays, declared):
            part = arr[done : done + k]
            if shape and shape[0] == 1:
                args.append(part if use_batch else part.reshape(shape))
            else:
                args.append(part[0])
        results = run_main(module, args, batch=k if use_batch else None, observer=observer, plan=plan)
        for i, (r, shape) in enumerate(zip(results, out_declared)):
            r = np.asarray(r)
            if use_batch:
                outs[i].append(r)
            else:
                outs[i].append(r.reshape(1, *_per_sample_shape(shape)) if shape and shape[0] == 1 else r[None])
        done += k
        if progress:
            progress(done, n_samples)
    return {
        name: (np.concatenate(parts) if parts else np.zeros((0, *_per_sample_shape(s))))
        for name, parts, s in zip(out_names, outs, out_declared)
    }
