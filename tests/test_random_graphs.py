"""Random small graphs at random widths: generated C against the integer interpreter on every target.

tests/random_graphs.py draws ONNX graphs (chains and small DAGs of Conv in every
form, Gemm/MatMul, Add incl. residual, Concat, pools, activations, per-channel
Mul, sometimes Softmax) and compiles them with qcc.compile at random per-op
widths (weights 2/4/8/16, activations 4/8/16). Each hypothesis example is one
graph, compiled once, built once for the target (-Werror) and run over all its
samples in one run per entry point: on the host (also under
-fsanitize=address,undefined with every tensor in its own object), under
qemu-user (cortex-a53, rv64gc) and bare metal under qemu-system (cortex-m4,
rv32imac). Test samples spread 1.5x wider than the calibration data, so
saturation is exercised. Every output computed by integer code must equal the
interpreter bit for bit (float entry point: the float32 bits; integer entry
point: the codes). An output a float op computes (a Softmax after a 16-bit
producer stays float) agrees to float32 rounding, as the C backend documents
for float ops (test_c_backend.test_softmax_and_unsupported_float_ops).

The committed models' host builds also run under the sanitizers here, at mixed
4/8 bits (test_c_backend covers mbv3 at 2..16 bits).

Hypothesis is derandomized with a fixed number of examples per target, so CI
runs the same graphs every time; a failure prints the graph, its widths and
how to rebuild it. Without a toolchain or emulator the tests skip, except under
CI=true, where they fail.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import qcc
from conftest import MODELS, load_split
from qcc import numerics as nx
from qcc.backends.c import emit_model
from qcc.backends.c import targets as tg
from qcc.backends.c.run import SANITIZE, io_meta
from qcc.dialects import quant as q
from qcc.interpreter import main_func, run_samples
from random_graphs import compile_random_widths, float_slices, graphs
from test_c_backend import assert_bits_equal, interpreter_codes

N_SAMPLES = 6
SANITIZE_CFLAGS = ("-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", *SANITIZE)
# (target, examples): the host is cheap, so it sees the most graphs
# QCC_RANDOM_GRAPH_SCALE=k runs k times as many (a longer search by hand; CI keeps 1).
SCALE = max(1, int(os.environ.get("QCC_RANDOM_GRAPH_SCALE", "1")))
RUNS = {run: n * SCALE for run, n in
        {"host": 40, "host-asan": 20, "cortex-a53": 20, "rv64gc": 20, "cortex-m4": 20, "rv32imac": 20}.items()}


def need(target: str) -> None:
    why = tg.toolchain_missing(target)
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)


def compare(module, cm, exe, target: str, feeds: dict, what: str) -> None:
    """Both entry points of a built program against the interpreter, one run each."""
    floaty, requant = float_slices(module)
    assert not requant, f"{what}: a float op feeds integer code (the generator should avoid that)"
    meta = io_meta(cm.files)
    got, _ = tg.run(exe, target, cm.files, feeds)
    want = run_samples(module, feeds)
    assert list(got) == list(want)
    for j, d in enumerate(meta["outputs"]):
        name = d["name"]
        if floaty[j]:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{what}: float output {name!r}")
        else:
            assert_bits_equal(got[name], want[name], f"{what}: float output {name!r}")
    if cm.has_run_q:
        codes_in = {}
        for d in meta["inputs"]:
            qp = nx.QParams(d["bits"], True, (d["scale"],), (d["zero_point"],))
            codes_in[d["name"]] = nx.quantize(np.asarray(feeds[d["name"]], np.float32), qp)
        got_q, _ = tg.run(exe, target, cm.files, codes_in, codes=True)
        want_q = interpreter_codes(module, feeds)
        for j, d in enumerate(meta["outputs"]):
            assert_bits_equal(got_q[d["name"]], want_q[j].reshape(got_q[d["name"]].shape),
                              f"{what}: codes of {d['name']!r}")
    else:  # emit.py: run_q needs each input to feed exactly one quant.quantize (one width)
        assert any(floaty.values()) or any(len(list(a.uses)) != 1 for a in main_func(module).args), \
            f"{what}: an all-integer graph with single-use inputs has no integer entry point"


def check_random_graph(graph, width_seed: int, run: str, work) -> None:
    target = "host" if run == "host-asan" else run
    art, widths = compile_random_widths(graph, work / "out", width_seed)
    what = (f"{run}: {graph.describe()}\n  widths (op, node, w_bits, a_bits): {widths}\n"
            f"  rebuild: random_graph(np.random.default_rng({graph.seed}), {graph.seed}), width_seed={width_seed}")
    cm = emit_model(art.module, separate_buffers=run == "host-asan")
    exe = tg.build(cm.files, target, work / "build", **({"cflags": SANITIZE_CFLAGS} if run == "host-asan" else {}))
    feeds = graph.inputs(N_SAMPLES, np.random.default_rng(graph.seed ^ width_seed), spread=1.5)
    try:
        compare(art.module, cm, exe, target, feeds, run)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{what}") from None


def _example_settings(n: int):
    return settings(max_examples=n, derandomize=True, deadline=None, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _make(run: str):
    @_example_settings(RUNS[run])
    @given(graph=graphs(), width_seed=st.integers(0, 2**32 - 1))
    def test(graph, width_seed, tmp_path_factory):
        need("host" if run == "host-asan" else run)
        check_random_graph(graph, width_seed, run, tmp_path_factory.mktemp(f"rg_{run}"))

    test.__name__ = f"test_random_graphs_are_bit_exact_on_{run.replace('-', '_')}"
    test.__doc__ = f"{RUNS[run]} random graphs at random widths, generated C vs the interpreter on {run}."
    return test


for _run in RUNS:
    globals()[_make(_run).__name__] = _make(_run)


def test_the_generator_covers_what_it_promises(tmp_path):
    """Across the host examples' seeds, graphs hold every op kind and widths span 2..16."""
    import random_graphs as rg

    ops, w_bits, a_bits, quant_ops = set(), set(), set(), set()
    for seed in range(30):
        g = rg.random_graph(np.random.default_rng(seed), seed)
        ops |= {n.op_type for n in g.model.graph.node}
        groups = {a.i for n in g.model.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"}
        ops |= {"grouped"} if any(v > 1 for v in groups) else set()
        if seed < 10:
            art, widths = rg.compile_random_widths(g, tmp_path / f"o{seed}", seed)
            w_bits |= {w for _, _, w, _ in widths if w}
            a_bits |= {a for _, _, _, a in widths}
            quant_ops |= {op.name for op in art.module.walk()}
    assert {"Conv", "grouped", "Gemm", "MatMul", "Add", "Concat", "MaxPool", "AveragePool", "GlobalAveragePool",
            "Mul", "Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "LeakyRelu", "Softmax"} <= ops, ops
    assert w_bits == {2, 4, 8, 16} and a_bits == {4, 8, 16}
    assert {"quant.conv", "quant.fully_connected", "quant.add", "quant.lookup"} <= quant_ops, quant_ops


# ------------------------------------------------ committed models under the sanitizers

MODEL_SANITIZE = {"lenet_digits": 40, "resnet_digits": 120, "mbv3_digits": 55, "mbv3_small_digits": 800}


@pytest.mark.parametrize("model", list(MODEL_SANITIZE))
def test_committed_models_run_clean_under_sanitizers(model, tmp_path):
    """Every committed model at mixed 4/8 bits (size budget between all-4-bit and int8),
    every tensor its own object, ASan + UBSan, bit-exact with the interpreter."""
    need("host")
    big = model == "mbv3_small_digits"
    calib, _ = load_split(MODELS / ("digits96_calib.npz" if big else "digits_calib.npz"))
    test, _ = load_split(MODELS / ("digits96_test.npz" if big else "digits_test.npz"))
    art = qcc.compile(MODELS / f"{model}.onnx", str(tmp_path / "out"), calib={"input": calib[:32 if big else None]},
                      bits=(4, 8), size_budget_kb=MODEL_SANITIZE[model], quiet=True)
    w_bits = {q.qparams_of(op.operands[1].type).bits for op in art.module.walk()
              if isinstance(op, q.ConvOp | q.FullyConnectedOp)}
    assert 4 in w_bits and 8 in w_bits, w_bits  # the budget really mixes widths
    cm = emit_model(art.module, separate_buffers=True)
    exe = tg.build(cm.files, "host", tmp_path / "asan", cflags=SANITIZE_CFLAGS)
    compare(art.module, cm, exe, "host", {"input": test[:2]}, f"{model} under ASan/UBSan")
