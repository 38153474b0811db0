// torchvision's ResNet-18 as an ONNX graph with random weights, written with the onnx-proto schema (the same nodes
// and initializer names as torch.onnx.export of torchvision.models.resnet18, without needing PyTorch): the
// importer's full-size case and the benchmark's imported-model workload; also the zoo's ResNet-20 in the same form.
//
//   npx tsx bench/onnx-resnet18.ts OUT.onnx [CLASSES] [SIDE]    (defaults: 10 classes, 32x32 colour images)
import '../src/platform/node.ts';
import { writeFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import { randn, rng } from '../src/engine/random.ts';

const { onnx } = onnxProto;
type Node = InstanceType<typeof onnx.NodeProto>;
type Init = InstanceType<typeof onnx.TensorProto>;

/** The ONNX bytes of ResNet-18 (BasicBlock [2, 2, 2, 2]) for `classes` outputs on [3, side, side] images. */
export function resnet18Onnx(classes = 10, side = 32, seed = 1): Uint8Array {
  return resnetOnnx({ stem: 'imagenet', blocks: [2, 2, 2, 2], widths: [64, 128, 256, 512], classes, side, seed });
}

/** The zoo's ResNet-20 (CIFAR-style: 3x3 stem, 3 blocks of 16, 32 and 64 channels, 1x1 projections) as ONNX. */
export function resnet20Onnx(classes = 10, side = 32, seed = 1): Uint8Array {
  return resnetOnnx({ stem: 'cifar', blocks: [3, 3, 3], widths: [16, 32, 64], classes, side, seed });
}

function resnetOnnx(o: {
  stem: 'imagenet' | 'cifar';
  blocks: number[];
  widths: number[];
  classes: number;
  side: number;
  seed: number;
}): Uint8Array {
  const { classes, side } = o;
  const seed = o.seed;
  const r = rng(seed);
  const nodes: Node[] = [];
  const inits: Init[] = [];
  const T = onnx.AttributeProto.AttributeType;
  const ints = (name: string, v: number[]) => ({ name, type: T.INTS, ints: v });
  const int = (name: string, v: number) => ({ name, type: T.INT, i: v });
  const tensor = (name: string, dims: number[], f: (i: number) => number) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: n }, (_, i) => f(i));
    inits.push(onnx.TensorProto.create({ name, dims, dataType: 1, rawData: new Uint8Array(data.buffer) }));
  };
  let count = 0;
  const node = (opType: string, input: string[], attribute: object[] = [], name = `/${opType}_${count}`) => {
    const out = `${name}_output_${count++}`;
    nodes.push(onnx.NodeProto.create({ opType, name, input, output: [out], attribute: attribute as never }));
    return out;
  };
  const conv = (x: string, p: string, cin: number, cout: number, k: number, stride: number, pad: number) => {
    const std = Math.sqrt(2 / (cout * k * k)); // Kaiming normal, fan-out (torchvision's init)
    tensor(`${p}.weight`, [cout, cin, k, k], () => std * randn(r));
    const a = [ints('kernel_shape', [k, k]), ints('strides', [stride, stride]), ints('pads', [pad, pad, pad, pad])];
    return node('Conv', [x, `${p}.weight`], [...a, ints('dilations', [1, 1]), int('group', 1)], `/${p}/Conv`);
  };
  const bn = (x: string, p: string, c: number) => {
    tensor(`${p}.weight`, [c], () => 1 + 0.1 * randn(r));
    tensor(`${p}.bias`, [c], () => 0.1 * randn(r));
    tensor(`${p}.running_mean`, [c], () => 0.1 * randn(r));
    tensor(`${p}.running_var`, [c], () => 1 + 0.2 * r());
    const eps = { name: 'epsilon', type: T.FLOAT, f: 1e-5 };
    const m = { name: 'momentum', type: T.FLOAT, f: 0.9 };
    const names = ['weight', 'bias', 'running_mean', 'running_var'].map((s) => `${p}.${s}`);
    return node('BatchNormalization', [x, ...names], [eps, m], `/${p}/BatchNormalization`);
  };
  const relu = (x: string) => node('Relu', [x]);
  const block = (x: string, p: string, cin: number, cout: number, stride: number) => {
    let h = relu(bn(conv(x, `${p}.conv1`, cin, cout, 3, stride, 1), `${p}.bn1`, cout));
    h = bn(conv(h, `${p}.conv2`, cout, cout, 3, 1, 1), `${p}.bn2`, cout);
    const sc =
      stride !== 1 || cin !== cout
        ? bn(conv(x, `${p}.downsample.0`, cin, cout, 1, stride, 0), `${p}.downsample.1`, cout)
        : x;
    return relu(node('Add', [h, sc]));
  };
  let c = o.widths[0];
  let h: string;
  if (o.stem === 'imagenet') {
    h = relu(bn(conv('input', 'conv1', 3, c, 7, 2, 3), 'bn1', c));
    h = node('MaxPool', [h], [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), ints('pads', [1, 1, 1, 1])]);
  } else h = relu(bn(conv('input', 'conv1', 3, c, 3, 1, 1), 'bn1', c));
  o.widths.forEach((w, i) => {
    for (let b = 0; b < o.blocks[i]; b++) {
      h = block(h, `layer${i + 1}.${b}`, c, w, i > 0 && b === 0 ? 2 : 1);
      c = w;
    }
  });
  h = node('Flatten', [node('GlobalAveragePool', [h])], [int('axis', 1)]);
  const bound = 1 / Math.sqrt(c);
  tensor('fc.weight', [classes, c], () => (2 * r() - 1) * bound);
  tensor('fc.bias', [classes], () => (2 * r() - 1) * bound);
  const logits = node('Gemm', [h, 'fc.weight', 'fc.bias'], [int('transB', 1)], '/fc/Gemm');
  const dims = (d: (number | string)[]) =>
    d.map((v) => (typeof v === 'string' ? { dimParam: v } : { dimValue: v })) as never;
  const value = (name: string, d: (number | string)[]) => ({
    name,
    type: { tensorType: { elemType: 1, shape: { dim: dims(d) } } },
  });
  const graph = onnx.GraphProto.create({
    name: 'resnet18',
    node: nodes,
    initializer: inits,
    input: [value('input', ['batch', 3, side, side])],
    output: [{ ...value('logits', ['batch', classes]), name: logits }],
  });
  const model = onnx.ModelProto.create({ irVersion: 7, opsetImport: [{ version: 13 }], graph });
  return onnx.ModelProto.encode(model).finish();
}

if (process.argv[1]?.endsWith('onnx-resnet18.ts')) {
  const [out, classes, side] = process.argv.slice(2);
  if (!out) {
    console.error('usage: npx tsx bench/onnx-resnet18.ts OUT.onnx [CLASSES] [SIDE]');
    process.exit(2);
  }
  writeFileSync(out, resnet18Onnx(Number(classes ?? 10), Number(side ?? 32)));
  console.log(`wrote ${out}`);
}
