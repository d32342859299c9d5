"""report.json and report.html: what qcc decided for each op, and what it costs.

Owns the report's schema (../shared/CONTRACT.md lists the required keys) and its
HTML rendering: a self-contained page (inline SVG, no scripts, no downloads)
with the per-op table, per-layer sensitivity, the bit allocation and the
size/error trade-off of uniform widths against the chosen assignment.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType

from qcc import numerics as nx
from qcc.dialects import onnx as donnx
from qcc.dialects import quant as q

SCHEMA_VERSION = 1


def _main(module: ModuleOp) -> func.FuncOp:
    from qcc.interpreter import main_func

    return main_func(module)


def _elem_bytes(t) -> int:
    qp = q.qparams_of(t)
    if qp is not None:
        return nx.storage_dtype(qp.bits).itemsize
    try:
        return donnx.numpy_dtype(t.element_type).itemsize
    except (ValueError, AttributeError):
        return 4


def _tensor_bytes(t) -> int:
    if not isinstance(t, TensorType):
        return 0
    return int(np.prod(t.get_shape())) * _elem_bytes(t)


def _is_const(op) -> bool:
    return isinstance(op, q.ConstantOp) or isinstance(op, donnx.OnnxOp) and op.onnx_type in ("Constant", "NoValue") \
        or isinstance(op, donnx.NoValueOp)


def memory(module: ModuleOp) -> dict[str, int]:
    """Flash (constants) and a liveness estimate of peak SRAM in program order:
    every non-constant tensor lives from its definition to its last use; graph
    inputs from the start, outputs to the end. Lookup tables count as flash."""
    fn = _main(module)
    ops = list(fn.body.block.ops)
    last: dict[Any, int] = {}
    for i, op in enumerate(ops):
        for v in op.operands:
            last[v] = i
    ret = ops[-1]
    flash = 0
    for op in ops:
        if isinstance(op, q.ConstantOp):
            flash += op.attributes["packed"].array.nbytes
        elif isinstance(op, donnx.OnnxOp) and op.onnx_type == "Constant":
            flash += op.attributes["value"].array.nbytes
        elif isinstance(op, q.LookupOp | q.SoftmaxOp):
            flash += op.attributes["table"].array.nbytes
    arg_bytes = {a: _tensor_bytes(a.type) for a in fn.args}
    events: list[tuple[int, int, int, bool]] = []  # (start, end, bytes, is_input)
    for a, b in arg_bytes.items():
        events.append((0, last.get(a, 0), b, True))
    for i, op in enumerate(ops):
        if _is_const(op) or op is ret:
            continue
        for r in op.results:
            end = len(ops) if r in ret.operands else last.get(r, i)
            events.append((i, end, _tensor_bytes(r.type), False))
    n = len(ops) + 1
    live = np.zeros(n + 1, np.int64)
    live_in = np.zeros(n + 1, np.int64)
    for s, e, b, is_in in events:
        live[s] += b
        live[e + 1] -= b
        if is_in:
            live_in[s] += b
            live_in[e + 1] -= b
    total = np.cumsum(live)
    excl = total - np.cumsum(live_in)
    return {"flash_bytes": int(flash), "sram_peak_bytes": int(total.max(initial=0)),
            "sram_peak_bytes_excl_input": int(excl.max(initial=0))}


def _io(module: ModuleOp) -> tuple[list[dict], list[dict]]:
    from qcc.interpreter import io_names

    fn = _main(module)
    in_names, out_names = io_names(fn)

    def qinfo(qp):
        return None if qp is None else {"bits": qp.bits, "scale": list(qp.scale), "zero_point": list(qp.zero_point)}

    ins = []
    for name, a in zip(in_names, fn.args):
        qp = next((q.qparams_of(u.operation.results[0].type) for u in a.uses
                   if isinstance(u.operation, q.QuantizeOp)), None)
        ins.append({"name": name, "shape": list(a.type.get_shape()), "dtype": str(a.type.element_type),
                    "quantization": qinfo(qp)})
    outs = []
    ret = list(fn.body.block.ops)[-1]
    for name, v in zip(out_names, ret.operands):
        src = v.owner
        qp = q.qparams_of(src.operands[0].type) if isinstance(src, q.DequantizeOp) else None
        outs.append({"name": name, "shape": list(v.type.get_shape()), "dtype": str(v.type.element_type),
                     "quantization": qinfo(qp)})
    return ins, outs


def build_report(final: ModuleOp, float_module: ModuleOp, annotated: ModuleOp | None, info: dict) -> dict:
    from qcc.passes.assign_bit_widths import REASON, macs
    from qcc.passes.lower_to_quant import A_BITS, FLOAT_OPS, W_BITS
    from qcc.passes.measure_sensitivity import read_metrics, weight_matrix

    src = annotated if annotated is not None else float_module
    float_names = set()
    a = final.attributes.get(FLOAT_OPS)
    if a is not None:
        float_names = {s.data.rsplit(" (", 1)[0] for s in a.data}
    integer_names = {op.node_name for op in final.walk() if isinstance(op, q.QuantOp) and op.node_name}
    fused_into: dict[str, str] = {}
    for op in final.walk():
        f = op.attributes.get("qcc.fused")
        if isinstance(f, StringAttr):
            for n in f.data.split(", "):
                fused_into[n] = op.node_name
    integer_names |= set(fused_into)
    ops = []
    for op in _main(src).body.block.ops:
        if not isinstance(op, donnx.OnnxOp) or op.onnx_type == "Constant":
            continue
        name = op.node_name or op.onnx_type
        w = weight_matrix(op)
        integer = annotated is not None and name in integer_names
        wb = _int_attr(op, W_BITS) if integer and w is not None else None
        ab = _int_attr(op, A_BITS) if integer else None
        m = read_metrics(op)
        entry = {
            "name": name, "op_type": op.onnx_type,
            "shape": list(op.results[0].type.get_shape()) if op.results and isinstance(op.results[0].type,
                                                                                        TensorType) else [],
            "integer": integer,
            "w_bits": wb if w is not None else None,
            "a_bits": ab,
            "macs": macs(op),
            "params": 0 if w is None else int(w.size),
            "weight_bytes": 0 if w is None else (nx.packed_size(int(w.size), wb) if wb else int(w.size) * 4),
            "fused_into": fused_into.get(name),
            "reason": (op.attributes[REASON].data if isinstance(op.attributes.get(REASON), StringAttr) else
                       ("stays float: no integer form or no calibrated range" if name in float_names else None)),
            "metrics": None if m is None else {
                k: ({str(b): _num(x) for b, x in v.items()} if isinstance(v, dict) else _num(v))
                for k, v in m.items()},
        }
        ops.append(entry)
    totals = {
        "macs": int(sum(o["macs"] for o in ops)),
        "weight_bytes": int(sum(o["weight_bytes"] for o in ops)),
        "bitops": int(sum(o["macs"] * (o["w_bits"] or 32) * (o["a_bits"] or 32) for o in ops)),
        "float_weight_bytes": int(sum(o["params"] * 4 for o in ops)),
        **memory(final),
    }
    patch = info.get("patch")
    if patch:  # the model runs its first stage patch by patch: the peak is the patch-based arena plan
        totals["sram_peak_bytes"] = patch["sram_peak_bytes"]
        totals["sram_peak_bytes_excl_input"] = patch["sram_peak_bytes_excl_input"]
    ins, outs = _io(final)
    warnings = []
    cal = info.get("calibration")
    if cal and cal.get("synthetic"):
        warnings.append("no --calib data: ranges come from synthetic N(0,1) inputs, which need not resemble real "
                        "inputs; accuracy is not representative")
    for o in ops:
        if annotated is not None and not o["integer"] and o["op_type"] not in ("NoValue",):
            warnings.append(f"op '{o['name']}' ({o['op_type']}) stays float: no integer form or no range")
    return {"schema_version": SCHEMA_VERSION, "ops": ops, "totals": totals, "inputs": ins, "outputs": outs,
            "calibration": cal, "warnings": warnings, "options": info.get("options"),
            "timings_s": {k: round(v, 4) for k, v in info.get("timings", {}).items()},
            "uniform": _uniform_alternatives(ops), "patch": patch}


def _uniform_alternatives(ops: list[dict]) -> list[dict]:
    """Weight size and estimated output SQNR of uniform widths, for the trade-off plot:
    per op, relative noise = (w_mse + a_mse) / signal; the estimate is the mean over ops."""
    out = []
    widths = sorted({int(b) for o in ops if o["metrics"] for b in o["metrics"].get("w_sqnr", {})})
    for b in widths:
        rel, size, bitops = [], 0, 0
        for o in ops:
            m = o["metrics"]
            if not m:
                continue
            sig = max(m.get("signal") or 0, 1e-30)
            ab = str(b if str(b) in m.get("a_mse", {}) else max(int(k) for k in m["a_mse"]))
            noise = m.get("w_mse", {}).get(str(b), 0.0) + m.get("a_mse", {}).get(ab, 0.0)
            rel.append(noise / sig)
            size += nx.packed_size(o["params"], b)
            bitops += o["macs"] * b * int(ab)
        if rel:
            out.append({"label": f"uniform {b}-bit", "weight_bytes": size, "bitops": bitops,
                        "est_sqnr_db": _db(float(np.mean(rel)))})
    rel, size, bitops = [], 0, 0
    for o in ops:
        m = o["metrics"]
        if not m or not o["integer"]:
            continue
        sig = max(m.get("signal") or 0, 1e-30)
        noise = (m.get("w_mse", {}).get(str(o["w_bits"]), 0.0) if o["w_bits"] else 0.0) + \
            m.get("a_mse", {}).get(str(o["a_bits"]), 0.0)
        rel.append(noise / sig)
        size += o["weight_bytes"]
        bitops += o["macs"] * (o["w_bits"] or 32) * (o["a_bits"] or 32)
    if rel:
        out.append({"label": "chosen", "weight_bytes": size, "bitops": bitops,
                    "est_sqnr_db": _db(float(np.mean(rel)))})
    return out


def _db(rel: float) -> float:
    return 200.0 if rel <= 0 else round(-10 * math.log10(rel), 2)


def _num(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _int_attr(op, key: str) -> int | None:
    a = op.attributes.get(key)
    return None if a is None else int(a.value.data)


# ------------------------------------------------------------------ HTML

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f0f0f0}td.l{text-align:left}
.warn{color:#a40}h2{margin-top:1.6em}.float{background:#fff4e0}svg text{font:11px sans-serif}"""
_COLORS = {2: "#d62728", 4: "#ff7f0e", 8: "#2ca02c", 16: "#1f77b4", 32: "#7f7f7f"}


def _bars(title: str, labels: list[str], series: dict[str, list[float | None]], unit: str) -> str:
    """Grouped horizontal bars, one row per op."""
    row_h, bar_h, left, width = 16, 5, 220, 420
    vals = [v for s in series.values() for v in s if v is not None]
    vmax = max(vals, default=1.0) or 1.0
    vmin = min(0.0, min(vals, default=0.0))
    span = (vmax - vmin) or 1.0
    h = row_h * len(labels) + 40
    out = [f'<svg width="{left + width + 60}" height="{h}" role="img" aria-label="{html.escape(title)}">']
    for i, lab in enumerate(labels):
        y = 20 + i * row_h
        out.append(f'<text x="{left - 4}" y="{y + 10}" text-anchor="end">{html.escape(lab[:34])}</text>')
        for j, (key, s) in enumerate(series.items()):
            v = s[i]
            if v is None:
                continue
            x0 = left + (0 - vmin) / span * width
            x1 = left + (v - vmin) / span * width
            color = list(_COLORS.values())[j % len(_COLORS)]
            out.append(f'<rect x="{min(x0, x1):.1f}" y="{y + j * bar_h:.1f}" width="{abs(x1 - x0):.1f}" '
                       f'height="{bar_h - 1}" fill="{color}"><title>{html.escape(key)}: {v:.3g} {unit}</title></rect>')
    legend_y = h - 10
    for j, key in enumerate(series):
        color = list(_COLORS.values())[j % len(_COLORS)]
        out.append(f'<rect x="{left + j * 110}" y="{legend_y - 9}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{left + j * 110 + 14}" y="{legend_y}">{html.escape(key)}</text>')
    out.append(f'<text x="{left + width}" y="12" text-anchor="end">{vmax:.3g} {unit}</text></svg>')
    return f"<h3>{html.escape(title)}</h3>" + "".join(out)


def _scatter(points: list[dict], key: str = "weight_bytes", scale: float = 1024, unit: str = "weight KB") -> str:
    points = [p for p in points if key in p]
    if not points:
        return ""
    w, h, pad = 460, 260, 50
    xs = [p[key] / scale for p in points]
    ys = [p["est_sqnr_db"] for p in points]
    x0, x1 = 0, max(xs) * 1.1 or 1
    y0, y1 = min(ys) - 3, max(ys) + 3
    out = [f'<svg width="{w}" height="{h}" role="img" aria-label="{html.escape(unit)} versus estimated SQNR">',
           f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#999"/>',
           f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h - pad}" stroke="#999"/>',
           f'<text x="{w / 2}" y="{h - 15}" text-anchor="middle">{unit}</text>',
           f'<text x="12" y="{h / 2}" transform="rotate(-90 12 {h / 2})" text-anchor="middle">est. SQNR dB</text>']
    for p, x, y in zip(points, xs, ys):
        px = pad + (x - x0) / (x1 - x0) * (w - pad - 20)
        py = h - pad - (y - y0) / ((y1 - y0) or 1) * (h - pad - 20)
        color = "#d62728" if p["label"] == "chosen" else "#1f77b4"
        out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="5" fill="{color}"/>'
                   f'<text x="{px + 8:.1f}" y="{py - 6:.1f}">{html.escape(p["label"])} '
                   f'({x:.1f} {unit.split()[-1]}, {y:.1f} dB)</text>')
    out.append("</svg>")
    what = "Weight size" if key == "weight_bytes" else "BitOPs"
    return f"<h3>{what} vs estimated output SQNR</h3>" + "".join(out)


def _patch_html(p: dict | None) -> str:
    if not p:
        return ""
    e = html.escape
    rows = "".join(f"<tr><td>{e(f['split'])}</td><td>{f['grid'][0]}x{f['grid'][1]}</td>"
                   f"<td>{f['sram_peak_bytes_excl_input']:,}</td><td>{f['recompute_overhead']:.1%}</td></tr>"
                   for f in p.get("frontier", []))
    return (f"<h2>Patch-based inference</h2><p>Split after {e(p['split'])}, grid {p['grid'][0]}x{p['grid'][1]}: "
            f"peak SRAM excl. input {p['layer_sram_peak_bytes_excl_input']:,} bytes layer by layer, "
            f"{p['sram_peak_bytes_excl_input']:,} patch based ({p['sram_reduction']:.2f}x lower), "
            f"{p['recompute_overhead']:.1%} extra MACs.</p><table><tr><th>split</th><th>grid</th>"
            f"<th>peak SRAM excl. input</th><th>extra MACs</th></tr>{rows}</table>")


def render_html(r: dict) -> str:
    e = html.escape
    t = r["totals"]
    ops = r["ops"]
    rows = []
    for o in ops:
        m = o["metrics"] or {}
        ref = m.get("ref_sqnr")
        rows.append(
            f'<tr class="{"" if o["integer"] else "float"}"><td class="l">{e(o["name"])}</td>'
            f'<td class="l">{e(o["op_type"])}</td><td>{e("x".join(map(str, o["shape"])))}</td>'
            f'<td>{o["w_bits"] or "-"}</td><td>{o["a_bits"] or "float"}</td><td>{o["macs"]:,}</td>'
            f'<td>{o["weight_bytes"]:,}</td><td>{"-" if ref is None else f"{ref:.1f}"}</td>'
            f'<td class="l">{e(o["reason"] or "")}</td></tr>')
    measured = [o for o in ops if o["metrics"]]
    labels = [o["name"] for o in measured]
    widths = sorted({int(b) for o in measured for b in o["metrics"].get("a_sqnr", {})} |
                    {int(b) for o in measured for b in o["metrics"].get("w_sqnr", {})})
    sens = {}
    for b in widths:
        sens[f"weights {b}b"] = [o["metrics"].get("w_sqnr", {}).get(str(b)) for o in measured]
        sens[f"activations {b}b"] = [o["metrics"].get("a_sqnr", {}).get(str(b)) for o in measured]
    sens = {k: v for k, v in sens.items() if any(x is not None for x in v)}
    alloc = {"w_bits": [o["w_bits"] for o in measured], "a_bits": [o["a_bits"] for o in measured]}
    io = "".join(f"<li>{e(k)} <code>{e(x['name'])}</code> {e(str(x['shape']))} {e(x['dtype'])}"
                 f"{'' if not x['quantization'] else ' quantized ' + e(str(x['quantization']))}</li>"
                 for k, xs in (("input", r["inputs"]), ("output", r["outputs"])) for x in xs)
    warn = "".join(f'<li class="warn">{e(w)}</li>' for w in r["warnings"])
    cal = r.get("calibration")
    cal_text = "float build (no quantization)" if not cal else \
        f"{cal['samples']} samples from {e(str(cal['source']))}, method {e(cal['method'])}"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>qcc report</title>
<style>{_CSS}</style></head><body><h1>qcc report</h1>
<p>Calibration: {cal_text}.</p>
<table><tr><th>MACs</th><th>weight bytes</th><th>float weight bytes</th><th>BitOPs</th><th>flash bytes</th>
<th>peak SRAM bytes</th><th>peak SRAM excl. input</th></tr>
<tr><td>{t['macs']:,}</td><td>{t['weight_bytes']:,}</td><td>{t['float_weight_bytes']:,}</td><td>{t['bitops']:,}</td>
<td>{t['flash_bytes']:,}</td><td>{t['sram_peak_bytes']:,}</td><td>{t['sram_peak_bytes_excl_input']:,}</td></tr></table>
<ul>{io}</ul>{_patch_html(r.get('patch'))}{'<h2>Warnings</h2><ul>' + warn + '</ul>' if warn else ''}
<h2>Per-op decisions</h2>
<table><tr><th>op</th><th>type</th><th>shape</th><th>w bits</th><th>a bits</th><th>MACs</th><th>weight bytes</th>
<th>SQNR in quantized run (dB)</th><th>why</th></tr>{''.join(rows)}</table>
<h2>Plots</h2>
{_bars('Per-layer sensitivity: local SQNR by width (higher is more robust)', labels, sens, 'dB') if labels else ''}
{_bars('Bit allocation', labels, alloc, 'bits') if labels else ''}
{_scatter(r.get('uniform') or [])}
{_scatter(r.get('uniform') or [], 'bitops', 1e9, 'BitOPs G')}
<h2>Time per stage</h2><ul>{''.join(f'<li>{e(k)}: {v:.2f} s</li>' for k, v in (r.get('timings_s') or {}).items())}</ul>
</body></html>
"""
