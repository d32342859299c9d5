"""Sensitivity metrics and bit-width assignment: the estimates against direct
measurement, and the O(n) selection against a sort-based reference."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import qcc
from conftest import MODELS
from qcc import numerics as nx
from qcc.dialects import onnx as donnx
from qcc.passes.assign_bit_widths import uhlich_bits, weighted_select
from qcc.passes.calibrate import annotate, record_float
from qcc.passes.measure_sensitivity import measure, weight_matrix


def _metrics(model="resnet_digits", n=24, bits=(2, 4, 8)):
    with np.load(MODELS / "digits_calib.npz") as z:
        xs = {"input": z["input"][:n]}
    module = qcc.import_model(MODELS / f"{model}.onnx")
    rec = record_float(module, xs)
    from qcc.interpreter import main_func

    fn = main_func(module)
    annotate(module, {k: v for k, v in rec.stats.items() if not hasattr(k, "index")},
             [rec.stats[a] for a in fn.args], "minmax", (4, 8), n, "test")
    return module, xs, rec, measure(module, xs, bits, record=rec)


def test_weight_sqnr_grows_about_6_db_per_bit():
    _, _, _, metrics = _metrics()
    for op, m in metrics.items():
        if m["w_sqnr"]:
            assert m["w_sqnr"][2] < m["w_sqnr"][4] < m["w_sqnr"][8]
            assert 15 < m["w_sqnr"][8] - m["w_sqnr"][4] < 33  # 4 bits ~ 24 dB
            assert m["w_mse"][8] < m["w_mse"][4] < m["w_mse"][2]
        assert m["a_sqnr"][4] < m["a_sqnr"][8]


def test_weight_noise_estimate_matches_a_direct_measurement():
    """w_mse predicts the output error of quantized weights from input second
    moments; compare with the conv actually run on the same float inputs."""
    module, xs, rec, metrics = _metrics()
    from qcc.interpreter import run_main

    convs = [op for op in metrics if isinstance(op, donnx.OnnxOp) and op.onnx_type == "Conv"][:4]
    seen = {}
    run_main(module, [xs["input"]], batch=len(xs["input"]), observer=lambda op, r: seen.__setitem__(op, r))
    from qcc.float_kernels import KERNELS

    for op in convs:
        src = op.inputs[0].owner
        x = seen[src][0] if src in seen else xs["input"]
        w = weight_matrix(op)
        b = donnx.constant_array(op.inputs[2]) if len(op.inputs) > 2 else None
        attrs = op.onnx_attrs()
        y = KERNELS["Conv"]([x, w, b], attrs, 18)[0].astype(np.float64)
        for bits in (4, 8):
            wq = nx.fake_quantize(w, nx.weight_qparams(w, bits), narrow=True)
            yq = KERNELS["Conv"]([x, wq, b], attrs, 18)[0].astype(np.float64)
            actual = float(np.mean((y - yq) ** 2))
            est = metrics[op]["w_mse"][bits]
            assert 0.25 * actual < est < 4 * actual, (op.node_name, bits, est, actual)


def test_reference_sqnr_comes_from_the_quantized_inference():
    _, _, _, metrics = _metrics()
    refs = [m["ref_sqnr"] for m in metrics.values() if m.get("ref_sqnr") is not None]
    assert len(refs) >= 10
    assert all(15 < r < 80 for r in refs)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.1, 10)), min_size=1, max_size=60), st.floats(0, 1))
def test_weighted_select_takes_the_cheapest_prefix(items, frac):
    cost = np.array([c for c, _ in items])
    gain = np.array([g for _, g in items])
    need = frac * gain.sum()
    chosen = weighted_select(cost, gain, need)
    assert gain[chosen].sum() >= need - 1e-9
    if chosen.any() and (~chosen).any():
        # nothing left out is cheaper than something taken
        assert cost[~chosen].min() >= cost[chosen].max() - 1e-12
    if need <= 0:
        assert not chosen.any()


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 200_000), frac=st.floats(0, 1), seed=st.integers(0, 2**31))
def test_weighted_select_touches_fewer_than_2n_elements(n, frac, seed):
    rng = np.random.default_rng(seed)
    cost, gain = rng.random(n), rng.random(n)
    work: list[int] = []
    weighted_select(cost, gain, frac * gain.sum(), work)
    assert sum(work) <= 2 * n + len(work)


def test_uhlich_rule():
    # r/d = 2^7 - 1 needs b = 7 + 1 = 8 bits for a signed tensor
    power = 1.0
    d = np.sqrt(12 * power / 10 ** (40 / 10))
    assert uhlich_bits(127 * d, power, 40) == 8
    assert uhlich_bits(127 * d * 1.01, power, 40) == 9
    assert uhlich_bits(7 * d, power, 40) == 4
