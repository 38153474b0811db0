// The ONNX importer on the fixtures of test/fixtures/onnx/ (PyTorch's exporter): logits against onnxruntime's on the
// CPU reference and on the GPU, the imported graph on a weight manifold (batched points against separate runs,
// gradients against finite differences), and the refusals, each naming the file, the node and what is supported.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readNpy } from '../src/data/formats.ts';
import type { Gpu } from '../src/engine/device.ts';
import { randArray, rng } from '../src/engine/gradcheck.ts';
import { Manifold } from '../src/engine/manifold.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { graphRef, initParams, paramShapes, stateShapes } from '../src/models/graph.ts';
import { Model } from '../src/models/model.ts';
import { importOnnx } from '../src/models/onnx.ts';
import { testGpu } from './helpers.ts';
import { type Batch, expectBatchedEqualsSeparate, expectClose, expectGradientsMatchFD } from './model-check.ts';

const FIX = 'test/fixtures/onnx';
const { onnx } = onnxProto;
let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

async function ortLogits(file: string, x: { shape: number[]; data: Float32Array }): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file);
  const r = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) });
  const y = r[s.outputNames[0]].data as Float32Array;
  await s.release();
  return y;
}

async function gpuLogits(
  m: ReturnType<typeof importOnnx>,
  x: { shape: number[]; data: Float32Array },
  bn: 'batch' | 'running',
) {
  const model = new Model(gpu, m.graph, 1, m.params, m.states);
  model.bnMode = bn;
  const manifold = Manifold.single(gpu);
  const xt = Tensor.fromArray(gpu, x.shape, x.data, 'x');
  const y = model.forward({ gpu, manifold, tape: null }, xt);
  const out = await y.read();
  for (const t of [y, xt, manifold, model]) t.dispose();
  return out;
}

const batchOf = (name: string, classes: number): Batch => {
  const x = readNpy(join(FIX, `${name}.input.npy`));
  const N = x.shape[0];
  return {
    x: x.data,
    N,
    IN: x.shape.slice(1),
    labels: Array.from({ length: N }, (_, i) => (3 * i + 1) % classes),
    classes,
  };
};

describe.each(['lenet', 'gelu-mlp', 'resbn', 'fmnist', 'depthwise'])('%s.onnx', (name) => {
  const file = join(FIX, `${name}.onnx`);

  it("imports, and its CPU reference and the GPU model give onnxruntime's logits within 1e-4", async () => {
    const m = importOnnx(file);
    const x = readNpy(join(FIX, `${name}.input.npy`));
    const want = await ortLogits(file, x);
    // the fixture itself: PyTorch's logits are onnxruntime's
    expectClose(readNpy(join(FIX, `${name}.logits.npy`)).data, want, 0, 1e-4, 'PyTorch against onnxruntime');
    const N = x.shape[0];
    expect(m.classes * N).toBe(want.length);
    expectClose(graphRef(m.graph, m.params, x.data, N, m.input, 0, m.states).y, want, 0, 1e-4, 'CPU reference');
    expectClose(await gpuLogits(m, x, 'running'), want, 0, 1e-4, 'GPU model, running statistics');
    // every parameter and state keeps its initializer's name
    const names = [...paramShapes(m.graph), ...stateShapes(m.graph)].map((p) => p.name);
    expect(names.every((n) => !n.includes('/'))).toBe(true);
  });

  it('its basis and coefficient gradients on a K = 3, B = 2 manifold match finite differences', () => {
    const m = importOnnx(file);
    return expectGradientsMatchFD(gpu, m.graph, {
      K: 3,
      B: 2,
      initSeed: 5,
      coefSeed: 6,
      weights: [0.6, -0.3, 0.4],
      sampleSeed: 7,
      perParam: 4,
      batch: batchOf(name, m.classes),
    });
  });
});

describe('resbn.onnx (batch norm, residual blocks, a strided 1x1 shortcut)', () => {
  const file = join(FIX, 'resbn.onnx');

  it('keeps epsilon and momentum, and the running statistics as the model state', () => {
    const m = importOnnx(file);
    const bn = m.graph.nodes.filter((n) => n.op.type === 'bn').map((n) => n.op as { eps?: number; momentum?: number });
    expect(bn.map((b) => b.eps)).toEqual([1e-5, 1e-5, 1e-3, 1e-5, 1e-3, 1e-5]);
    expect(bn.every((b) => b.momentum === 0.1)).toBe(true);
    expect(stateShapes(m.graph).map((s) => s.name)).toContain('b2.shortcut.1.running_var');
    expect(m.graph.nodes.filter((n) => n.op.type === 'add')).toHaveLength(2);
  });

  it('batch statistics on the GPU equal the CPU reference in training mode', async () => {
    const m = importOnnx(file);
    const x = readNpy(join(FIX, 'resbn.input.npy'));
    const want = graphRef(m.graph, m.params, x.data, x.shape[0], m.input).y;
    expectClose(await gpuLogits(m, x, 'batch'), want, 1e-4, 1e-4, 'GPU model, batch statistics');
  });

  it('K = 5 points of a B = 3 plane through its weights in one batched run equal 5 separate runs', async () => {
    const m = importOnnx(file);
    const B = 3;
    const extra = initParams(m.graph, 2, 9);
    const init = m.params.map((p, i) => {
      const a = new Float32Array(B * p.length);
      a.set(p);
      a.set(extra[i], p.length);
      return a;
    });
    await expectBatchedEqualsSeparate(gpu, m.graph, {
      K: 5,
      B,
      init,
      coef: randArray(rng(2), 5 * B, 0.8),
      weights: [0.2, -0.1, 0.3, 0.25, -0.2],
      batch: batchOf('resbn', m.classes),
    });
  });
});

describe('refusals name the file, the node, its op and what is supported', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-'));
  const edited = (name: string, edit: (m: InstanceType<typeof onnx.ModelProto>) => void): string => {
    const m = onnx.ModelProto.decode(readFileSync(join(FIX, `${name}.onnx`)));
    edit(m);
    const out = join(dir, `${name}-edited.onnx`);
    writeFileSync(out, onnx.ModelProto.encode(m).finish());
    return out;
  };

  it('an unsupported op', () => {
    const f = edited('lenet', (m) => {
      m.graph!.node![1].opType = 'Softplus';
    });
    expect(() => importOnnx(f)).toThrow(
      /lenet-edited\.onnx: node "\/Tanh" \(Softplus\): op Softplus is not supported; supported ops: .*Conv/,
    );
  });

  it('an unsupported attribute (groups that do not divide the channels)', () => {
    const f = edited('depthwise', (m) => {
      m.graph!.node!.find((n) => n.name === '/dw/Conv')!.attribute!.find((a) => a.name === 'group')!.i = 4;
    });
    const node = /depthwise-edited\.onnx: node "\/dw\/Conv" \(Conv\): /.source;
    const what = /attribute group = 4 is not supported \(supported: a number of groups dividing the 6 input/.source;
    expect(() => importOnnx(f)).toThrow(new RegExp(node + what));
  });

  it('ceil_mode on a pool', () => {
    const f = edited('lenet', (m) => {
      const a = m.graph!.node!.find((n) => n.opType === 'MaxPool')!.attribute!.find((a) => a.name === 'ceil_mode')!;
      a.i = 1;
    });
    expect(() => importOnnx(f)).toThrow(
      /node "\/MaxPool" \(MaxPool\): attribute ceil_mode = 1 is not supported \(supported: 0\)/,
    );
  });

  it('a dynamic image size', () => {
    const f = edited('lenet', (m) => {
      const d = m.graph!.input![0].type!.tensorType!.shape!.dim![2];
      d.dimValue = null;
      d.dimParam = 'height';
    });
    expect(() => importOnnx(f)).toThrow(
      /input "input" has dims \[batch, 1, height, 12\]: images \[N, C, H, W\] with C, H and W fixed/,
    );
  });

  it('a file that is not ONNX', () => {
    const f = join(dir, 'junk.onnx');
    writeFileSync(f, Buffer.from('this is not a protobuf message at all \x00\xff\xff'));
    expect(() => importOnnx(f)).toThrow(/junk\.onnx: not an ONNX model/);
    expect(() => importOnnx(join(dir, 'missing.onnx'))).toThrow(/missing\.onnx: cannot read the ONNX file/);
  });
});
