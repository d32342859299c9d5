#!/usr/bin/env python3
"""Train qcc's small reference models on scikit-learn's digits and export them to ONNX.

The compiler needs real trained networks (not random weights) so that
quantization error shows up as an accuracy drop that can be measured. The
digits set ships inside scikit-learn, so this runs offline on a CPU in a few
minutes and is reproducible bit for bit on the same torch build.

Usage:
    python tools/train_models.py --out models [--epochs 30] [--seed 0]

Writes to --out:
    mbv3_digits.onnx, resnet_digits.onnx, lenet_digits.onnx
    digits_calib.npz   100 training images for calibration ("input", "label")
    digits_test.npz    held-out images ("input", "label")
    accuracy.json      onnxruntime float accuracy on digits_test.npz
    README.md

Tools-only dependencies: torch, onnxscript (for torch's ONNX exporter),
scikit-learn, onnx, onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 0
OPSET = 18  # torch's exporter emits opset 18 natively; asking for another one adds a lossy version conversion
N_TEST = 360
N_CALIB = 100
IMAGE_SIZE = 32
# The digits pixels are integers 0..16.
PIXEL_MAX = 16.0
ORT_ATOL = 1e-4


def set_determinism(seed: int) -> None:
    # Thread count changes the reduction order of float sums, so it is part of
    # what makes two runs produce the same weights.
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    torch.use_deterministic_algorithms(True)


# --------------------------------------------------------------------------- data


def load_data(seed: int) -> dict[str, np.ndarray | float]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32) / PIXEL_MAX  # [1797, 8, 8] in [0, 1]
    labels = digits.target.astype(np.int64)

    # Stratified so every class is equally represented in test and calibration.
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        idx, test_size=N_TEST, random_state=seed, stratify=labels
    )
    # Calibration is a subset of training data: it stands in for the
    # "representative unlabelled inputs" a deployment would have, and must not
    # leak test images into the quantizer.
    _, calib_idx = train_test_split(
        train_idx, test_size=N_CALIB, random_state=seed, stratify=labels[train_idx]
    )
    calib_idx = np.sort(calib_idx)
    test_idx = np.sort(test_idx)
    train_idx = np.sort(train_idx)

    with torch.no_grad():
        up = F.interpolate(
            torch.from_numpy(images)[:, None],
            size=(IMAGE_SIZE, IMAGE_SIZE),
            mode="bilinear",
            align_corners=False,
        ).numpy()

    # A single scalar mean (not per-pixel) keeps the preprocessing trivial to
    # reproduce on the target: x = pixel/16 - mean.  Range stays ~1 wide.
    mean = round(float(up[train_idx].mean()), 4)
    up = (up - np.float32(mean)).astype(np.float32)

    return {
        "x_train": up[train_idx],
        "y_train": labels[train_idx],
        "x_calib": up[calib_idx],
        "y_calib": labels[calib_idx],
        "x_test": up[test_idx],
        "y_test": labels[test_idx],
        "mean": mean,
    }


def augment(x: torch.Tensor, gen: torch.Generator, max_shift: int = 3) -> torch.Tensor:
    # Only 1437 training images: small random translations are what lets the
    # bigger nets generalise instead of memorising.  Integer shifts via
    # pad+crop keep this cheap and exactly reproducible.
    n = x.shape[0]
    pad = F.pad(x, (max_shift,) * 4, value=float(x.min()))
    shifts = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
        out[i] = pad[i, :, dy : dy + IMAGE_SIZE, dx : dx + IMAGE_SIZE]
    return out


# --------------------------------------------------------------------------- models


def _make_divisible(v: float, divisor: int = 8) -> int:
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        squeezed = _make_divisible(channels / 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.relu = nn.ReLU(inplace=False)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        s = self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))
        return x * s


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, expand: int, cout: int, use_se: bool, use_hs: bool, stride: int):
        super().__init__()
        act = nn.Hardswish if use_hs else nn.ReLU6
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = [
            nn.Conv2d(cin, expand, 1, bias=False),
            nn.BatchNorm2d(expand),
            act(),
            nn.Conv2d(expand, expand, 3, stride, 1, groups=expand, bias=False),
            nn.BatchNorm2d(expand),
            act(),
        ]
        if use_se:
            layers.append(SqueezeExcite(expand))
        layers += [nn.Conv2d(expand, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetV3Digits(nn.Module):
    # (expand, out, SE, hard-swish, stride): a scaled-down MobileNetV3-Small
    # schedule so every op pattern of the real network appears, incl. both
    # activations, SE with and without residual, and residual without SE.
    CFG = [
        (32, 16, False, False, 1),  # 32x32
        (48, 24, False, False, 2),  # -> 16x16
        (72, 24, False, False, 1),
        (72, 32, True, True, 2),  # -> 8x8
        (96, 32, True, True, 1),
        (128, 48, True, True, 2),  # -> 4x4
        (144, 48, True, True, 1),
    ]

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish()
        )
        blocks, cin = [], 16
        for expand, cout, se, hs, stride in self.CFG:
            blocks.append(InvertedResidual(cin, expand, cout, se, hs, stride))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Conv2d(cin, 128, 1, bias=False), nn.BatchNorm2d(128), nn.Hardswish()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + identity)


class ResNetDigits(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 32 -> 16
        )
        self.layer1 = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32, 1))  # -> 8
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2), BasicBlock(64, 64, 1))  # -> 4
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class LeNetDigits(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5),  # 32 -> 28
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 14
            nn.Conv2d(6, 16, 5),  # -> 10
            nn.ReLU(),
            # Average pooling here (as in the original LeNet-5) so the model
            # covers both pooling kinds.
            nn.AvgPool2d(2),  # -> 5
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


MODELS = {
    "mbv3_digits": (MobileNetV3Digits, dict(lr=3e-3, weight_decay=1e-4)),
    "resnet_digits": (ResNetDigits, dict(lr=2e-3, weight_decay=1e-4)),
    "lenet_digits": (LeNetDigits, dict(lr=2e-3, weight_decay=1e-4)),
}


# --------------------------------------------------------------------------- training


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    return float((logits.argmax(1) == y).mean()), logits


def train(name: str, data: dict, epochs: int, seed: int, batch_size: int = 64) -> nn.Module:
    cls, hp = MODELS[name]
    # Re-seed per model so each model's weights do not depend on which models
    # were trained before it.
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = cls()
    x_train = torch.from_numpy(data["x_train"])
    y_train = torch.from_numpy(data["y_train"])
    n = len(y_train)
    steps = epochs * ((n + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    # One-cycle gives good accuracy in few epochs without a tuned LR schedule.
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["lr"], total_steps=steps)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total_loss = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            # A trailing batch of 1 would break BatchNorm's batch statistics.
            if len(idx) < 2:
                continue
            xb = augment(x_train[idx], gen)
            loss = F.cross_entropy(model(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
        if epoch == epochs - 1 or (epoch + 1) % 5 == 0:
            acc, _ = evaluate(model, data["x_test"], data["y_test"])
            print(
                f"  [{name}] epoch {epoch + 1:3d}/{epochs} loss {total_loss / n:.4f} "
                f"test acc {acc:.4f} ({time.time() - t0:.0f}s)",
                flush=True,
            )
    model.eval()
    return model


# --------------------------------------------------------------------------- export


def export_onnx(model: nn.Module, path: Path, example: np.ndarray) -> "onnx.ModelProto":
    import onnx

    model.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        model,
        (torch.from_numpy(example),),
        None,
        input_names=["input"],
        output_names=["logits"],
        opset_version=OPSET,
        dynamo=True,
        dynamic_shapes=({0: batch},),
        external_data=False,
        verbose=False,
    )
    proto = program.model_proto
    # The exporter records Python stack traces and module paths per node.
    # They embed this machine's file paths, so dropping them makes the file
    # identical wherever it is regenerated; graph semantics are untouched.
    graph = proto.graph
    for item in [*graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        del item.metadata_props[:]
        item.doc_string = ""
    del proto.metadata_props[:]
    proto.doc_string = ""
    proto.graph.doc_string = ""
    # The exporter names the symbolic dimension after the torch.export
    # symbol; give input and output one stable, readable name.
    for vi in list(proto.graph.input) + list(proto.graph.output):
        dim0 = vi.type.tensor_type.shape.dim[0]
        if not dim0.HasField("dim_value"):
            dim0.dim_param = "batch"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return proto


def check_onnxruntime(model: nn.Module, path: Path, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    ort_logits = sess.run(["logits"], {"input": x})[0]
    _, torch_logits = evaluate(model, x, y)
    err = float(np.abs(ort_logits - torch_logits).max())
    if err > ORT_ATOL:
        raise RuntimeError(f"{path.name}: onnxruntime differs from torch by {err:.2e}")
    # Batch 1 as well, to prove the batch dimension really is dynamic.
    one = sess.run(["logits"], {"input": x[:1]})[0]
    assert one.shape == (1, 10) and np.abs(one - torch_logits[:1]).max() <= ORT_ATOL
    print(f"  [{path.stem}] onnxruntime vs torch max abs diff {err:.2e}")
    return float((ort_logits.argmax(1) == y).mean())


# --------------------------------------------------------------------------- main


def write_readme(out: Path, report: dict) -> None:
    acc = report["models"]
    # Nobody folds BatchNorm by hand here; say what torch's exporter actually did.
    if all(info["batchnorm_nodes"] == 0 for info in acc.values()):
        bn_note = "torch's exporter (its default optimize pass) folded BatchNorm into the preceding Conv."
    else:
        bn_note = "BatchNorm is kept as BatchNormalization nodes, as torch's exporter emitted it."
    lines = [
        "# qcc reference models",
        "",
        "Small real models trained on scikit-learn's bundled handwritten digits",
        "(8x8 upsampled bilinearly to 32x32). Regenerate with",
        "`python tools/train_models.py --out models` "
        f"(seed {report['seed']}, {report['epochs']} epochs, torch {report['torch_version']}).",
        "",
        "Input `input` is float32 `[batch, 1, 32, 32]`, `x = pixel / 16 - "
        f"{report['preprocessing']['mean']}`; output `logits` is `[batch, 10]`. "
        f"ONNX opset {report['opset']}, IR {report['ir_version']}, batch dimension `batch`. "
        + bn_note,
        "",
        "| file | what | float test accuracy (onnxruntime) |",
        "|---|---|---|",
    ]
    desc = {
        "mbv3_digits": "MobileNetV3-like: inverted residuals, depthwise conv, SE, hard-swish/ReLU6",
        "resnet_digits": "ResNet-like: basic blocks, identity and 1x1-downsample shortcuts, maxpool",
        "lenet_digits": "LeNet-5-like: 5x5 convs, max/avg pool, three Gemm layers",
    }
    for name, info in acc.items():
        lines.append(f"| `{name}.onnx` | {desc[name]} | {info['test_accuracy']:.4f} |")
    lines += [
        f"| `digits_calib.npz` | {report['n_calib']} training images for calibration: `input` f32 [N,1,32,32], `label` i64 [N] | |",
        f"| `digits_test.npz` | {report['n_test']} held-out test images, disjoint from training: `input`, `label` | |",
        "| `accuracy.json` | the accuracies above plus torch version, opset, seed | |",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models", type=Path, help="output directory")
    ap.add_argument("--epochs", default=30, type=int, help="training epochs per model")
    ap.add_argument("--seed", default=SEED, type=int)
    args = ap.parse_args(argv)

    set_determinism(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    data = load_data(args.seed)
    # Compressed (4x smaller, since upsampled images are smooth); np.load reads it the same way.
    np.savez_compressed(args.out / "digits_calib.npz", input=data["x_calib"], label=data["y_calib"])
    np.savez_compressed(args.out / "digits_test.npz", input=data["x_test"], label=data["y_test"])
    print(
        f"data: train {len(data['y_train'])}, calib {len(data['y_calib'])}, "
        f"test {len(data['y_test'])}, mean {data['mean']}"
    )

    report = {
        "torch_version": torch.__version__,
        "opset": OPSET,
        "ir_version": None,  # filled in from the first export
        "seed": args.seed,
        "epochs": args.epochs,
        "n_test": int(len(data["y_test"])),
        "n_calib": int(len(data["y_calib"])),
        "preprocessing": {
            "resize": "bilinear 8x8 -> 32x32, align_corners=False",
            "formula": "x = pixel / 16 - mean",
            "mean": data["mean"],
        },
        "models": {},
    }
    for name in MODELS:
        t0 = time.time()
        model = train(name, data, args.epochs, args.seed)
        train_s = time.time() - t0
        path = args.out / f"{name}.onnx"
        proto = export_onnx(model, path, data["x_calib"][:2])
        report["ir_version"] = int(proto.ir_version)
        acc = check_onnxruntime(model, path, data["x_test"], data["y_test"])
        report["models"][name] = {
            "test_accuracy": acc,
            "params": int(sum(p.numel() for p in model.parameters())),
            "onnx_nodes": len(proto.graph.node),
            "batchnorm_nodes": sum(n.op_type == "BatchNormalization" for n in proto.graph.node),
        }
        print(
            f"  [{name}] onnxruntime test accuracy {acc:.4f}, "
            f"{path.stat().st_size} bytes, trained in {train_s:.0f}s"
        )

    (args.out / "accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
    write_readme(args.out, report)
    print(f"total {time.time() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
