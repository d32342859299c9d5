#!/usr/bin/env python3
"""Re-export the trained MobileNetV3-Small with hard-swish and hard-sigmoid written
out the way many MobileNetV3 implementations write them, for the compile-time benchmark.

Issue 3 times a full quantizing compile of "a MobileNetV3-small-class model
(about 16M MACs, 500+ ONNX nodes)". models/mbv3_small_digits.onnx is that
network at 96x96 with 156 nodes: torch's exporters turn nn.Hardswish into one
HardSwish node. Many MobileNetV3 codebases instead define

    h_sigmoid(x) = relu6(x + 3) / 6        h_swish(x) = x * h_sigmoid(x)

and their exports carry Add, Clip, Div and Mul for every activation. This script
loads the trained weights from models/mbv3_small_digits.onnx (initializer names
are the PyTorch state_dict keys), swaps the activation modules for those
decomposed forms (same function, so the outputs agree with the original model to
float rounding), and exports with the unoptimized dynamo exporter at a larger
input size (the network is fully convolutional up to its global pooling):

    python tools/export_mbv3_small_decomposed.py --size 120 --out /tmp/mbv3_small_120.onnx

It also writes calibration data of that size (the committed 96x96 calibration
images resized bilinearly) next to the model, as CALIB (default: OUT with
`_calib.npz`). Nothing it writes is committed; tools/bench_quant.py calls it.

Tools-only dependencies: torch, onnxscript, onnx.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = HERE.parent / "models"


def resize(x: np.ndarray, size: int) -> np.ndarray:
    """NCHW float images resized bilinearly (PyTorch's interpolate, align_corners=False)."""
    import torch

    t = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(x, np.float32)), size=(size, size),
                                        mode="bilinear", align_corners=False)
    return t.numpy().astype(np.float32)


def build(size: int, out: Path, calib_out: Path | None = None) -> dict:
    import onnx
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from onnx import numpy_helper

    sys.path.insert(0, str(HERE))
    import train_mbv3_small as t

    class HSigmoid(nn.Module):
        def forward(self, x):
            return F.relu6(x + 3.0) / 6.0

    class HSwish(nn.Module):
        def forward(self, x):
            return x * (F.relu6(x + 3.0) / 6.0)

    src = onnx.load(str(MODELS / "mbv3_small_digits.onnx"))
    state = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in src.graph.initializer}
    model = t.MobileNetV3Small()
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise SystemExit(f"weights missing from the committed model: {missing[:5]}")
    model.load_state_dict({k: state.get(k, v) for k, v in own.items()})

    def swap(mod: nn.Module) -> None:
        for name, child in mod.named_children():
            if isinstance(child, nn.Hardswish):
                setattr(mod, name, HSwish())
            elif isinstance(child, nn.Hardsigmoid):
                setattr(mod, name, HSigmoid())
            else:
                swap(child)

    swap(model)
    model.eval()
    big = resize(np.load(MODELS / "digits96_calib.npz")["input"], size)
    proto = t.export_onnx(model, out, big[:1], "dynamo")
    macs = t.count_macs(model, (3, size, size))["total"]
    if calib_out is None:
        calib_out = out.with_name(out.stem + "_calib.npz")
    np.savez(calib_out, input=big)
    return {"path": str(out), "calib": str(calib_out), "nodes": len(proto.graph.node), "macs": int(macs),
            "size": size}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=120)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    info = build(args.size, args.out)
    print(f"{info['path']}: {info['nodes']} nodes, {info['macs'] / 1e6:.2f} M MACs at {args.size}x{args.size}; "
          f"calibration data {info['calib']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
