// A full-size imported graph: torchvision's ResNet-18 (random weights, 32x32 colour images) written as ONNX by
// bench/onnx-resnet18.ts. It imports with torchvision's parameter counts, its GPU logits are onnxruntime's, and a
// 5 x 5 surface around it runs on this adapter, its centre the loss of onnxruntime's logits.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resnet18Onnx } from '../bench/onnx-resnet18.ts';
import { npyBytes, readNpy } from '../src/data/formats.ts';
import type { Gpu } from '../src/engine/device.ts';
import { Manifold } from '../src/engine/manifold.ts';
import * as ref from '../src/engine/reference.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { inspectModel } from '../src/models/inspect.ts';
import { Model } from '../src/models/model.ts';
import { importOnnx } from '../src/models/onnx.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { CLI_ARGS, testGpu } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'la-resnet18-'));
const file = join(dir, 'resnet18.onnx');
writeFileSync(file, resnet18Onnx(10, 32));
let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

const N = 4;
const x = Float32Array.from({ length: N * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37) * 1.5);
const labels = [1, 4, 7, 9];

describe('ResNet-18 (torchvision) as ONNX', () => {
  it("inspect reports torchvision's parameter counts (11,181,642 at 10 classes, 11,689,512 at 1,000)", () => {
    expect(inspectModel(file, modelSpec(file)).parameters).toBe(11_181_642);
    const big = join(dir, 'resnet18-1000.onnx');
    writeFileSync(big, resnet18Onnx(1000, 32));
    const r = inspectModel(big, modelSpec(big));
    expect(r.parameters).toBe(11_689_512);
    expect(r.bn).toHaveLength(20);
  });

  it("its GPU logits (running statistics) are onnxruntime's", async () => {
    const s = await ort.InferenceSession.create(file);
    const want = (await s.run({ input: new ort.Tensor('float32', x, [N, 3, 32, 32]) }))[s.outputNames[0]]
      .data as Float32Array;
    await s.release();
    const m = importOnnx(file);
    const model = new Model(gpu, m.graph, 1, m.params, m.states);
    model.bnMode = 'running';
    const manifold = Manifold.single(gpu);
    const xt = Tensor.fromArray(gpu, [N, 3, 32, 32], x, 'x');
    const y = model.forward({ gpu, manifold, tape: null }, xt);
    const got = await y.read();
    for (const t of [y, xt, manifold, model]) t.dispose();
    const scale = Math.max(...Array.from(want, Math.abs));
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-4 * (1 + scale));
    // the surface below: its centre is this loss
    writeFileSync(join(dir, 'want.json'), JSON.stringify(ref.crossEntropyRef(want, labels, N, 10).loss));
  });

  it('a 5 x 5 surface around it runs here; its centre is the loss of those logits', () => {
    const xs = join(dir, 'x.npy');
    writeFileSync(xs, npyBytes(x, [N, 3, 32, 32]));
    const ys = join(dir, 'y.npy');
    // labels as float32 whole numbers are read as integers too
    writeFileSync(ys, npyBytes(Float32Array.from(labels), [N]));
    const out = join(dir, 'surface');
    const r = spawnSync(
      process.execPath,
      [...CLI_ARGS, 'surface', '--model-file', file, '--data', `npy:${xs},${ys}`, '--x', '-0.5:0.5:5'].concat([
        '--y',
        '-0.5:0.5:5',
        '--images',
        String(N),
        '--out',
        out,
      ]),
      { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } },
    );
    expect(r.status, r.stderr).toBe(0);
    const loss = readNpy(join(out, 'surface_loss.npy'));
    expect(loss.shape).toEqual([5, 5]);
    const want = JSON.parse(readFileSync(join(dir, 'want.json'), 'utf8')) as number;
    expect(Math.abs(loss.data[12] - want)).toBeLessThan(1e-3 * want);
  });
});
