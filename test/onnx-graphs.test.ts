// Small ONNX graphs built here with onnx-proto, for what PyTorch's exporter does not write into the fixtures: a bias
// added after a bias-free MatMul or Conv (taken as the node's bias only where it is one), Pad's opset-2 attributes,
// the folding of Slice with negative steps and of Cast to bool; and the inference path of a grouped conv fused with
// its ReLU, which must leave no buffer behind.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { Manifold } from '../src/engine/manifold.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { graphRef } from '../src/models/graph.ts';
import { Model } from '../src/models/model.ts';
import { importOnnx } from '../src/models/onnx.ts';
import { foldOp } from '../src/models/onnx-fold.ts';
import { testGpu } from './helpers.ts';
import { expectClose } from './model-check.ts';

const { onnx } = onnxProto;
const dir = mkdtempSync(join(tmpdir(), 'onnx-graphs-'));
let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

type NodeSpec = { op: string; inputs: string[]; output: string; attrs?: Record<string, number | number[]> };
const FLOAT = 1;

function attribute(name: string, v: number | number[]) {
  if (Array.isArray(v)) return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: v };
  if (Number.isInteger(v)) return { name, type: onnx.AttributeProto.AttributeType.INT, i: v };
  return { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v };
}

const values = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 0.5);

/** A graph from input [batch, ...shape] to output "y", its initializers filled deterministically; returns the file. */
function build(name: string, shape: number[], nodes: NodeSpec[], inits: Record<string, number[]>, opset = 13): string {
  const dim = (d: number | string) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d });
  const info = (n: string, dims: (number | string)[]) => ({
    name: n,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map(dim) } } },
  });
  const m = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name,
      node: nodes.map((n, i) => ({
        name: `/${n.op}_${i}`,
        opType: n.op,
        input: n.inputs,
        output: [n.output],
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attribute(k, v)),
      })),
      initializer: Object.entries(inits).map(([n, dims], i) => ({
        name: n,
        dims,
        dataType: FLOAT,
        floatData: values(
          dims.reduce((a, b) => a * b, 1),
          i + 1,
        ),
      })),
      input: [info('x', ['batch', ...shape])],
      output: [info('y', ['batch', 'classes'])],
    },
  });
  const file = join(dir, `${name}.onnx`);
  writeFileSync(file, onnx.ModelProto.encode(m).finish());
  return file;
}

async function ortOut(file: string, shape: number[], data: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file);
  const r = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', data, shape) });
  const y = r[s.outputNames[0]].data as Float32Array;
  await s.release();
  return y;
}

const input = (shape: number[]) =>
  Float32Array.from(
    values(
      shape.reduce((a, b) => a * b, 1),
      9,
    ),
  );

describe('a constant added after a bias-free MatMul or Conv', () => {
  const mlp = (name: string, bias: number[], between: NodeSpec[] = []) =>
    build(
      name,
      [1, 2, 3],
      [
        { op: 'Flatten', inputs: ['x'], output: 'f' },
        { op: 'MatMul', inputs: ['f', 'W'], output: 'h' },
        ...between,
        { op: 'Add', inputs: [between.length ? 'h2' : 'h', 'b'], output: 'y' },
      ],
      { W: [6, 4], b: bias },
    );

  // a bias-free 3x3 Conv (2 -> 3 channels, 5x5 images) and an Add of a constant of shape `bias`
  const convAdd = (name: string, bias: number[]) =>
    build(
      name,
      [2, 5, 5],
      [
        { op: 'Conv', inputs: ['x', 'w'], output: 'c', attrs: { kernel_shape: [3, 3] } },
        { op: 'Add', inputs: ['c', 'b'], output: 'a' },
        { op: 'Flatten', inputs: ['a'], output: 'y' },
      ],
      { w: [3, 2, 3, 3], b: bias },
    );

  it('becomes the bias where it is one: [out] after MatMul, [1, C, 1, 1] after Conv (as onnxruntime)', async () => {
    const conv = convAdd('conv-add', [1, 3, 1, 1]);
    for (const [file, shape] of [
      [mlp('mlp-add', [4]), [2, 1, 2, 3]],
      [conv, [2, 2, 5, 5]],
    ] as const) {
      const m = importOnnx(file);
      expect(m.graph.nodes.filter((n) => n.op.type === 'add')).toEqual([]);
      expect(m.graph.nodes.some((n) => (n.op.type === 'linear' || n.op.type === 'conv') && n.op.bias)).toBe(true);
      const x = input([...shape]);
      const want = await ortOut(file, [...shape], x);
      expectClose(graphRef(m.graph, m.params, x, shape[0], m.input).y, want, 0, 1e-5, file);
    }
  });

  it('is refused when its shape is not a bias, or when another node stands between', () => {
    expect(() => importOnnx(mlp('mlp-bad-bias', [4, 1]))).toThrow(
      /mlp-bad-bias\.onnx: node "\/Add_2" \(Add\): the constant \[4, 1\] is not a bias of \/MatMul_1 \(\[4\] /,
    );
    // [3] broadcasts along W, not along the channels
    const conv = convAdd('conv-bad-bias', [3]);
    expect(() => importOnnx(conv)).toThrow(/the constant \[3\] is not a bias of \/Conv_0 \(\[3, 1, 1\] expected\)/);
    const aliased = mlp('mlp-identity', [4], [{ op: 'Identity', inputs: ['h'], output: 'h2' }]);
    expect(() => importOnnx(aliased)).toThrow(
      /node "\/Add_3" \(Add\): adding a constant is supported only as the bias of a bias-free Conv, Gemm or MatMul/,
    );
  });
});

describe('Pad, Slice and Cast', () => {
  const padded = (value: number) =>
    build(
      `pad-value-${value}`,
      [1, 4, 4],
      [
        { op: 'Pad', inputs: ['x'], output: 'p', attrs: { pads: [0, 0, 1, 1, 0, 0, 1, 1], value } },
        { op: 'Flatten', inputs: ['p'], output: 'y' },
      ],
      {},
      2,
    );

  it('Pad of opset 2: zero padding imports, any other value is refused', async () => {
    const m = importOnnx(padded(0));
    expect(m.graph.nodes.map((n) => n.op.type)).toEqual(['pad', 'flatten']);
    expect(() => importOnnx(padded(1.5))).toThrow(
      /node "\/Pad_0" \(Pad\): attribute value = 1\.5 is not supported \(supported: 0 \(zero padding\)\)/,
    );
  });

  it('Slice with a negative step clamps its start to the last element; Cast to bool gives 0 and 1', () => {
    const d = { dims: [5], data: [10, 11, 12, 13, 14], int: true };
    const c = (v: number[]) => ({ dims: [v.length], data: v, int: true });
    const sl = (start: number, end: number, step: number) =>
      Array.from(foldOp('Slice', [d, c([start]), c([end]), c([0]), c([step])], new Map()).data);
    expect(sl(100, -100, -1)).toEqual([14, 13, 12, 11, 10]);
    expect(sl(-1, 0, -2)).toEqual([14, 12]);
    expect(sl(3, 1, -1)).toEqual([13, 12]);
    // as onnxruntime (1.30) slices (the spec's clamp of the start to [0, n - 1], unlike numpy's a[-100:-100:-1])
    expect(sl(-100, -100, -1)).toEqual([10]);
    expect(sl(-100, 0, -1)).toEqual([]);
    expect(sl(1, 100, 2)).toEqual([11, 13]);
    const cast = foldOp('Cast', [{ dims: [4], data: [0, 0.5, -2, 3], int: false }], new Map([['to', 9]]));
    expect(Array.from(cast.data)).toEqual([0, 1, 1, 1]);
  });
});

describe('a grouped conv fused with its ReLU, in inference', () => {
  it("gives onnxruntime's logits and leaves no GPU buffer behind", async () => {
    // the depthwise fixture with its batch norm taken out: the depthwise conv feeds the ReLU directly
    const m0 = onnx.ModelProto.decode(readFileSync('test/fixtures/onnx/depthwise.onnx'));
    const nodes = m0.graph!.node!;
    const bn = nodes.findIndex((n) => n.opType === 'BatchNormalization');
    const relu = nodes.find((n) => n.input?.[0] === nodes[bn].output![0])!;
    relu.input![0] = nodes[bn].input![0];
    nodes.splice(bn, 1);
    const file = join(dir, 'depthwise-relu.onnx');
    writeFileSync(file, onnx.ModelProto.encode(m0).finish());
    const m = importOnnx(file);
    const shape = [2, 3, 8, 8];
    const x = input(shape);
    const want = await ortOut(file, shape, x);
    const model = new Model(gpu, m.graph, 1, m.params, m.states);
    const manifold = Manifold.single(gpu);
    const xt = Tensor.fromArray(gpu, shape, x, 'x');
    const before = gpu.pool.liveBytes;
    const y = model.forward({ gpu, manifold, tape: null }, xt);
    const got = await y.read();
    y.dispose();
    expect(gpu.pool.liveBytes).toBe(before);
    for (const t of [xt, manifold, model]) t.dispose();
    expectClose(got, want, 0, 1e-4, 'GPU model');
  });
});
