// Models as a list of layer specs, run two ways: on the GPU through the engine's ops over a weight
// manifold, and on the CPU in float64 (one point, materialized weights) as the reference that whole-model
// gradients are checked against.
import type { Gpu } from '../engine/device.ts';
import { Param } from '../engine/manifold.ts';
import * as ops from '../engine/ops.ts';
import * as ref from '../engine/reference.ts';
import { Tensor, type AnyTensor, numel } from '../engine/tensor.ts';
import { rng } from '../engine/random.ts';

export type Layer =
  | { type: 'conv'; cin: number; cout: number; k: number; stride?: number; pad?: number; bias?: boolean }
  | { type: 'linear'; in: number; out: number; bias?: boolean }
  | { type: 'bn'; c: number; reparam?: boolean }
  | { type: 'relu' }
  | { type: 'tanh' }
  | { type: 'maxpool'; k: number; stride?: number; pad?: number }
  | { type: 'avgpool'; k: number; stride?: number; pad?: number }
  | { type: 'adaptive'; size: [number, number] }
  | { type: 'flatten' }
  | { type: 'dropout'; p: number }
  /** y = shortcut(x) + body(x): the shortcut is the identity unless given (e.g. a strided 1x1 conv + BN). */
  | { type: 'residual'; body: Layer[]; shortcut?: Layer[] };

/** Parameter shapes of a layer list, in order. */
export function paramShapes(layers: Layer[]): { name: string; shape: number[]; fanIn: number; init: 'uniform' | 'one' | 'zero' }[] {
  const out: ReturnType<typeof paramShapes> = [];
  const walk = (ls: Layer[], prefix: string) =>
    ls.forEach((l, i) => {
      const n = `${prefix}${i}`;
      if (l.type === 'conv') {
        const fan = l.cin * l.k * l.k;
        out.push({ name: `${n}.conv.weight`, shape: [l.cout, l.cin, l.k, l.k], fanIn: fan, init: 'uniform' });
        if (l.bias !== false) out.push({ name: `${n}.conv.bias`, shape: [l.cout], fanIn: fan, init: 'uniform' });
      } else if (l.type === 'linear') {
        out.push({ name: `${n}.linear.weight`, shape: [l.out, l.in], fanIn: l.in, init: 'uniform' });
        if (l.bias !== false) out.push({ name: `${n}.linear.bias`, shape: [l.out], fanIn: l.in, init: 'uniform' });
      } else if (l.type === 'bn') {
        out.push({ name: `${n}.bn.weight`, shape: [l.c], fanIn: 0, init: l.reparam ? 'zero' : 'one' });
        out.push({ name: `${n}.bn.bias`, shape: [l.c], fanIn: 0, init: 'zero' });
      } else if (l.type === 'residual') {
        walk(l.body, `${n}.`);
        if (l.shortcut) walk(l.shortcut, `${n}.shortcut.`);
      }
    });
  walk(layers, '');
  return out;
}

/** BN running statistics of a layer list, in order: running_mean and running_var per BN layer (PyTorch's names). */
export function stateShapes(layers: Layer[]): { name: string; shape: number[]; init: number }[] {
  const out: ReturnType<typeof stateShapes> = [];
  const walk = (ls: Layer[], prefix: string) =>
    ls.forEach((l, i) => {
      const n = `${prefix}${i}`;
      if (l.type === 'bn') {
        out.push({ name: `${n}.bn.running_mean`, shape: [l.c], init: 0 });
        out.push({ name: `${n}.bn.running_var`, shape: [l.c], init: 1 });
      } else if (l.type === 'residual') {
        walk(l.body, `${n}.`);
        if (l.shortcut) walk(l.shortcut, `${n}.shortcut.`);
      }
    });
  walk(layers, '');
  return out;
}

/** Fresh running statistics (mean 0, variance 1) in basis 0 of B, the other basis tensors 0. */
export function initStates(layers: Layer[], B: number): Float32Array[] {
  return stateShapes(layers).map((s) => {
    const a = new Float32Array(B * numel(s.shape));
    a.fill(s.init, 0, numel(s.shape));
    return a;
  });
}

/**
 * How batch norm layers normalize: 'batch' with each point's batch statistics (training mode; the MPO reference
 * evaluates every grid point this way), 'running' with the running statistics (PyTorch's eval mode), 'update' like
 * 'batch' and then updates the running statistics (training of one point).
 */
export type BnMode = 'batch' | 'running' | 'update';

/** PyTorch's default init (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv and linear weights and biases), B independent draws. */
export function initParams(layers: Layer[], B: number, seed: number): Float32Array[] {
  const r = rng(seed);
  return paramShapes(layers).map((p) => {
    const n = B * numel(p.shape);
    if (p.init === 'one') return new Float32Array(n).fill(1);
    if (p.init === 'zero') return new Float32Array(n);
    const bound = 1 / Math.sqrt(p.fanIn);
    return Float32Array.from({ length: n }, () => (2 * r() - 1) * bound);
  });
}

export class Sequential {
  readonly params: Param[];
  /** BN running statistics, B basis tensors each like the parameters (not trained by gradients). */
  readonly states: Param[];
  bnMode: BnMode = 'batch';
  /** Dropout layers drop only while this is set (training); otherwise they are the identity (evaluation). */
  dropoutActive = false;

  constructor(readonly gpu: Gpu, readonly layers: Layer[], readonly B: number, init: Float32Array[], states?: Float32Array[]) {
    const shapes = paramShapes(layers);
    if (init.length !== shapes.length) throw new Error(`model: ${init.length} initial tensors for ${shapes.length} parameters`);
    this.params = shapes.map((s, i) => new Param(gpu, s.name, s.shape, B, init[i]));
    const st = stateShapes(layers);
    const sInit = states ?? initStates(layers, B);
    if (sInit.length !== st.length) throw new Error(`model: ${sInit.length} running-statistics tensors for ${st.length}`);
    this.states = st.map((s, i) => new Param(gpu, s.name, s.shape, B, sInit[i]));
  }

  static create(gpu: Gpu, layers: Layer[], B = 1, seed = 0): Sequential {
    return new Sequential(gpu, layers, B, initParams(layers, B, seed));
  }

  /** Parameters of one point (the size of one weight vector). */
  get pointSize(): number {
    return this.params.reduce((a, p) => a + p.size, 0);
  }

  /** Logits [K, N, classes] for the shared input batch x [N, C, H, W]. Without a tape, intermediates are freed as it goes. */
  forward(ctx: ops.Ctx, x: AnyTensor, dropoutSeed = 0): Tensor {
    let pi = 0, si = 0;
    const next = () => this.params[pi++];
    const mode = this.bnMode;
    const running = () => {
      const mean = this.states[si++], v = this.states[si++];
      return mode === 'batch' ? undefined : { mean, var: v, mode: mode === 'running' ? ('use' as const) : ('update' as const) };
    };
    const run = (ls: Layer[], input: AnyTensor): AnyTensor => {
      let h = input;
      for (let i = 0; i < ls.length; i++) {
        const l = ls[i];
        let y: AnyTensor;
        switch (l.type) {
          case 'conv': {
            const w = next(), b = l.bias !== false ? next() : null;
            const fuse = ls[i + 1]?.type === 'relu' && !ctx.pairedMasks;
            y = ops.conv2d(ctx, h, w, b, { stride: l.stride ?? 1, pad: l.pad ?? 0, relu: fuse });
            if (fuse) i++;
            break;
          }
          case 'linear': {
            const w = next(), b = l.bias !== false ? next() : null;
            const fuse = ls[i + 1]?.type === 'relu' && !ctx.pairedMasks;
            y = ops.linear(ctx, h, w, b, { relu: fuse });
            if (fuse) i++;
            break;
          }
          case 'bn': y = ops.batchNorm2d(ctx, h, next(), next(), { reparam: l.reparam, running: running() }); break;
          case 'relu': y = ops.relu(ctx, h); break;
          case 'tanh': y = ops.tanh(ctx, h); break;
          case 'maxpool': y = ops.maxPool2d(ctx, h, { kernel: l.k, stride: l.stride, pad: l.pad }); break;
          case 'avgpool': y = ops.avgPool2d(ctx, h, { kernel: l.k, stride: l.stride, pad: l.pad }); break;
          case 'adaptive': y = ops.adaptiveAvgPool2d(ctx, h, l.size); break;
          case 'flatten': y = ops.flatten(ctx, h as Tensor); break;
          case 'dropout': y = this.dropoutActive ? ops.dropout(ctx, h, l.p, dropoutSeed + i) : h; break;
          case 'residual': {
            const body = run(l.body, h);
            const sc = l.shortcut ? run(l.shortcut, h) : h;
            y = ops.add(ctx, sc, body);
            if (!ctx.tape) {
              free(body, h);
              if (sc !== h) free(sc, h);
            }
            break;
          }
        }
        if (!ctx.tape && h !== input && y !== h && baseOfAny(y) !== baseOfAny(h)) free(h, input);
        h = y;
      }
      return h;
    };
    const free = (t: AnyTensor, keep: AnyTensor) => {
      if (baseOfAny(t) !== baseOfAny(keep)) baseOfAny(t).dispose();
    };
    const y = run(this.layers, x);
    return y instanceof Tensor ? y : y.base;
  }

  dispose(): void {
    for (const p of this.params) p.dispose();
    for (const p of this.states) p.dispose();
  }
}

const baseOfAny = (t: AnyTensor): Tensor => (t instanceof Tensor ? t : t.base);

/**
 * CPU float64 forward of one point with materialized parameter values (one array per parameter, in
 * paramShapes order). x: [N, ...inShape]. Returns the output [N, ...].
 */
export function sequentialRef(layers: Layer[], values: ArrayLike<number>[], x: ArrayLike<number>, N: number, inShape: number[], dropoutSeed = 0, states?: ArrayLike<number>[]): { y: Float64Array; shape: number[] } {
  let pi = 0, si = 0;
  const run = (ls: Layer[], input: Float64Array, shape: number[]): { y: Float64Array; shape: number[] } => {
    let h = input, s = shape;
    ls.forEach((l, i) => {
      switch (l.type) {
        case 'conv': {
          const [C, H, W] = s;
          const cs: ref.ConvRefShape = { N, Cin: C, H, W, Cout: l.cout, KH: l.k, KW: l.k, stride: l.stride ?? 1, pad: l.pad ?? 0 };
          const w = values[pi++], b = l.bias !== false ? values[pi++] : null;
          h = ref.conv2dRef(h, w, b, cs);
          s = [l.cout, ...ref.convOut(cs)];
          break;
        }
        case 'linear': {
          const w = values[pi++], b = l.bias !== false ? values[pi++] : null;
          h = ref.linearRef(h, w, b, N, l.in, l.out);
          s = [l.out];
          break;
        }
        case 'bn': {
          const g = values[pi++], bt = values[pi++];
          const gg = l.reparam ? Array.from(g, (v) => v + 1) : g;
          const rs = states ? { mean: states[si++], var: states[si++] } : undefined;
          h = ref.batchNormRef(h, gg, bt, N, s[0], s[1] * s[2], 1e-5, rs);
          break;
        }
        case 'relu': h = h.map((v) => Math.max(0, v)); break;
        case 'tanh': h = h.map(Math.tanh); break;
        case 'maxpool': case 'avgpool': case 'adaptive': {
          const [C, H, W] = s;
          const k = l.type === 'adaptive' ? 0 : l.k, stride = l.type === 'adaptive' ? 1 : l.stride ?? l.k, pad = l.type === 'adaptive' ? 0 : l.pad ?? 0;
          const [OH, OW] = l.type === 'adaptive' ? l.size : [Math.floor((H + 2 * pad - k) / stride) + 1, Math.floor((W + 2 * pad - k) / stride) + 1];
          h = ref.poolRef(h, { planes: N * C, H, W, OH, OW, k, stride, pad, adaptive: l.type === 'adaptive' }, l.type === 'maxpool' ? 'max' : 'avg');
          s = [C, OH, OW];
          break;
        }
        case 'flatten': s = [numel(s)]; break;
        case 'dropout': h = ref.dropoutRef(h, l.p, dropoutSeed + i); break;
        case 'residual': {
          const b = run(l.body, h, s);
          const sc = l.shortcut ? run(l.shortcut, h, s).y : h;
          h = b.y.map((v, j) => v + sc[j]);
          s = b.shape;
          break;
        }
      }
    });
    return { y: h, shape: s };
  };
  return run(layers, Float64Array.from(x), inShape);
}

/** Conv blocks of the MPO reference: conv3x3 (pad 1) -> [BN] -> ReLU -> [max-pool 2], then adaptive pool, flatten, dense layers. */
export function convNet(o: { channels: number[]; dense: number[]; classes?: number; bn?: boolean; reparam?: boolean; maxpool?: boolean; skip?: boolean; pool?: [number, number] }): Layer[] {
  const ls: Layer[] = [];
  for (let i = 0; i + 1 < o.channels.length; i++) {
    const cin = o.channels[i], cout = o.channels[i + 1];
    const block: Layer[] = [{ type: 'conv', cin, cout, k: 3, pad: 1 }, ...(o.bn ? [{ type: 'bn', c: cout, reparam: o.reparam } as Layer] : []), { type: 'relu' }];
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
export function resNet(o: { n: number; width?: number; inChannels?: number; classes?: number; noShortcut?: boolean }): Layer[] {
  const w = o.width ?? 1;
  const conv = (cin: number, cout: number, stride = 1, k = 3): Layer => ({ type: 'conv', cin, cout, k, stride, pad: k === 3 ? 1 : 0, bias: false });
  const bn = (c: number): Layer => ({ type: 'bn', c });
  const ls: Layer[] = [conv(o.inChannels ?? 3, 16 * w), bn(16 * w), { type: 'relu' }];
  let c = 16 * w;
  [16 * w, 32 * w, 64 * w].forEach((cout, stage) => {
    for (let b = 0; b < o.n; b++) {
      const stride = stage > 0 && b === 0 ? 2 : 1;
      const body: Layer[] = [conv(c, cout, stride), bn(cout), { type: 'relu' }, conv(cout, cout), bn(cout)];
      if (o.noShortcut) ls.push(...body);
      else ls.push({ type: 'residual', body, ...(stride !== 1 || c !== cout ? { shortcut: [conv(c, cout, stride, 1), bn(cout)] } : {}) });
      ls.push({ type: 'relu' });
      c = cout;
    }
  });
  ls.push({ type: 'adaptive', size: [1, 1] }, { type: 'flatten' }, { type: 'linear', in: c, out: o.classes ?? 10 });
  return ls;
}
