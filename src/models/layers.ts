// The layer table: one row per layer type, holding everything the rest of the code needs to know about it: its
// parameters and states (with PyTorch's names), its output shape, its FLOPs, its engine forward over a weight
// manifold, and its float64 CPU reference for one point. The model graph (graph.ts), the GPU model (model.ts),
// the CPU reference model, the block sizing of runs and the benchmark's peers are loops over these rows.
import * as ops from '../engine/ops/index.ts';
import * as ref from '../engine/reference.ts';
import type { Param } from '../engine/manifold.ts';
import { type AnyTensor, numel, outSize, shapeStr, type Tensor } from '../engine/tensor.ts';

/** The GELU forms: erf (exact, PyTorch's default) and tanh (the approximation, approximate='tanh'). */
export type GeluForm = 'erf' | 'tanh';

/** A layer of a model description: the leaf layers of the table, plus `residual` (a shortcut block, sugar for an `add`
 * node). */
export type Layer =
  /**
   * k: the kernel's height, kw its width (default k); pad on all four sides (an asymmetric one is a `pad` node);
   * groups: grouped convolution (cin and cout multiples of it; groups = cin is depthwise).
   */
  | {
      type: 'conv';
      cin: number;
      cout: number;
      k: number;
      kw?: number;
      stride?: number;
      pad?: number;
      bias?: boolean;
      groups?: number;
    }
  | { type: 'linear'; in: number; out: number; bias?: boolean }
  /** eps default 1e-5, momentum (PyTorch's: the weight of the new batch) default 0.1. */
  | { type: 'bn'; c: number; reparam?: boolean; eps?: number; momentum?: number }
  | { type: 'relu' }
  | { type: 'leakyrelu'; alpha: number }
  | { type: 'tanh' }
  | { type: 'sigmoid' }
  | { type: 'gelu'; form?: GeluForm }
  | { type: 'silu' }
  | { type: 'maxpool'; k: number; stride?: number; pad?: number }
  | { type: 'avgpool'; k: number; stride?: number; pad?: number }
  | { type: 'adaptive'; size: [number, number] }
  /** Zero padding of an image: [top, left, bottom, right]. */
  | { type: 'pad'; pads: [number, number, number, number] }
  | { type: 'flatten' }
  | { type: 'dropout'; p: number }
  /** y = shortcut(x) + body(x): the shortcut is the identity unless given (e.g. a strided 1x1 conv + BN). */
  | { type: 'residual'; body: Layer[]; shortcut?: Layer[] };

/** A node's operation: a leaf layer or the sum of its two inputs. */
export type NodeOp = Exclude<Layer, { type: 'residual' }> | { type: 'add' };
export type OpType = NodeOp['type'];

export interface ParamSpec {
  name: string;
  shape: number[];
  fanIn: number;
  init: 'uniform' | 'one' | 'zero';
}
export interface StateSpec {
  name: string;
  shape: number[];
  init: number;
}

/**
 * How batch norm layers normalize: 'batch' with each point's batch statistics (training mode; the MPO reference
 * evaluates every grid point this way), 'running' with the running statistics (PyTorch's eval mode), 'update' like
 * 'batch' and then updates the running statistics (training of one point).
 */
export type BnMode = 'batch' | 'running' | 'update';

/** What a row's engine forward gets besides its inputs and parameters. */
export interface ForwardEnv {
  ctx: ops.Ctx;
  bnMode: BnMode;
  /** Dropout drops only while set (training). */
  dropoutActive: boolean;
  /** Dropout seed of this node (the step's seed plus the node's position). */
  dropoutSeed: number;
  /** A ReLU follows as this node's only consumer and is fused into it (rows with fusesRelu). */
  fuseRelu: boolean;
}

/** What a row's CPU reference gets: the batch size, the dropout seed, and the node's running statistics. */
export interface RefEnv {
  N: number;
  dropoutSeed: number;
  states?: ArrayLike<number>[];
}

export interface LayerRow<L extends NodeOp> {
  /** Parameters of the node named `name`, in order. */
  params?: (l: L, name: string) => ParamSpec[];
  /** Running statistics (not trained by gradients), in order. */
  states?: (l: L, name: string) => StateSpec[];
  /** Per-sample output shape from the inputs' per-sample shapes; throws naming the node on a mismatch. */
  outShape: (l: L, inputs: number[][], name: string) => number[];
  /** FLOPs of one forward on one sample (multiply-adds count 2); 0 when omitted. */
  flops?: (l: L, inputs: number[][], out: number[]) => number;
  /** A ReLU right after this node can be fused into its kernel. */
  fusesRelu?: boolean;
  forward: (l: L, x: AnyTensor[], p: Param[], s: Param[], env: ForwardEnv) => AnyTensor;
  reference: (l: L, x: Float64Array[], shapes: number[][], p: ArrayLike<number>[], env: RefEnv) => Float64Array;
}

function fail(name: string, l: NodeOp, msg: string): never {
  throw new Error(`node ${name} (${l.type}): ${msg}`);
}

function image(l: NodeOp, s: number[], name: string): [number, number, number] {
  if (s.length !== 3) fail(name, l, `an input [C, H, W] expected, got ${shapeStr(s)}`);
  return s as [number, number, number];
}

/** Output side of a window op, checked to be positive. */
function side(l: NodeOp, name: string, n: number, k: number, stride: number, pad: number): number {
  const o = outSize(n, k, stride, pad);
  if (o <= 0) fail(name, l, `kernel ${k} with padding ${pad} does not fit an input side of ${n}`);
  return o;
}

const same = (_l: NodeOp, x: number[][]) => x[0];
const map = (f: (v: number) => number) => (_l: NodeOp, x: Float64Array[]) => x[0].map(f);

type Rows = { [T in OpType]: LayerRow<Extract<NodeOp, { type: T }>> };

export const LAYERS: Rows = {
  conv: {
    params: (l, n) => {
      const kw = l.kw ?? l.k;
      const cg = l.cin / (l.groups ?? 1);
      const fanIn = cg * l.k * kw;
      return [
        { name: `${n}.conv.weight`, shape: [l.cout, cg, l.k, kw], fanIn, init: 'uniform' },
        ...(l.bias !== false ? [{ name: `${n}.conv.bias`, shape: [l.cout], fanIn, init: 'uniform' as const }] : []),
      ];
    },
    outShape: (l, [x], n) => {
      const [C, H, W] = image(l, x, n);
      if (C !== l.cin) fail(n, l, `input ${shapeStr(x)} has ${C} channels, the layer expects ${l.cin}`);
      const g = l.groups ?? 1;
      if (!(Number.isInteger(g) && g >= 1 && l.cin % g === 0 && l.cout % g === 0))
        fail(n, l, `${g} groups do not divide ${l.cin} -> ${l.cout} channels`);
      const st = l.stride ?? 1,
        p = l.pad ?? 0;
      return [l.cout, side(l, n, H, l.k, st, p), side(l, n, W, l.kw ?? l.k, st, p)];
    },
    flops: (l, _x, o) => (2 * numel(o) * l.cin * l.k * (l.kw ?? l.k)) / (l.groups ?? 1),
    fusesRelu: true,
    forward: (l, [x], [w, b], _s, e) => {
      const o = { stride: l.stride ?? 1, pad: l.pad ?? 0 };
      if ((l.groups ?? 1) === 1) return ops.conv2d(e.ctx, x, w, b ?? null, { ...o, relu: e.fuseRelu });
      const y = ops.groupConv2d(e.ctx, x, w, b ?? null, { ...o, groups: l.groups! });
      if (!e.fuseRelu) return y;
      const r = ops.relu(e.ctx, y);
      if (!e.ctx.tape) y.dispose(); // inference: nothing owns the pre-activation
      return r;
    },
    reference: (l, [x], [s], [w, b], e) => {
      const st = { N: e.N, Cin: s[0], H: s[1], W: s[2], Cout: l.cout, KH: l.k, KW: l.kw ?? l.k };
      if ((l.groups ?? 1) > 1)
        return ref.groupConvRef(x, w, b ?? null, { ...st, stride: l.stride ?? 1, pad: l.pad ?? 0, G: l.groups! });
      const cs: ref.ConvRefShape = {
        N: e.N,
        Cin: s[0],
        H: s[1],
        W: s[2],
        Cout: l.cout,
        KH: l.k,
        KW: l.kw ?? l.k,
        stride: l.stride ?? 1,
        pad: l.pad ?? 0,
      };
      return ref.conv2dRef(x, w, b ?? null, cs);
    },
  },
  linear: {
    params: (l, n) => [
      { name: `${n}.linear.weight`, shape: [l.out, l.in], fanIn: l.in, init: 'uniform' },
      ...(l.bias !== false
        ? [{ name: `${n}.linear.bias`, shape: [l.out], fanIn: l.in, init: 'uniform' as const }]
        : []),
    ],
    outShape: (l, [x], n) => {
      if (x.length !== 1 || x[0] !== l.in)
        fail(n, l, `an input of ${l.in} features expected, got ${shapeStr(x)} (flatten first)`);
      return [l.out];
    },
    flops: (l) => 2 * l.in * l.out,
    fusesRelu: true,
    forward: (_l, [x], [w, b], _s, e) => ops.linear(e.ctx, x, w, b ?? null, { relu: e.fuseRelu }),
    reference: (l, [x], _s, [w, b], e) => ref.linearRef(x, w, b ?? null, e.N, l.in, l.out),
  },
  bn: {
    params: (l, n) => [
      { name: `${n}.bn.weight`, shape: [l.c], fanIn: 0, init: l.reparam ? 'zero' : 'one' },
      { name: `${n}.bn.bias`, shape: [l.c], fanIn: 0, init: 'zero' },
    ],
    states: (l, n) => [
      { name: `${n}.bn.running_mean`, shape: [l.c], init: 0 },
      { name: `${n}.bn.running_var`, shape: [l.c], init: 1 },
    ],
    outShape: (l, [x], n) => {
      if (image(l, x, n)[0] !== l.c) fail(n, l, `input ${shapeStr(x)} has ${x[0]} channels, the layer expects ${l.c}`);
      return x;
    },
    forward: (l, [x], [g, b], [mean, v], e) => {
      const running =
        e.bnMode === 'batch'
          ? undefined
          : {
              mean,
              var: v,
              mode: e.bnMode === 'running' ? ('use' as const) : ('update' as const),
              momentum: l.momentum,
            };
      return ops.batchNorm2d(e.ctx, x, g, b, { reparam: l.reparam, running, eps: l.eps });
    },
    reference: (l, [x], [s], [g, b], e) => {
      const gg = l.reparam ? Array.from(g, (v) => v + 1) : g;
      const rs = e.states ? { mean: e.states[0], var: e.states[1] } : undefined;
      return ref.batchNormRef(x, gg, b, e.N, s[0], s[1] * s[2], l.eps ?? 1e-5, rs);
    },
  },
  relu: {
    outShape: same,
    forward: (_l, [x], _p, _s, e) => (e.fuseRelu ? x : ops.relu(e.ctx, x)),
    reference: map((v) => Math.max(0, v)),
  },
  leakyrelu: {
    outShape: same,
    forward: (l, [x], _p, _s, e) => ops.leakyRelu(e.ctx, x, l.alpha),
    reference: (l, [x]) => x.map(ref.leakyReluRef(l.alpha)),
  },
  tanh: { outShape: same, forward: (_l, [x], _p, _s, e) => ops.tanh(e.ctx, x), reference: map(Math.tanh) },
  sigmoid: { outShape: same, forward: (_l, [x], _p, _s, e) => ops.sigmoid(e.ctx, x), reference: map(ref.sigmoidRef) },
  gelu: {
    outShape: same,
    forward: (l, [x], _p, _s, e) => ops.gelu(e.ctx, x, l.form ?? 'erf'),
    reference: (l, [x]) => x.map(ref.geluRef(l.form ?? 'erf')),
  },
  silu: { outShape: same, forward: (_l, [x], _p, _s, e) => ops.silu(e.ctx, x), reference: map(ref.siluRef) },
  maxpool: {
    outShape: (l, [x], n) => poolShape(l, image(l, x, n), n),
    forward: (l, [x], _p, _s, e) => ops.maxPool2d(e.ctx, x, { kernel: l.k, stride: l.stride, pad: l.pad }),
    reference: (l, [x], [s], _p, e) => poolReference(l, x, s, e.N, 'max'),
  },
  avgpool: {
    outShape: (l, [x], n) => poolShape(l, image(l, x, n), n),
    forward: (l, [x], _p, _s, e) => ops.avgPool2d(e.ctx, x, { kernel: l.k, stride: l.stride, pad: l.pad }),
    reference: (l, [x], [s], _p, e) => poolReference(l, x, s, e.N, 'avg'),
  },
  adaptive: {
    outShape: (l, [x], n) => [image(l, x, n)[0], ...l.size],
    forward: (l, [x], _p, _s, e) => ops.adaptiveAvgPool2d(e.ctx, x, l.size),
    reference: (l, [x], [[C, H, W]], _p, e) =>
      ref.poolRef(
        x,
        { planes: e.N * C, H, W, OH: l.size[0], OW: l.size[1], k: 0, stride: 1, pad: 0, adaptive: true },
        'avg',
      ),
  },
  pad: {
    outShape: (l, [x], n) => {
      const [C, H, W] = image(l, x, n);
      return [C, H + l.pads[0] + l.pads[2], W + l.pads[1] + l.pads[3]];
    },
    forward: (l, [x], _p, _s, e) => ops.pad2d(e.ctx, x, l.pads),
    reference: (l, [x], [[C, H, W]], _p, e) => ref.padRef(x, e.N * C, H, W, l.pads),
  },
  flatten: {
    outShape: (_l, [x]) => [numel(x)],
    forward: (_l, [x], _p, _s, e) => ops.flatten(e.ctx, x as Tensor),
    reference: (_l, [x]) => x,
  },
  dropout: {
    outShape: same,
    forward: (l, [x], _p, _s, e) => (e.dropoutActive ? ops.dropout(e.ctx, x, l.p, e.dropoutSeed) : x),
    reference: (l, [x], _s, _p, e) => ref.dropoutRef(x, l.p, e.dropoutSeed),
  },
  add: {
    outShape: (l, [a, b], n) => {
      if (shapeStr(a) !== shapeStr(b)) fail(n, l, `inputs ${shapeStr(a)} and ${shapeStr(b)} differ`);
      return a;
    },
    forward: (_l, [a, b], _p, _s, e) => ops.add(e.ctx, a, b),
    reference: (_l, [a, b]) => a.map((v, i) => v + b[i]),
  },
};

type Pool = Extract<NodeOp, { type: 'maxpool' | 'avgpool' }>;
function poolShape(l: Pool, [C, H, W]: number[], n: string): number[] {
  const st = l.stride ?? l.k,
    p = l.pad ?? 0;
  return [C, side(l, n, H, l.k, st, p), side(l, n, W, l.k, st, p)];
}
function poolReference(l: Pool, x: Float64Array, [C, H, W]: number[], N: number, kind: 'max' | 'avg'): Float64Array {
  const stride = l.stride ?? l.k,
    pad = l.pad ?? 0;
  const p: ref.PoolRef = {
    planes: N * C,
    H,
    W,
    OH: outSize(H, l.k, stride, pad),
    OW: outSize(W, l.k, stride, pad),
    k: l.k,
    stride,
    pad,
    adaptive: false,
  };
  return ref.poolRef(x, p, kind);
}

/** The row of an op (typed loosely: callers hold a NodeOp of any type). */
export function rowOf(l: NodeOp): LayerRow<NodeOp> {
  const row = (LAYERS as Record<string, LayerRow<NodeOp>>)[l.type];
  if (!row)
    throw new Error(`layer type "${l.type}" is not in the layer table (known: ${Object.keys(LAYERS).join(', ')})`);
  return row;
}
