#!/usr/bin/env python3
"""Train a full MobileNetV3-Small on scikit-learn's digits (3x96x96) and export it to ONNX.

The models of tools/train_models.py are deliberately tiny. This one is the real
MobileNetV3-Small of Howard et al. 2019 ("Searching for MobileNetV3", Table 2),
so that a full quantizing compile can be benchmarked on a network of realistic
size and structure:

    stem    conv 3x3, 16, hard-swish, stride 2, BN
    bneck   11 blocks (kernel, expansion, out, SE, activation, stride) as in Table 2
    head    conv 1x1, 576, hard-swish, BN; global average pool
    classifier  Linear 576->256, hard-swish, Dropout 0.2, Linear 256->10 (the paper: 1024 hidden)

The SE blocks squeeze to make_divisible(expansion/4, 8) channels with ReLU and
hard-sigmoid, as in the reference implementations (TF-Slim, torchvision); like
them, the 576-channel head conv has no SE.

Data: the 8x8 digits are upsampled bilinearly to 96x96, lightly colorized (a
fixed random per-image RGB tint in [0.7, 1.0]) and rounded to 8-bit pixels, like
an ordinary RGB image. The split is the one of tools/train_models.py (same seed,
same 360 stratified test images); the 100 calibration images are a subset of
the training images, never test images.

Usage:
    python tools/train_mbv3_small.py --out models [--epochs 20] [--seed 0] [--size 96]
                                     [--exporter torchscript|dynamo]

Writes to --out:
    mbv3_small_digits.onnx
    digits96_calib.npz   100 training images for calibration ("input", "label")
    digits96_test.npz    360 held-out images ("input", "label")
    accuracy.json        adds/replaces the "mbv3_small_digits" entry under "models",
                         keeping everything else in the file

BatchNorm stays as BatchNormalization nodes with both exporters (see
export_onnx). With torch 2.13 the default, --exporter torchscript, gives 156
nodes for this net; --exporter dynamo (optimize=False) gives 355, most of the
extra ones being the zero-bias subgraph (Shape, Constant, CastLike, 2x Expand)
that the unoptimized dynamo export builds for each of the 34 bias-less convs.

Tools-only dependencies: torch, onnxscript (for torch's dynamo exporter),
scikit-learn, onnx, onnxruntime.
"""

from __future__ import annotations

import argparse
import collections
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

NAME = "mbv3_small_digits"
SEED = 0
OPSET = 18
N_TEST = 360  # same split sizes as tools/train_models.py
N_CALIB = 100
IMAGE_SIZE = 96
PIXEL_MAX = 16.0  # digits pixels are integers 0..16
TINT_RANGE = (0.7, 1.0)
ORT_ATOL = 1e-4
NUM_CLASSES = 10


def set_determinism(seed: int) -> None:
    # Thread count changes the reduction order of float sums, so it is part of
    # what makes two runs produce the same weights.
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    torch.use_deterministic_algorithms(True)


# --------------------------------------------------------------------------- data


def load_data(seed: int, size: int) -> dict:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32) / PIXEL_MAX  # [1797, 8, 8] in [0, 1]
    labels = digits.target.astype(np.int64)

    # Exactly the split of tools/train_models.py: stratified test set, and the
    # calibration set drawn from the training images only.
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(idx, test_size=N_TEST, random_state=seed, stratify=labels)
    _, calib_idx = train_test_split(
        train_idx, test_size=N_CALIB, random_state=seed, stratify=labels[train_idx]
    )
    train_idx, test_idx, calib_idx = np.sort(train_idx), np.sort(test_idx), np.sort(calib_idx)
    assert not set(calib_idx) & set(test_idx)

    with torch.no_grad():
        up = F.interpolate(
            torch.from_numpy(images)[:, None], size=(size, size), mode="bilinear", align_corners=False
        ).numpy()  # [N, 1, size, size] in [0, 1]

    # Light colorization: each image gets its own fixed RGB tint, drawn once
    # for the whole data set in data-set order, so the three input channels
    # differ (the stem conv sees real colour) while the digit stays obvious.
    tint = np.random.default_rng(seed).uniform(*TINT_RANGE, size=(len(labels), 3, 1, 1))
    # 8-bit pixels as in any RGB image; also makes the .npz files 3x smaller.
    pixels = np.clip(np.round(up * tint * 255.0), 0, 255).astype(np.float32)  # [N, 3, size, size]

    x = pixels / np.float32(255.0)
    # A single scalar mean (not per pixel or channel) keeps the preprocessing
    # trivial to reproduce: x = pixel / 255 - mean.
    mean = round(float(x[train_idx].mean()), 4)
    x = (x - np.float32(mean)).astype(np.float32)

    return {
        "x_train": x[train_idx],
        "y_train": labels[train_idx],
        "x_calib": x[calib_idx],
        "y_calib": labels[calib_idx],
        "x_test": x[test_idx],
        "y_test": labels[test_idx],
        "mean": mean,
        "background": float(-np.float32(mean)),
    }


def augment(x: torch.Tensor, gen: torch.Generator, background: float, max_shift: int) -> torch.Tensor:
    # Random integer translations (pad with the background value, then crop):
    # with only 1437 training images they are what makes the net generalise.
    n, _, h, w = x.shape
    pad = F.pad(x, (max_shift,) * 4, value=background)
    shifts = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
        out[i] = pad[i, :, dy : dy + h, dx : dx + w]
    return out


# --------------------------------------------------------------------------- model


def make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # do not round down by more than 10%
        new_v += divisor
    return new_v


BN_EPS = 1e-3  # as in the reference implementations


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        squeezed = make_divisible(channels // 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


def conv_bn_act(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act=None) -> list[nn.Module]:
    layers = [
        nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=BN_EPS),
    ]
    if act is not None:
        layers.append(act())
    return layers


class Bneck(nn.Module):
    """Inverted residual: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project, + residual."""

    def __init__(self, cin: int, k: int, expand: int, cout: int, use_se: bool, use_hs: bool, stride: int):
        super().__init__()
        act = nn.Hardswish if use_hs else nn.ReLU
        layers: list[nn.Module] = []
        if expand != cin:
            layers += conv_bn_act(cin, expand, 1, act=act)
        layers += conv_bn_act(expand, expand, k, stride, groups=expand, act=act)
        if use_se:
            layers.append(SqueezeExcite(expand))
        layers += conv_bn_act(expand, cout, 1)
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


# The paper's classifier has 1024 hidden units; 256 keeps the committed .onnx under
# 5 MB (1.08M instead of 1.53M parameters) and costs 0.45M of 11M MACs less.
CLASSIFIER_HIDDEN = 256


class MobileNetV3Small(nn.Module):
    # Table 2 of Howard et al. 2019:
    # (kernel, expansion size, out channels, SE, hard-swish (else ReLU), stride)
    CFG = [
        (3, 16, 16, True, False, 2),
        (3, 72, 24, False, False, 2),
        (3, 88, 24, False, False, 1),
        (5, 96, 40, True, True, 2),
        (5, 240, 40, True, True, 1),
        (5, 240, 40, True, True, 1),
        (5, 120, 48, True, True, 1),
        (5, 144, 48, True, True, 1),
        (5, 288, 96, True, True, 2),
        (5, 576, 96, True, True, 1),
        (5, 576, 96, True, True, 1),
    ]

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3, hidden: int = CLASSIFIER_HIDDEN):
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(*conv_bn_act(in_channels, 16, 3, 2, act=nn.Hardswish))]
        cin = 16
        for k, e, cout, se, hs, s in self.CFG:
            layers.append(Bneck(cin, k, e, cout, se, hs, s))
            cin = cout
        layers.append(nn.Sequential(*conv_bn_act(cin, 576, 1, act=nn.Hardswish)))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(576, hidden), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(hidden, num_classes)
        )
        # Initialisation of the reference implementations.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def count_macs(model: nn.Module, shape: tuple[int, ...]) -> dict[str, int]:
    """Multiply-accumulates of one image: Conv and Linear only (the usual
    convention, as in the paper's 56M for 224x224); element-wise work of SE
    scaling, activations, BN and pooling is reported separately as a count of
    output elements."""
    macs = collections.Counter()

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            kind = "depthwise" if mod.groups > 1 else "conv"
            k = mod.kernel_size[0] * mod.kernel_size[1]
            macs[kind] += out[0].numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            macs["linear"] += mod.in_features * mod.out_features
        elif isinstance(mod, (nn.BatchNorm2d, nn.Hardswish, nn.ReLU, nn.Hardsigmoid)):
            macs["elementwise_outputs"] += out[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    model.train(was_training)
    for h in handles:
        h.remove()
    macs["total"] = macs["conv"] + macs["depthwise"] + macs["linear"]
    return dict(macs)


# --------------------------------------------------------------------------- training


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 120) -> tuple[float, np.ndarray]:
    model.eval()
    with torch.no_grad():
        logits = np.concatenate(
            [model(torch.from_numpy(x[i : i + batch])).numpy() for i in range(0, len(x), batch)]
        )
    return float((logits.argmax(1) == y).mean()), logits


def train(data: dict, epochs: int, seed: int, size: int, batch_size: int = 64, lr: float = 3e-3) -> nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = MobileNetV3Small()
    x_train = torch.from_numpy(data["x_train"])
    y_train = torch.from_numpy(data["y_train"])
    n = len(y_train)
    steps = epochs * ((n + batch_size - 1) // batch_size)
    # Shifts up to ~10% of the width, as the 3 px at 32x32 of train_models.py.
    max_shift = max(1, round(size * 3 / 32))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total_loss, correct = 0.0, 0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            if len(idx) < 2:  # a batch of 1 would break BatchNorm's batch statistics
                continue
            xb = augment(x_train[idx], gen, data["background"], max_shift)
            logits = model(xb)
            loss = F.cross_entropy(logits, y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y_train[idx]).sum())
        acc, _ = evaluate(model, data["x_test"], data["y_test"])
        print(
            f"  epoch {epoch + 1:3d}/{epochs} loss {total_loss / n:.4f} train acc {correct / n:.4f} "
            f"test acc {acc:.4f} ({time.time() - t0:.0f}s)",
            flush=True,
        )
    model.eval()
    return model


# --------------------------------------------------------------------------- export


def export_onnx(model: nn.Module, path: Path, example: np.ndarray, exporter: str) -> "onnx.ModelProto":
    """Export with BatchNormalization kept as separate nodes.

    torchscript: torch.onnx.export(dynamo=False, training=PRESERVE). With the
        model in eval mode PRESERVE exports eval semantics, but skips the eval
        peephole pass that fuses BatchNorm into the preceding Conv.
    dynamo: torch.onnx.export(dynamo=True, optimize=False): the raw output of
        torch.export + onnxscript, before its optimizer (which would fold BN and
        the zero-bias subgraphs it builds for bias-less convolutions).
    """
    import onnx

    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                model,
                (torch.from_numpy(example),),
                str(path),
                input_names=["input"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamo=False,
                training=torch.onnx.TrainingMode.PRESERVE,
                do_constant_folding=True,
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
            proto = onnx.load(str(path))
        else:
            batch = torch.export.Dim("batch", min=1, max=4096)
            program = torch.onnx.export(
                model,
                (torch.from_numpy(example),),
                None,
                input_names=["input"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamo=True,
                optimize=False,
                dynamic_shapes=({0: batch},),
                external_data=False,
                verbose=False,
            )
            proto = program.model_proto
    # Exporters record stack traces / module paths that embed this machine's
    # file paths; dropping them makes the file identical wherever it is
    # regenerated. Graph semantics are untouched.
    graph = proto.graph
    for item in [*graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        del item.metadata_props[:]
        item.doc_string = ""
    del proto.metadata_props[:]
    proto.doc_string = ""
    graph.doc_string = ""
    for vi in list(graph.input) + list(graph.output):
        dim0 = vi.type.tensor_type.shape.dim[0]
        if not dim0.HasField("dim_value"):
            dim0.dim_param = "batch"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return proto


def check_onnxruntime(model: nn.Module, path: Path, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    ort_logits = sess.run(["logits"], {"input": x})[0]
    torch_acc, torch_logits = evaluate(model, x, y)
    err = float(np.abs(ort_logits - torch_logits).max())
    if err > ORT_ATOL:
        raise RuntimeError(f"{path.name}: onnxruntime differs from torch by {err:.2e}")
    one = sess.run(["logits"], {"input": x[:1]})[0]  # the batch dimension really is dynamic
    assert one.shape == (1, NUM_CLASSES) and np.abs(one - torch_logits[:1]).max() <= ORT_ATOL
    ort_acc = float((ort_logits.argmax(1) == y).mean())
    if ort_acc != torch_acc:
        raise RuntimeError(f"onnxruntime accuracy {ort_acc} != torch accuracy {torch_acc}")
    return ort_acc, torch_acc, err


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models", type=Path, help="output directory")
    ap.add_argument("--epochs", default=20, type=int)
    ap.add_argument("--seed", default=SEED, type=int)
    ap.add_argument("--size", default=IMAGE_SIZE, type=int, help="input height and width")
    ap.add_argument("--exporter", default="torchscript", choices=("torchscript", "dynamo"))
    args = ap.parse_args(argv)

    set_determinism(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    shape = (3, args.size, args.size)

    probe = MobileNetV3Small()
    macs = count_macs(probe, shape)
    params = sum(p.numel() for p in probe.parameters())
    ref = count_macs(MobileNetV3Small(num_classes=1000), (3, 224, 224))["total"]
    print(
        f"MobileNetV3-Small {shape}: {macs['total']:,} MACs/image "
        f"(conv 1x1/stem {macs['conv']:,}, depthwise {macs['depthwise']:,}, linear {macs['linear']:,}), "
        f"{params:,} params; same net at 3x224x224 with 1000 classes: {ref / 1e6:.1f}M MACs (paper: 56M)",
        flush=True,
    )
    del probe

    data = load_data(args.seed, args.size)
    tag = f"digits{args.size}"
    np.savez_compressed(args.out / f"{tag}_calib.npz", input=data["x_calib"], label=data["y_calib"])
    # The test split as its 8-bit pixels (3.8 MB instead of 6.6 MB as float32); the model input
    # is x = pixels / 255 - mean in float32, exactly as computed above (tests/conftest.py).
    pixels = np.round((data["x_test"] + np.float32(data["mean"])) * 255.0).astype(np.uint8)
    assert np.array_equal(pixels.astype(np.float32) / np.float32(255.0) - np.float32(data["mean"]), data["x_test"])
    np.savez_compressed(args.out / f"{tag}_test.npz", pixels=pixels, label=data["y_test"],
                        mean=np.float32(data["mean"]))
    print(
        f"data: train {len(data['y_train'])}, calib {len(data['y_calib'])} (from train), "
        f"test {len(data['y_test'])}, mean {data['mean']}",
        flush=True,
    )

    t0 = time.time()
    model = train(data, args.epochs, args.seed, args.size)
    train_s = time.time() - t0
    print(f"trained in {train_s:.0f}s", flush=True)

    path = args.out / f"{NAME}.onnx"
    proto = export_onnx(model, path, data["x_calib"][:2], args.exporter)
    hist = collections.Counter(n.op_type for n in proto.graph.node)
    ort_acc, torch_acc, err = check_onnxruntime(model, path, data["x_test"], data["y_test"])
    print(
        f"onnx: {len(proto.graph.node)} nodes, {hist['BatchNormalization']} BatchNormalization, "
        f"opset {OPSET}, {path.stat().st_size:,} bytes\n  ops: {dict(hist.most_common())}\n"
        f"test accuracy torch {torch_acc:.4f}, onnxruntime {ort_acc:.4f} "
        f"(max abs logit diff {err:.2e})",
        flush=True,
    )

    acc_path = args.out / "accuracy.json"
    report = json.loads(acc_path.read_text()) if acc_path.exists() else {"models": {}}
    report.setdefault("models", {})[NAME] = {
        "test_accuracy": ort_acc,
        "params": int(params),
        "macs_per_image": int(macs["total"]),
        "onnx_nodes": len(proto.graph.node),
        "batchnorm_nodes": int(hist["BatchNormalization"]),
        "opset": OPSET,
        "exporter": args.exporter,
        "input_shape": ["batch", *shape],
        "test_data": f"{tag}_test.npz",
        "calib_data": f"{tag}_calib.npz",
        "seed": args.seed,
        "epochs": args.epochs,
        "torch_version": torch.__version__,
        "preprocessing": {
            "resize": f"bilinear 8x8 -> {args.size}x{args.size}, align_corners=False",
            "colour": f"per-image RGB tint uniform{TINT_RANGE} (numpy default_rng(seed)), "
            "rounded to 8-bit pixels",
            "formula": "x = pixel / 255 - mean",
            "mean": data["mean"],
        },
    }
    acc_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"total {time.time() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
