#!/usr/bin/env python3
"""The MPO training step in PyTorch, for the GPU machine (PyTorch is installed there, not on the CPU machine).

Two formulations of the same step as `npm run bench` times (icon net / CIFAR net, BN off and on):
  torch-loop: the reference's way, one forward and one backward per cell (gradients accumulate), then Adam;
  torch-vmap: torch.func.vmap over cells with functional_call, one backward for all cells.
f32 with TF32 off; CUDA events around each step; warm-up excluded; median and spread of the timed steps.
Also the loss-surface workload (surface-icons): the reference tool's loop over grid points (weights set in place, one
forward each), timed on a subset of the points and reported per grid.
Writes JSON rows in bench/mpo.ts's schema; `npm run bench -- --torch PATH` merges them into its table and JSON.

usage: python3 bench/torch_reference.py [--quick] [--steps N] [--out PATH] [--check-dir DIR]
                                       [--workloads mpo-fashion,mpo-cifar,surface-icons] [--cells 1,16,100,400] [--batch 64,512]
--check-dir DIR: before timing, the per-cell losses of PyTorch's model on the plane, batch and cells that
`npm run bench -- --check-dir DIR` wrote (DIR/<workload>-bn<0|1>.safetensors) are compared with loss-atlas's;
the maximum difference is printed and recorded under "checks", and a difference above 1e-3 stops the run.
The JSON is rewritten after every row (a run cut short keeps what it measured).
Run so far on a CPU (torch 2.13 CPU build) only; on the GPU machine through scripts/device-check.sh.
"""
import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
try:
    from torch.func import functional_call, vmap
except ImportError:  # torch 1.13 (Debian's python3-torch): the same functions from functorch
    from functorch import vmap
    from torch.nn.utils.stateless import functional_call


class RepBN(nn.Module):
    """The reference's batch norm: gamma = weight + 1, batch statistics always."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return F.batch_norm(x, None, None, self.weight + 1, self.bias, training=True, eps=1e-5)


def conv_net(channels, dense, maxpool, bn):
    layers = []
    for cin, cout in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(cin, cout, 3, padding=1)] + ([RepBN(cout)] if bn else []) + [nn.ReLU()]
        if maxpool:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten()]
    f = channels[-1] * 16
    for d in dense:
        layers += [nn.Linear(f, d), nn.ReLU()]
        f = d
    layers.append(nn.Linear(f, 10))
    return nn.Sequential(*layers)


WORKLOADS = {
    "mpo-fashion": (lambda bn: conv_net([1, 8, 32, 64], [128], True, bn), (1, 28, 28)),
    "mpo-cifar": (lambda bn: conv_net([3, 16, 32, 64], [128], False, bn), (3, 32, 32)),
}


def flat(params):
    return torch.cat([p.reshape(-1) for p in params])


class Plane(nn.Module):
    """origin, right_param, up_param (three default inits) and a scale; up_orthogonal as the reference."""

    def __init__(self, make):
        super().__init__()
        nets = [make() for _ in range(3)]
        self.names = [n for n, _ in nets[0].named_parameters()]
        self.shapes = [p.shape for p in nets[0].parameters()]
        self.origin = nn.Parameter(flat(nets[0].parameters()).detach().clone())
        self.right = nn.Parameter(flat(nets[1].parameters()).detach().clone())
        self.up = nn.Parameter(flat(nets[2].parameters()).detach().clone())
        self.scale = nn.Parameter(torch.tensor(0.1))

    def vectors(self):
        r = self.right - self.origin
        u = self.up - r * (self.up @ r) / (r @ r)
        u = u * r.norm() / u.norm()
        return r, u

    def unflatten(self, w):
        out, i = {}, 0
        for n, s in zip(self.names, self.shapes):
            k = math.prod(s)
            out[n] = w[i:i + k].view(s)
            i += k
        return out


def step_loop(model, plane, opt, offsets, n_good, x, y, clamp=2.5, c=1.0, clip=100.0):
    opt.zero_grad(set_to_none=True)
    n_bad = len(offsets) - n_good
    for k, (di, dj) in enumerate(offsets):
        r, u = plane.vectors()
        w = plane.origin + plane.scale * (dj * r + di * u)
        ce = F.cross_entropy(functional_call(model, plane.unflatten(w), (x,)), y)
        loss = ce / n_good if k < n_good else -c * ce.clamp(0, clamp) / n_bad
        loss.backward()
    torch.nn.utils.clip_grad_norm_(plane.parameters(), clip)
    opt.step()


def step_vmap(model, plane, opt, offsets, n_good, x, y, clamp=2.5, c=1.0, clip=100.0):
    opt.zero_grad(set_to_none=True)
    n_bad = len(offsets) - n_good
    off = torch.tensor(offsets, dtype=torch.float32, device=x.device)
    r, u = plane.vectors()
    w = plane.origin + plane.scale * (off[:, 1:2] * r + off[:, 0:1] * u)  # [K, n]

    def ce_of(wk):
        return F.cross_entropy(functional_call(model, plane.unflatten(wk), (x,)), y)

    ce = vmap(ce_of)(w)
    good = ce[:n_good].sum() / n_good
    bad = ce[n_good:].clamp(0, clamp).sum() * (c / n_bad) if n_bad else ce.new_zeros(())
    (good - bad).backward()
    torch.nn.utils.clip_grad_norm_(plane.parameters(), clip)
    opt.step()


def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} is {t['dtype']}, F32 expected")
        a, e = t["data_offsets"]
        out[name] = torch.frombuffer(bytearray(b[8 + n + a:8 + n + e]), dtype=torch.float32).reshape(t["shape"])
    return out


def check_losses(path, dev):
    """PyTorch's per-cell losses on the plane, batch and cells that loss-atlas wrote, against loss-atlas's."""
    t = read_safetensors(path)
    workload, bn = os.path.basename(path).rsplit("-bn", 1)
    bn = bn.startswith("1")
    make = WORKLOADS[workload][0]
    model = make(bn).to(dev)
    plane = Plane(lambda: make(bn)).to(dev)
    names = [k[len("origin."):] for k in t if k.startswith("origin.")]
    theirs = [tuple(t["origin." + n].shape) for n in names]
    ours = [tuple(s) for s in plane.shapes]
    if theirs != ours:
        raise SystemExit(f"{path}: parameter shapes {theirs} do not match PyTorch's model {ours}")
    with torch.no_grad():
        for attr, key in (("origin", "origin."), ("right", "right_param."), ("up", "up_param.")):
            getattr(plane, attr).copy_(torch.cat([t[key + n].reshape(-1) for n in names]).to(dev))
        plane.scale.copy_(t["scale"][0])
        x, y = t["x"].to(dev), t["y"].to(dev).long()
        r, u = plane.vectors()
        losses = []
        for di, dj in t["offsets"].tolist():
            w = plane.origin + plane.scale * (dj * r + di * u)
            losses.append(F.cross_entropy(functional_call(model, plane.unflatten(w), (x,)), y).item())
    diff = max(abs(a - b) for a, b in zip(losses, t["losses"].tolist()))
    print(f"loss check {workload} bn={bn}: PyTorch {['%.5f' % v for v in losses]}, loss-atlas "
          f"{['%.5f' % v for v in t['losses'].tolist()]}: max diff {diff:.2e}", file=sys.stderr)
    if not diff < 1e-3:
        raise SystemExit(f"{path}: PyTorch's losses differ from loss-atlas's by {diff}: the formulations disagree, nothing timed")
    return {"workload": workload, "bn": bn, "max_loss_diff": diff, "cells": len(losses)}


def surface_rows(dev, quick, name):
    """The loss-surface workload: a side x side grid theta + a d1 + b d2 of the icon net, each point on the same images,
    the reference tool's way (weights set in place, one forward per point; timed on a subset, reported per grid)."""
    side, images, timed = (5, 100, 4) if quick else (51, 1000, 50)
    model = WORKLOADS["mpo-fashion"][0](False).to(dev).eval()
    theta = [p.detach().clone() for p in model.parameters()]
    d1 = [0.05 * torch.randn_like(p) for p in theta]
    d2 = [0.05 * torch.randn_like(p) for p in theta]
    x = torch.randn(images, 1, 28, 28, device=dev)
    y = torch.arange(images, device=dev) % 10
    lin = [-1 + 2 * i / (side - 1) for i in range(side)]
    points = [(a, b) for b in lin for a in lin][:timed]

    def run(pts):
        with torch.no_grad():
            for a_, b_ in pts:
                for p, t, u, v in zip(model.parameters(), theta, d1, d2):
                    p.copy_(t + a_ * u + b_ * v)
                F.cross_entropy(model(x), y).item()

    run(points[:2])  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    run(points)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    per_point = (time.perf_counter() - t) * 1000 / len(points)
    k = side * side
    row = {"impl": "torch-loop", "workload": "surface-icons", "bn": False, "cells": k, "batch": images,
           "ms_per_step": round(per_point * k, 1), "ms_spread": [round(per_point * k, 1)] * 2, "gpu_ms_per_step": None,
           "cell_images_per_s": round(images * 1000 / per_point, 1), "points_per_s": round(1000 / per_point, 2),
           "timed_points": len(points), "peak_bytes": torch.cuda.max_memory_allocated() if dev.type == "cuda" else None}
    print(json.dumps(row), file=sys.stderr)
    return [row]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", default=None)
    ap.add_argument("--check-dir", default=None)
    ap.add_argument("--workloads", default=None)
    ap.add_argument("--cells", default=None)
    ap.add_argument("--batch", default=None)
    a = ap.parse_args()
    ints = lambda v: [int(q) for q in v.split(",")] if v else None
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    cells_list = ints(a.cells) or ([1, 4] if a.quick else [1, 16, 100, 400])
    batches = ints(a.batch) or ([16] if a.quick else [64, 512])
    workloads = (a.workloads or ("mpo-fashion,surface-icons" if a.quick else "mpo-fashion,mpo-cifar,surface-icons")).split(",")
    for w in workloads:
        if w not in WORKLOADS and w != "surface-icons":
            raise SystemExit(f"--workloads: {w} is not one of mpo-fashion, mpo-cifar, surface-icons")
    rows, checks, skipped = [], [], []
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    print(f"device: {name}, torch {torch.__version__}", file=sys.stderr)
    path = a.out or f"bench/results/torch-{name.replace(' ', '-')}-{time.strftime('%Y-%m-%d')}.json"

    def save(complete):
        out = {"adapter": name, "torch": torch.__version__, "tf32": False, "complete": complete, "checks": checks, "rows": rows, "skipped": skipped}
        with open(path + ".tmp", "w") as f:
            json.dump(out, f, indent=2)
        os.replace(path + ".tmp", path)

    if a.check_dir:
        for w in (w for w in workloads if w in WORKLOADS):
            for bn in (False, True):
                p = os.path.join(a.check_dir, f"{w}-bn{int(bn)}.safetensors")
                if not os.path.exists(p):
                    raise SystemExit(f"--check-dir: {p} is missing (write it with npm run bench -- --check-dir {a.check_dir} --check-only)")
                checks.append(check_losses(p, dev))
    else:
        print("no --check-dir: PyTorch's losses are not compared with loss-atlas's", file=sys.stderr)
    for workload in workloads:
        if workload not in WORKLOADS:
            continue
        make, shape = WORKLOADS[workload]
        for bn in (False, True):
            for batch in batches:
                for cells in cells_list:
                    for impl, fn in (("torch-loop", step_loop), ("torch-vmap", step_vmap)):
                        model = make(bn).to(dev)
                        plane = Plane(lambda: make(bn)).to(dev)
                        opt = torch.optim.Adam(plane.parameters(), lr=2.5e-4)
                        x = torch.randn(batch, *shape, device=dev)
                        y = torch.arange(batch, device=dev) % 10
                        offsets = [((k % 7) - 3, (k // 7 % 7) - 3) for k in range(cells)]
                        n_good = math.ceil(cells / 2)
                        times, oom = [], None
                        if dev.type == "cuda":
                            torch.cuda.reset_peak_memory_stats()
                        try:
                            for s in range(2 + a.steps):
                                if dev.type == "cuda":
                                    t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                                    t0.record()
                                    fn(model, plane, opt, offsets, n_good, x, y)
                                    t1.record()
                                    torch.cuda.synchronize()
                                    ms = t0.elapsed_time(t1)
                                else:
                                    t = time.perf_counter()
                                    fn(model, plane, opt, offsets, n_good, x, y)
                                    ms = (time.perf_counter() - t) * 1000
                                if s >= 2:
                                    times.append(ms)
                        except RuntimeError as e:  # torch.cuda.OutOfMemoryError, or cuDNN / cuBLAS failing to allocate
                            if "out of memory" not in str(e).lower() and "alloc" not in str(e).lower():
                                raise
                            oom = str(e).splitlines()[0][:200]
                        if oom is not None:
                            # freed outside the except block: the traceback there still holds the step's tensors
                            del model, plane, opt, x, y
                            if dev.type == "cuda":
                                torch.cuda.empty_cache()
                            print(f"{impl} {workload} bn={bn} cells={cells} batch={batch}: out of memory ({oom})", file=sys.stderr)
                            skipped.append({"impl": impl, "workload": workload, "bn": bn, "cells": cells, "batch": batch, "why": f"out of memory: {oom}"})
                            save(False)
                            continue
                        med = statistics.median(times)
                        row = {
                            "impl": impl, "workload": workload, "bn": bn, "cells": cells, "batch": batch,
                            "ms_per_step": round(med, 3), "ms_spread": [round(min(times), 3), round(max(times), 3)],
                            "gpu_ms_per_step": round(med, 3) if dev.type == "cuda" else None,
                            "cell_images_per_s": round(cells * batch / (med / 1000), 1),
                            "peak_bytes": torch.cuda.max_memory_allocated() if dev.type == "cuda" else None,
                        }
                        rows.append(row)
                        save(False)
                        print(json.dumps(row), file=sys.stderr)
    if "surface-icons" in workloads:
        rows += surface_rows(dev, a.quick, name)
    save(True)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
