#!/usr/bin/env python3
"""Train a MobileNetV2 (Sandler et al. 2018) on scikit-learn's digits at 3x160x160; export to ONNX.

The benchmark model of patch-based inference (tools/bench_patch.py): the real
MobileNetV2 topology of the paper's Table 2 with a width multiplier,

    stem    conv 3x3, 32*w, stride 2, BN, ReLU6
    blocks  inverted residuals (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2)
            (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1): 1x1 expand (t=6),
            3x3 depthwise, 1x1 linear projection, residual when stride 1 and
            cin == cout
    head    conv 1x1, --last-channel, BN, ReLU6; global average pool; Linear -> 10

Channels are make_divisible(c*w, 8) as in the reference implementations. The
paper's head is 1280 wide; --last-channel (default 640) keeps the file small.

Data: the 8x8 digits upsampled bilinearly to SIZE x SIZE with a fixed random
per-image RGB tint, rounded to 8-bit pixels, x = pixel / 255 - MEAN (the
preprocessing of tools/train_mbv3_small.py; the split is the same seed-0
stratified split of tools/train_models.py: 360 test images, 100 calibration
images drawn from the training set). Images are upsampled per batch, never
held at full resolution all at once; `split_arrays(name, size)` rebuilds any
split for benchmarks, so no 160x160 data set is committed.

Usage:
    python tools/train_mbv2.py --out models [--epochs 6] [--width 0.35] [--size 160] [--train-size 160]

--train-size lets the net train at a lower resolution than --size (it is fully
convolutional up to the global pool); the default trains at 160 directly.
Writes --out/mbv2_digits.onnx and adds its entry to --out/accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NAME = "mbv2_digits"
SEED = 0
OPSET = 18
N_TEST = 360
N_CALIB = 100
SIZE = 160
MEAN = 0.2596  # the scalar mean of tools/train_mbv3_small.py (same tinted pixels)
TINT_RANGE = (0.7, 1.0)
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1)]


def make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# --------------------------------------------------------------------------- data


def _digits(seed: int = SEED):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = d.images.astype(np.float32) / 16.0
    labels = d.target.astype(np.int64)
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(idx, test_size=N_TEST, random_state=seed, stratify=labels)
    _, calib_idx = train_test_split(train_idx, test_size=N_CALIB, random_state=seed, stratify=labels[train_idx])
    tint = np.random.default_rng(seed).uniform(*TINT_RANGE, size=(len(labels), 3, 1, 1)).astype(np.float32)
    return images, labels, tint, {"train": np.sort(train_idx), "test": np.sort(test_idx),
                                  "calib": np.sort(calib_idx)}


def render(images: np.ndarray, tint: np.ndarray, size: int) -> np.ndarray:
    """8x8 digits -> model inputs [N, 3, size, size] float32."""
    with torch.no_grad():
        up = F.interpolate(torch.from_numpy(images)[:, None], size=(size, size), mode="bilinear",
                           align_corners=False).numpy()
    pixels = np.clip(np.round(up * tint * 255.0), 0, 255)
    return (pixels / np.float32(255.0) - np.float32(MEAN)).astype(np.float32)


def split_arrays(name: str, size: int = SIZE, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of the 'train', 'calib' or 'test' split at size x size."""
    images, labels, tint, splits = _digits()
    idx = splits[name][:limit]
    return render(images[idx], tint[idx], size), labels[idx]


# --------------------------------------------------------------------------- model


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> list[nn.Module]:
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6())
    return layers


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int):
        super().__init__()
        hidden = cin * t
        layers: list[nn.Module] = []
        if t != 1:
            layers += conv_bn(cin, hidden, 1)
        layers += conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += conv_bn(hidden, cout, 1, act=False)
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


class MobileNetV2(nn.Module):
    def __init__(self, width: float, last_channel: int, num_classes: int = 10):
        super().__init__()
        cin = make_divisible(32 * width)
        layers: list[nn.Module] = [*conv_bn(3, cin, 3, 2)]
        for t, c, n, s in SETTINGS:
            cout = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers += conv_bn(cin, last_channel, 1)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last_channel, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# --------------------------------------------------------------------------- training


def evaluate(model: nn.Module, images, tint, labels, size: int, batch: int = 60) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), batch):
            x = torch.from_numpy(render(images[i:i + batch], tint[i:i + batch], size))
            correct += int((model(x).argmax(1).numpy() == labels[i:i + batch]).sum())
    return correct / len(labels)


def train(width: float, last_channel: int, epochs: int, size: int, batch: int = 32, lr: float = 4e-3):
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    random.seed(SEED)
    images, labels, tint, splits = _digits()
    tr = splits["train"]
    model = MobileNetV2(width, last_channel)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(tr) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    rng = np.random.default_rng(SEED)
    for ep in range(epochs):
        model.train()
        t0 = time.time()
        perm = rng.permutation(tr)
        loss_sum = 0.0
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            # random translation by up to 1 source pixel, applied before upsampling
            shifted = np.roll(images[idx], shift=(int(rng.integers(-1, 2)), int(rng.integers(-1, 2))), axis=(1, 2))
            x = torch.from_numpy(render(shifted, tint[idx], size))
            loss = F.cross_entropy(model(x), torch.from_numpy(labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss) * len(idx)
        print(f"epoch {ep + 1}/{epochs}: loss {loss_sum / len(tr):.4f} ({time.time() - t0:.0f} s)", flush=True)
    return model, images, labels, tint, splits


def export_onnx(model: nn.Module, path: Path, size: int) -> None:
    model.eval()
    example = torch.zeros(1, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # eval-mode TorchScript export with constant folding: BatchNorm folds into the convs
        torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                          opset_version=OPSET, dynamo=False, do_constant_folding=True,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--width", type=float, default=0.35)
    ap.add_argument("--last-channel", type=int, default=640)
    ap.add_argument("--size", type=int, default=SIZE, help="input resolution of the exported model")
    ap.add_argument("--train-size", type=int, default=SIZE, help="training resolution")
    args = ap.parse_args(argv)
    out = Path(args.out)
    model, images, labels, tint, splits = train(args.width, args.last_channel, args.epochs, args.train_size)
    te = splits["test"]
    acc = evaluate(model, images[te], tint[te], labels[te], args.size)
    print(f"torch test accuracy at {args.size}x{args.size}: {acc:.4f}")
    path = out / f"{NAME}.onnx"
    export_onnx(model, path, args.size)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x, y = split_arrays("test", args.size)
    pred = np.concatenate([sess.run(None, {"input": x[i:i + 60]})[0].argmax(1) for i in range(0, len(y), 60)])
    ort_acc = float((pred == y).mean())
    print(f"onnxruntime test accuracy: {ort_acc:.4f}; {path} {path.stat().st_size / 1e6:.2f} MB")
    acc_path = out / "accuracy.json"
    doc = json.loads(acc_path.read_text()) if acc_path.exists() else {}
    doc.setdefault("models", {})[NAME] = {
        "test_accuracy_onnxruntime": round(ort_acc, 4), "width": args.width, "last_channel": args.last_channel,
        "input": [1, 3, args.size, args.size], "train_size": args.train_size, "epochs": args.epochs,
        "seed": SEED, "opset": OPSET, "torch": torch.__version__,
        "preprocessing": f"x = pixel / 255 - {MEAN} (tools/train_mbv2.py split_arrays)"}
    acc_path.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
