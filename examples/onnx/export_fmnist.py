#!/usr/bin/env python3
# The README's worked example, PyTorch side: train a small CNN with batch norm on Fashion-MNIST for one epoch,
# export it to ONNX with its batch norm kept, and write the data loss-atlas reads as npy arrays.
#
#   python3 examples/onnx/export_fmnist.py [FASHION_MNIST_DIR] [OUT_DIR]
#
# FASHION_MNIST_DIR holds the four IDX .gz files (default /usr/share/datasets/fashion-mnist); OUT_DIR (default
# runs/onnx-example) gets net.onnx, train_x.npy / train_y.npy (uint8 images [N, 1, 28, 28], int64 labels [N]) and
# test_x.npy / test_y.npy. The model was trained on images scaled to [0, 1] and normalized with mean 0.2860, std
# 0.3530: pass the same to loss-atlas with --normalize 0.2860,0.3530.
import gzip
import os
import sys

import numpy as np
import torch
import torch.nn as nn

MEAN, STD = 0.2860, 0.3530


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = int(data[3])
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join("runs", "onnx-example")
    os.makedirs(out, exist_ok=True)
    xtr = idx(os.path.join(src, "train-images-idx3-ubyte.gz"))[:, None]
    ytr = idx(os.path.join(src, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    xte = idx(os.path.join(src, "t10k-images-idx3-ubyte.gz"))[:, None]
    yte = idx(os.path.join(src, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x = (torch.from_numpy(xtr.copy()).float() / 255 - MEAN) / STD
    y = torch.from_numpy(ytr)
    net.train()
    for i in range(0, len(x), 128):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x[i : i + 128]), y[i : i + 128])
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        xt = (torch.from_numpy(xte.copy()).float() / 255 - MEAN) / STD
        acc = (net(xt).argmax(1) == torch.from_numpy(yte)).float().mean().item()
    print(f"test accuracy after one epoch: {acc:.4f}")
    # eval mode folds batch norm into the convolutions unless constant folding is off and training mode is kept
    torch.onnx.export(
        net,
        x[:2],
        os.path.join(out, "net.onnx"),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=False,
        training=torch.onnx.TrainingMode.PRESERVE,
        opset_version=13,
    )
    np.save(os.path.join(out, "train_x.npy"), np.ascontiguousarray(xtr[:5000]))
    np.save(os.path.join(out, "train_y.npy"), ytr[:5000])
    np.save(os.path.join(out, "test_x.npy"), np.ascontiguousarray(xte[:1000]))
    np.save(os.path.join(out, "test_y.npy"), yte[:1000])
    print(f"wrote {out}/net.onnx and the npy arrays")


if __name__ == "__main__":
    main()
