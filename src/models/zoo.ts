// The named models: the MPO reference's conv nets (parameter counts as the reference's), Li et al.'s ResNets,
// Fort & Jastrzebski's SimpleCNN, and small CPU-sized nets.
import { platform } from '../platform/index.ts';
import { type ModelDef, initParams } from './graph.ts';
import type { Layer } from './layers.ts';
import { type OnnxModel, importOnnx, isOnnxPath } from './onnx.ts';
import { givenWeights } from './weights.ts';

export interface ModelSpec {
  layers: ModelDef;
  /** Input [C, H, W]. */
  input: [number, number, number];
  description: string;
  /** An imported graph's weights (its initializers) and BN running statistics: the origin of its manifolds. */
  weights?: { params: Float32Array[]; states: Float32Array[] };
  /** The number of classes of the output (10 for the zoo's models). */
  classes?: number;
  onnx?: OnnxModel;
}

/** The --model check of the option tables: a zoo name or an ONNX file. */
export function modelCheck(v: string): string | null {
  try {
    return (MODEL_NAMES as readonly string[]).includes(v) || parseResNet(v) || isOnnxPath(v)
      ? null
      : `one of ${MODEL_HELP}, or an ONNX file (.onnx)`;
  } catch {
    return 'a ResNet depth 6n+2 (8, 20, 32, 44, 56, 110, ...)';
  }
}

/** Whether a model reads colour images (CIFAR-10 by default): the cifar net, or an ONNX graph on 3 channels. */
export const colourModel = (model: string): boolean =>
  model === 'cifar' || (isOnnxPath(model) && modelSpec(model).input[0] === 3);

/** A --model value as run configs keep it: an ONNX file by its absolute path (checkpoints elsewhere name it). */
export const modelId = (name: string): string => (isOnnxPath(name) ? platform().resolvePath(name) : name);

/** A model's own starting weights: an imported graph's (initializers or --weights), a zoo model's --weights. */
export function givenStart(spec: ModelSpec): Float32Array[] | undefined {
  return spec.weights?.params ?? givenWeights(spec.layers, 'the model')?.params;
}

/** A model's starting weights, one point: givenStart, else a seeded PyTorch-style init. */
export function initialWeights(spec: ModelSpec, seed: number): Float32Array[] {
  return givenStart(spec)?.map((p) => p.slice()) ?? initParams(spec.layers, 1, seed);
}

/** Refuses data whose labels the model's output cannot score (an imported graph's own number of classes). */
export function checkClasses(spec: ModelSpec, model: string, data: { classes: number; labels: ArrayLike<number> }) {
  const classes = spec.classes ?? 10;
  let top = -1;
  for (let i = 0; i < data.labels.length; i++) top = Math.max(top, data.labels[i]);
  if (top >= classes || data.classes > classes)
    throw new Error(
      `${model}: the model outputs ${classes} classes, the data has ${Math.max(data.classes, top + 1)}` +
        ` (labels 0..${Math.max(data.classes, top + 1) - 1})`,
    );
}

const imported = new Map<string, { mtime: number; model: OnnxModel }>();

/** An ONNX file as a model spec (imported once per file version); input: the data's images, checked. */
function onnxSpec(
  file: string,
  o: { bn?: boolean; skip?: boolean; input?: [number, number, number]; width?: number; dropout?: number },
): ModelSpec {
  for (const [flag, set] of [
    ['--bn', o.bn],
    ['--skip', o.skip],
    ['--width', o.width !== undefined && o.width !== 1],
    ['--dropout', !!o.dropout],
  ] as const)
    if (set) throw new Error(`${flag}: ${file} is an ONNX graph: its layers are its own (drop ${flag})`);
  const path = platform().resolvePath(file);
  let mtime = 0;
  try {
    mtime = platform().mtimeMs(path);
  } catch {
    throw new Error(`--model ${file}: no such ONNX file`);
  }
  let hit = imported.get(path);
  if (!hit || hit.mtime !== mtime) {
    hit = { mtime, model: importOnnx(file) };
    imported.set(path, hit);
  }
  const m = hit.model;
  if (o.input && o.input.join() !== m.input.join())
    throw new Error(`${file}: the graph takes images [${m.input.join(', ')}], the data has [${o.input.join(', ')}]`);
  const nodes = m.graph.nodes.length;
  // --weights: a state_dict in place of the initializers
  const w = givenWeights(m.graph, `the graph ${file}`);
  return {
    layers: m.graph,
    input: m.input,
    description: `ONNX graph ${file} (${nodes} nodes, input [${m.input.join(', ')}], ${m.classes} classes)`,
    weights: { params: w?.params ?? m.params, states: w?.states ?? m.states },
    classes: m.classes,
    onnx: m,
  };
}

export const MODEL_NAMES = [
  'tiny',
  'small',
  'icons',
  'squares',
  'squares-small',
  'cifar',
  'mlp',
  'simplecnn',
  'resnet20',
  'resnet20-noshort',
  'resnet8',
] as const;
/** How the help texts list the models: the fixed names plus the ResNet family. */
export const MODEL_HELP =
  `${MODEL_NAMES.filter((n) => !n.startsWith('resnet')).join(', ')}` +
  `, resnet<D>[-noshort] (D = 6n+2: 8, 20, 32, 44, 56, 110, ...)`;

/** resnet<D> or resnet<D>-noshort with D = 6n + 2 -> n and the shortcut flag, else null. */
export function parseResNet(name: string): { n: number; depth: number; noShortcut: boolean } | null {
  const m = /^resnet(\d+)(-noshort)?$/.exec(name);
  if (!m) return null;
  const depth = Number(m[1]);
  if (depth < 8 || (depth - 2) % 6 !== 0)
    throw new Error(`--model "${name}": a ResNet depth 6n+2 expected (8, 20, 32, 44, 56, 110, ...), got ${depth}`);
  return { n: (depth - 2) / 6, depth, noShortcut: !!m[2] };
}

/**
 * bn: batch norm in every conv block (the reference's gamma = weight + 1 form); skip: residual blocks where
 * channels repeat; input: the data's [C, H, W] for the size-agnostic nets (tiny, small).
 */
export function modelSpec(
  name: string,
  o: { bn?: boolean; skip?: boolean; input?: [number, number, number]; width?: number; dropout?: number } = {},
): ModelSpec {
  if (isOnnxPath(name)) return onnxSpec(name, o);
  const bn = !!o.bn,
    reparam = true;
  const input = o.input ?? [1, 28, 28];
  const width = o.width ?? 1;
  if (!(width > 0) || !Number.isInteger(16 * width))
    throw new Error(`--width: a channel multiplier w with 16w a whole number expected (e.g. 0.25, 1, 2), got ${width}`);
  const rn = parseResNet(name);
  if (rn) {
    return {
      layers: resNet({ n: rn.n, width, inChannels: input[0], noShortcut: rn.noShortcut }),
      input,
      description:
        `ResNet-${rn.depth}${width > 1 ? ` x${width} wide` : ''}${rn.noShortcut ? ' without shortcuts' : ''}` +
        ` (CIFAR-style, as Li et al. 2018)`,
    };
  }
  if (width !== 1) throw new Error(`--width ${width}: only the ResNets have a width factor (model "${name}")`);
  if (o.dropout && name !== 'simplecnn')
    throw new Error(`--dropout: only simplecnn has a dropout layer (model "${name}")`);
  if (o.dropout !== undefined && !(o.dropout >= 0 && o.dropout < 1))
    throw new Error(`--dropout: a probability in [0, 1) expected, got ${o.dropout}`);
  switch (name) {
    case 'tiny':
      return {
        layers: convNet({ channels: [input[0], 4], dense: [8], maxpool: true, bn, reparam, pool: [2, 2] }),
        input,
        description: `conv ${input[0]}-4 + max-pool, adaptive pool 2x2, dense 16-8-10 (for tests)`,
      };
    case 'small':
      return {
        layers: convNet({ channels: [input[0], 8, 16], dense: [32], maxpool: true, bn, reparam }),
        input,
        description: `conv ${input[0]}-8-16 + max-pool, adaptive pool 4x4, dense 256-32-10`,
      };
    case 'icons':
      return {
        layers: convNet({ channels: [1, 8, 32, 64], dense: [128], maxpool: true, bn, reparam }),
        input: [1, 28, 28],
        description: 'the reference icon net: conv 1-8-32-64 + max-pool, adaptive pool 4x4, dense 1024-128-10',
      };
    case 'squares':
      return {
        layers: convNet({
          channels: [1, 8, 8, 32, 32, 64, 64],
          dense: [128],
          maxpool: false,
          bn,
          reparam,
          skip: o.skip,
        }),
        input: [1, 28, 28],
        description:
          `the reference random-squares net: conv 1-8-8-32-32-64-64, no max-pool${o.skip ? ', residual blocks' : ''}` +
          `, adaptive pool 4x4, dense 1024-128-10`,
      };
    case 'squares-small': {
      // a CPU-sized stand-in for the random-squares net with the same three variants
      const block = (cin: number, cout: number): Layer[] => [
        { type: 'conv', cin, cout, k: 3, pad: 1 },
        ...(bn ? [{ type: 'bn', c: cout, reparam } as Layer] : []),
        { type: 'relu' },
      ];
      const rep = (c: number): Layer[] => (o.skip ? [{ type: 'residual', body: block(c, c) }] : block(c, c));
      const layers: Layer[] = [
        ...block(input[0], 4),
        { type: 'maxpool', k: 2 },
        ...rep(4),
        ...block(4, 8),
        { type: 'maxpool', k: 2 },
        ...rep(8),
        { type: 'adaptive', size: [4, 4] },
        { type: 'flatten' },
        { type: 'linear', in: 128, out: 32 },
        { type: 'relu' },
        { type: 'linear', in: 32, out: 10 },
      ];
      return {
        layers,
        input,
        description:
          `conv 1-4-4-8-8 with max-pool after the first and third${o.skip ? ', residual repeats' : ''}` +
          `, adaptive pool 4x4, dense 128-32-10 (CPU-sized random-squares net)`,
      };
    }
    case 'simplecnn': {
      // Fort & Jastrzebski's SimpleCNN: 3x3 convs (pad 1) with 16, 32, 32 channels, tanh, 2x2 max-pool after each;
      // then a linear layer to the classes (with dropout before it when asked)
      const p = o.dropout ?? 0;
      const conv = (cin: number, cout: number): Layer[] => [
        { type: 'conv', cin, cout, k: 3, pad: 1 },
        { type: 'tanh' },
        { type: 'maxpool', k: 2 },
      ];
      const side = (s: number) => Math.floor(Math.floor(Math.floor(s / 2) / 2) / 2);
      const f = 32 * side(input[1]) * side(input[2]);
      const layers: Layer[] = [
        ...conv(input[0], 16),
        ...conv(16, 32),
        ...conv(32, 32),
        { type: 'flatten' },
        ...(p > 0 ? [{ type: 'dropout', p } as Layer] : []),
        { type: 'linear', in: f, out: 10 },
      ];
      return {
        layers,
        input,
        description:
          `SimpleCNN (Fort & Jastrzebski): conv ${input[0]}-16-32-32, tanh, max-pool` +
          `, linear ${f}-10${p > 0 ? `, dropout ${p}` : ''}`,
      };
    }
    case 'mlp': {
      // a small smooth (tanh) fully connected net: its Hessian is well defined everywhere (tests, toy runs)
      const f = input[0] * input[1] * input[2];
      return {
        layers: [
          { type: 'flatten' },
          { type: 'linear', in: f, out: 16 },
          { type: 'tanh' },
          { type: 'linear', in: 16, out: 10 },
        ],
        input,
        description: `fully connected ${f}-16-10 with tanh`,
      };
    }
    case 'cifar':
      return {
        layers: convNet({ channels: [3, 16, 32, 64], dense: [128], maxpool: false, bn, reparam }),
        input: [3, 32, 32],
        description: 'the reference CIFAR net: conv 3-16-32-64, no max-pool, adaptive pool 4x4, dense 1024-128-10',
      };
    default:
      throw new Error(`--model "${name}": one of ${MODEL_NAMES.join(', ')} expected`);
  }
}

/** Conv blocks of the MPO reference: conv3x3 (pad 1) -> [BN] -> ReLU -> [max-pool 2], then adaptive pool, flatten,
 * dense layers. */
export function convNet(o: {
  channels: number[];
  dense: number[];
  classes?: number;
  bn?: boolean;
  reparam?: boolean;
  maxpool?: boolean;
  skip?: boolean;
  pool?: [number, number];
}): Layer[] {
  const ls: Layer[] = [];
  for (let i = 0; i + 1 < o.channels.length; i++) {
    const cin = o.channels[i],
      cout = o.channels[i + 1];
    const block: Layer[] = [
      { type: 'conv', cin, cout, k: 3, pad: 1 },
      ...(o.bn ? [{ type: 'bn', c: cout, reparam: o.reparam } as Layer] : []),
      { type: 'relu' },
    ];
    if (o.skip && cin === cout) ls.push({ type: 'residual', body: block });
    else ls.push(...block);
    if (o.maxpool && !(o.skip && cin === cout)) ls.push({ type: 'maxpool', k: 2 });
  }
  const pool = o.pool ?? [4, 4];
  ls.push({ type: 'adaptive', size: pool }, { type: 'flatten' });
  let f = o.channels[o.channels.length - 1] * pool[0] * pool[1];
  for (const d of o.dense) {
    ls.push({ type: 'linear', in: f, out: d }, { type: 'relu' });
    f = d;
  }
  ls.push({ type: 'linear', in: f, out: o.classes ?? 10 });
  return ls;
}

/**
 * A CIFAR-style ResNet (He et al. 2016) as used by Li et al. 2018: conv3x3 16w + BN + ReLU, three stages of n basic
 * blocks (16w, 32w, 64w channels, stride 2 at the start of stages 2 and 3), global average pool, linear. Depth
 * 6n + 2 (n = 3: ResNet-20). Shortcuts are the identity, or a strided 1x1 conv + BN where the shape changes;
 * noShortcut gives the "noshort" twin (plain stacked blocks).
 */
export function resNet(o: {
  n: number;
  width?: number;
  inChannels?: number;
  classes?: number;
  noShortcut?: boolean;
}): Layer[] {
  const w = o.width ?? 1;
  const conv = (cin: number, cout: number, stride = 1, k = 3): Layer => ({
    type: 'conv',
    cin,
    cout,
    k,
    stride,
    pad: k === 3 ? 1 : 0,
    bias: false,
  });
  const bn = (c: number): Layer => ({ type: 'bn', c });
  const ls: Layer[] = [conv(o.inChannels ?? 3, 16 * w), bn(16 * w), { type: 'relu' }];
  let c = 16 * w;
  [16 * w, 32 * w, 64 * w].forEach((cout, stage) => {
    for (let b = 0; b < o.n; b++) {
      const stride = stage > 0 && b === 0 ? 2 : 1;
      const body: Layer[] = [conv(c, cout, stride), bn(cout), { type: 'relu' }, conv(cout, cout), bn(cout)];
      if (o.noShortcut) ls.push(...body);
      else
        ls.push({
          type: 'residual',
          body,
          ...(stride !== 1 || c !== cout ? { shortcut: [conv(c, cout, stride, 1), bn(cout)] } : {}),
        });
      ls.push({ type: 'relu' });
      c = cout;
    }
  });
  ls.push({ type: 'adaptive', size: [1, 1] }, { type: 'flatten' }, { type: 'linear', in: c, out: o.classes ?? 10 });
  return ls;
}
