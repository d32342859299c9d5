"""Writes tests/filecheck/inputs/torch_activations.onnx: hard-swish, hard-sigmoid and
SiLU as PyTorch's exporter writes them out (x * relu6(x + 3) / 6, relu6(x + 3) / 6,
x * sigmoid(x), x * (relu6(x + 3) * (1/6))) behind a Conv, for the
`recognize-activations` FileCheck test and tests/test_fusion.py. torch is needed
only here, never at test time.

    python tools/make_activation_models.py
"""

import pathlib
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "filecheck" / "inputs" / "torch_activations.onnx"


class Activations(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        hswish = y * F.relu6(y + 3) / 6
        hsigmoid = F.relu6(hswish + 3) / 6
        silu = hswish * torch.sigmoid(hswish)
        hswish2 = silu * (F.relu6(silu + 3) * (1 / 6))
        return hsigmoid + hswish2


def main() -> None:
    torch.manual_seed(0)
    m = Activations().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, 2, 8, 8),), str(OUT), opset_version=18, input_names=["x"],
                          output_names=["y"], dynamo=False)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
