#!/usr/bin/env python3
# Writes the small ONNX fixtures of test/fixtures/onnx/ with PyTorch's exporter (Debian's python3-torch; run it with
# the system python: /usr/bin/python3 scripts/onnx-fixtures.py). Each fixture is NAME.onnx (random weights from a
# fixed seed, batch norm kept as BatchNormalization nodes), NAME.input.npy (a batch of inputs, float32 [N, C, H, W])
# and NAME.logits.npy (PyTorch's eval-mode output on them): the importer's tests compare against both the logits and
# onnxruntime. Rerunning it rewrites the same networks (the seed is fixed); the bytes may differ between torch versions.
import os
import sys

import numpy as np
import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "onnx")


class LeNet(nn.Module):
    """conv-tanh-maxpool twice, asymmetric padding on the second conv, then two linear layers."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 5, padding=2)
        self.c2 = nn.Conv2d(4, 6, 3, stride=1)
        self.f1 = nn.Linear(6 * 2 * 2, 12)
        self.f2 = nn.Linear(12, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.tanh(self.c1(x)), 2)
        x = nn.functional.pad(x, (0, 1, 0, 1))  # asymmetric pads (right, bottom)
        x = nn.functional.max_pool2d(torch.relu(self.c2(x)), 2)
        x = torch.flatten(x, 1)
        return self.f2(nn.functional.leaky_relu(self.f1(x), 0.1))


class GeluMlp(nn.Module):
    """flatten, linear-GELU (the exporter's Erf pattern), linear-SiLU (Sigmoid * x), linear; dropout."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(1 * 8 * 8, 16)
        self.l2 = nn.Linear(16, 12)
        self.l3 = nn.Linear(12, 5)
        self.drop = nn.Dropout(0.25)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        x = self.drop(nn.functional.gelu(self.l1(x)))
        x = nn.functional.silu(self.l2(x))
        return self.l3(x)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResBn(nn.Module):
    """a stem, an identity block and a block with a strided 1x1 shortcut, global average pool, linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.b1 = Block(4, 4, 1)
        self.b2 = Block(4, 8, 2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = self.b2(self.b1(x))
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class Depthwise(nn.Module):
    """a depthwise-separable block: 3x3 depthwise conv (groups = channels), BN, ReLU, 1x1 pointwise conv; avg pool."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.pw = nn.Conv2d(6, 8, 1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = self.pw(torch.relu(self.bn(self.dw(x))))
        x = nn.functional.avg_pool2d(x, 2)
        return self.fc(x.flatten(1))


class Fmnist(nn.Module):
    """a small net on Fashion-MNIST's 28x28 images: two strided convs (the second with BN), global pool, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


FIXTURES = {
    "lenet": (LeNet, (1, 12, 12)),
    "gelu-mlp": (GeluMlp, (1, 8, 8)),
    "resbn": (ResBn, (3, 8, 8)),
    "depthwise": (Depthwise, (3, 8, 8)),
    "fmnist": (Fmnist, (1, 28, 28)),
}


def randomize_bn(m):
    """Running statistics and affine parameters away from their defaults, so that they matter."""
    g = torch.Generator().manual_seed(7)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
            mod.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(c, generator=g) * 0.2)


def main(names):
    os.makedirs(OUT, exist_ok=True)
    for name in names or FIXTURES:
        cls, shape = FIXTURES[name]
        torch.manual_seed(1)
        m = cls()
        randomize_bn(m)
        m.eval()
        x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            y = m(x)
        path = os.path.join(OUT, f"{name}.onnx")
        torch.onnx.export(
            m,
            x,
            path,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=False,
            training=torch.onnx.TrainingMode.PRESERVE,
            opset_version=13,
        )
        np.save(os.path.join(OUT, f"{name}.input.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(OUT, f"{name}.logits.npy"), y.numpy().astype(np.float32))
        n = sum(p.numel() for p in m.parameters())
        print(f"{path}: {n} parameters, input {list(x.shape)}, logits {list(y.shape)}")


if __name__ == "__main__":
    main(sys.argv[1:])
