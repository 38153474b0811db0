// The ONNX importer's op mappings: each ONNX op on computed tensors onto nodes of the layer table, its attributes
// checked against what the engine computes (anything else refused, naming the attribute and the supported values).
import type { NodeOp } from './layers.ts';
import type { Attrs, Const, ImporterApi, Named, OnnxNode, Run } from './onnx.ts';

/** The ONNX ops the importer maps (besides the folded shape arithmetic of FOLDABLE). */
export const SUPPORTED_OPS = [
  'Add',
  'AveragePool',
  'BatchNormalization',
  'Constant',
  'Conv',
  'Dropout',
  'Flatten',
  'Gelu',
  'Gemm',
  'GlobalAveragePool',
  'Identity',
  'LeakyRelu',
  'MatMul',
  'MaxPool',
  'Pad',
  'Relu',
  'Reshape',
  'Shape',
  'Sigmoid',
  'Squeeze',
  'Tanh',
  'Erf (in the GELU pattern)',
  'Mul (in the GELU and SiLU patterns)',
];

const list = (v: unknown) => (Array.isArray(v) ? `[${v.join(', ')}]` : String(v));

/** Attribute checks: the value (or its default) must be one of the supported ones. */
function attr<T>(
  api: ImporterApi,
  n: OnnxNode,
  a: Attrs,
  name: string,
  dflt: T,
  ok: (v: T) => boolean,
  sup: string,
): T {
  const v = (a.has(name) ? a.get(name) : dflt) as T;
  if (!ok(v)) api.fail(n, `attribute ${name} = ${list(v)} is not supported (supported: ${sup})`);
  return v;
}

const same = (v: number[]) => v.every((x) => x === v[0]);

/** A float tensor as a parameter: its initializer's name, or the node's output name with a suffix. */
function named(c: Const, fallback: string): Named {
  return { name: c.initializer ?? fallback, data: Float32Array.from(c.data) };
}

function transpose2(c: Const): Const {
  const [r, k] = c.dims;
  const d = new Float32Array(r * k);
  for (let i = 0; i < r; i++) for (let j = 0; j < k; j++) d[j * r + i] = c.data[i * k + j];
  return { dims: [k, r], data: d, initializer: c.initializer };
}

function windowAttrs(api: ImporterApi, n: OnnxNode, a: Attrs, rank: number) {
  const ks = a.get('kernel_shape') as number[] | undefined;
  attr(api, n, a, 'auto_pad', 'NOTSET', (v) => v === 'NOTSET' || v === 'VALID', 'NOTSET, VALID');
  attr(api, n, a, 'dilations', [1, 1], (v: number[]) => v.every((d) => d === 1), '[1, 1]');
  const strides = attr(api, n, a, 'strides', [1, 1], (v: number[]) => v.length === rank && same(v), 'equal strides');
  const pads = attr(api, n, a, 'pads', [0, 0, 0, 0], (v: number[]) => v.length === 2 * rank, 'four pads');
  return { ks, stride: strides[0], pads: pads as [number, number, number, number] };
}

function conv(api: ImporterApi, n: OnnxNode, i: number, a: Attrs) {
  const x = api.run(n, 0);
  const w = api.known(n, 1, 'the weight');
  if (w.dims.length !== 4) api.fail(n, `weight ${list(w.dims)}: a 2-D convolution [Cout, Cin, KH, KW] expected`);
  const cin = x.shape[0];
  const groups = attr(
    api,
    n,
    a,
    'group',
    1,
    (v: number) => Number.isInteger(v) && v >= 1 && cin % v === 0 && w.dims[0] % v === 0 && w.dims[1] * v === cin,
    `a number of groups dividing the ${cin} input and ${w.dims[0]} output channels` +
      ", with the weight's [Cout, Cin/group, ...]",
  );
  const { ks, stride, pads } = windowAttrs(api, n, a, 2);
  const [cout, , kh, kw] = w.dims;
  if (ks && (ks[0] !== kh || ks[1] !== kw))
    api.fail(n, `kernel_shape ${list(ks)} differs from the weight ${list(w.dims)}`);
  const b = api.value(n, 2);
  if (b && b.kind !== 'const') api.fail(n, 'the bias (input 2) must be an initializer');
  const out = n.output?.[0] ?? '';
  const params = [named(w, `${out}.weight`), ...(b?.kind === 'const' ? [named(b.c, `${out}.bias`)] : [])];
  let h = x;
  let pad = pads[0];
  if (!same(pads)) {
    h = api.emit(n, i, { type: 'pad', pads: [pads[0], pads[1], pads[2], pads[3]] }, [x], { suffix: '.pad' });
    pad = 0;
  }
  const op: NodeOp = { type: 'conv', cin, cout, k: kh, kw, stride, pad, bias: !!b, ...(groups > 1 ? { groups } : {}) };
  api.setOut(n, api.emit(n, i, op, [h], { params }));
}

function linear(api: ImporterApi, n: OnnxNode, i: number, w: Const, bias: Const | null, transposed: boolean) {
  const x = api.run(n, 0);
  if (x.shape.length !== 1) api.fail(n, `input [N, ${x.shape.join(', ')}]: [N, features] expected (flatten first)`);
  if (w.dims.length !== 2) api.fail(n, `weight ${list(w.dims)}: a matrix expected`);
  const W = transposed ? transpose2(w) : w;
  const [out, inF] = W.dims;
  if (bias && bias.data.length !== out) api.fail(n, `bias ${list(bias.dims)} does not match ${out} outputs`);
  const name = n.output?.[0] ?? '';
  const params = [named(W, `${name}.weight`), ...(bias ? [named(bias, `${name}.bias`)] : [])];
  const y = api.emit(n, i, { type: 'linear', in: inF, out, bias: !!bias }, [x], { params });
  if (transposed) api.transposed(params[0].name);
  api.setOut(n, y);
}

function gemm(api: ImporterApi, n: OnnxNode, i: number, a: Attrs) {
  attr(api, n, a, 'transA', 0, (v) => v === 0, '0');
  attr(api, n, a, 'alpha', 1, (v) => v === 1, '1');
  attr(api, n, a, 'beta', 1, (v) => v === 1, '1');
  const tB = attr(api, n, a, 'transB', 0, (v) => v === 0 || v === 1, '0, 1');
  const w = api.known(n, 1, 'B (the weight)');
  const c = api.value(n, 2);
  if (c && c.kind !== 'const') api.fail(n, 'C (the bias, input 2) must be an initializer');
  linear(api, n, i, w, c?.kind === 'const' ? c.c : null, tB === 0);
}

/**
 * x + constant right after a bias-free Conv, Gemm or MatMul (its own output, used by this Add alone): the constant
 * becomes that node's bias. Its shape must broadcast as a bias does: [C, 1, 1] on a conv's [N, C, H, W] (a [C]
 * would be added along W), [out] on a linear's [N, out], leading 1s allowed.
 */
function biasAdd(api: ImporterApi, n: OnnxNode, x: Run, c: Const): boolean {
  const xin = (n.input ?? []).find((_, j) => api.value(n, j)?.kind === 'run') ?? '';
  const from = api.producer(xin);
  if (!from || !['Conv', 'Gemm', 'MatMul'].includes(from.opType ?? '') || api.only(xin) === null) return false;
  const node = api.graphNode(x.node);
  const op = node?.op;
  if (!node || !op || (op.type !== 'linear' && op.type !== 'conv') || op.bias !== false) return false;
  const want = op.type === 'linear' ? [1, op.out] : [1, op.cout, 1, 1];
  const dims = [...Array(Math.max(0, want.length - c.dims.length)).fill(1), ...c.dims];
  if (list(dims) !== list(want))
    api.fail(
      n,
      `the constant ${list(c.dims)} is not a bias of ${from.name || from.opType} (${list(want.slice(1))} expected)`,
    );
  op.bias = true;
  const b = named(c, `${n.output?.[0]}.bias`);
  api.tensorsOf(node.name)!.params.push(b.data);
  node.names = { ...node.names, params: [...(node.names?.params ?? []), b.name] };
  api.setOut(n, x);
  return true;
}

function add(api: ImporterApi, n: OnnxNode, i: number) {
  const [p, q] = [api.value(n, 0), api.value(n, 1)];
  if (p?.kind === 'run' && q?.kind === 'run') {
    if (list(p.shape) !== list(q.shape))
      api.fail(n, `inputs [N, ${p.shape.join(', ')}] and [N, ${q.shape.join(', ')}] differ (no broadcasting)`);
    api.setOut(n, api.emit(n, i, { type: 'add' }, [p, q]));
    return;
  }
  const x = p?.kind === 'run' ? p : q?.kind === 'run' ? q : null;
  const c = p?.kind === 'const' ? p.c : q?.kind === 'const' ? q.c : null;
  if (x && c && biasAdd(api, n, x, c)) return;
  api.fail(n, 'adding a constant is supported only as the bias of a bias-free Conv, Gemm or MatMul right before it');
}

function pool(api: ImporterApi, n: OnnxNode, i: number, a: Attrs, kind: 'maxpool' | 'avgpool') {
  const x = api.run(n, 0);
  const { ks, stride, pads } = windowAttrs(api, n, a, 2);
  if (ks?.length !== 2 || ks[0] !== ks[1]) api.fail(n, `kernel_shape ${list(ks)}: a square window expected`);
  attr(api, n, a, 'ceil_mode', 0, (v) => v === 0, '0');
  attr(api, n, a, 'storage_order', 0, (v) => v === 0, '0');
  if (!same(pads) || 2 * pads[0] > ks[0])
    api.fail(n, `attribute pads = ${list(pads)} is not supported (supported: equal pads of at most half the window)`);
  if (kind === 'avgpool' && pads[0] > 0)
    attr(api, n, a, 'count_include_pad', 0, (v) => v === 1, '1 when padded (the zero padding counts, as PyTorch)');
  if ((n.output ?? []).filter(Boolean).length > 1) api.fail(n, 'the Indices output is not supported');
  api.setOut(n, api.emit(n, i, { type: kind, k: ks[0], stride, pad: pads[0] }, [x]));
}

function batchNorm(api: ImporterApi, n: OnnxNode, i: number, a: Attrs) {
  const x = api.run(n, 0);
  if (x.shape.length !== 3) api.fail(n, `input [N, ${x.shape.join(', ')}]: only images [N, C, H, W] are normalized`);
  attr(api, n, a, 'training_mode', 0, (v) => v === 0, '0');
  if ((n.output ?? []).filter(Boolean).length > 1)
    api.fail(n, 'the running mean and variance outputs are not supported');
  const eps = (a.get('epsilon') as number | undefined) ?? 1e-5;
  const m = (a.get('momentum') as number | undefined) ?? 0.9;
  const t = ['scale', 'B', 'input_mean', 'input_var'].map((w, j) => api.known(n, j + 1, w));
  const C = x.shape[0];
  t.forEach((c, j) => {
    if (c.data.length !== C) api.fail(n, `input ${j + 1} ${list(c.dims)} does not match ${C} channels`);
  });
  const out = n.output?.[0] ?? '';
  const nm = ['weight', 'bias', 'running_mean', 'running_var'].map((s, j) => named(t[j], `${out}.${s}`));
  const op: NodeOp = {
    type: 'bn',
    c: C,
    eps: Number(eps.toPrecision(7)),
    momentum: Number((1 - m).toPrecision(6)),
  };
  api.setOut(n, api.emit(n, i, op, [x], { params: nm.slice(0, 2), states: nm.slice(2) }));
}

/** To [N, F]: a flatten; to the same shape: nothing. */
function reshapeTo(api: ImporterApi, n: OnnxNode, i: number, x: Run, per: number[]) {
  if (list(per) === list(x.shape)) return api.setOut(n, x);
  if (per.length === 1 && per[0] === x.shape.reduce((p, q) => p * q, 1))
    return api.setOut(n, x.shape.length === 1 ? x : api.emit(n, i, { type: 'flatten' }, [x]));
  api.fail(
    n,
    `reshaping [N, ${x.shape.join(', ')}] to [N, ${per.join(', ')}] is not supported (only to [N, features])`,
  );
}

function reshape(api: ImporterApi, n: OnnxNode, i: number) {
  const x = api.run(n, 0);
  const t = Array.from(api.known(n, 1, 'the shape').data);
  const total = x.shape.reduce((p, q) => p * q, 1);
  // the batch axis: the data's (NaN), copied (0), or inferred (-1) with the rest fixed
  if (!(Number.isNaN(t[0]) || t[0] === 0 || t[0] === -1) || t.slice(1).some(Number.isNaN))
    api.fail(n, `target shape [${t.join(', ')}] must keep the batch axis first`);
  let per = t.slice(1).map((v, j) => (v === 0 ? x.shape[j] : v));
  if (per.includes(-1)) {
    if (t[0] === -1) api.fail(n, `target shape [${t.join(', ')}] infers two axes`);
    const known = per.filter((v) => v !== -1).reduce((p, q) => p * q, 1);
    per = per.map((v) => (v === -1 ? total / known : v));
  }
  reshapeTo(api, n, i, x, per);
}

function squeeze(api: ImporterApi, n: OnnxNode, i: number, a: Attrs) {
  const x = api.run(n, 0);
  const c = api.value(n, 1);
  const axes = c?.kind === 'const' ? Array.from(c.c.data) : (a.get('axes') as number[] | undefined);
  const full = [0, ...x.shape];
  const ax = axes?.map((v) => (v < 0 ? v + full.length : v));
  if (ax?.includes(0)) api.fail(n, 'squeezing the batch axis is not supported');
  reshapeTo(
    api,
    n,
    i,
    x,
    x.shape.filter((v, j) => (ax ? !ax.includes(j + 1) : v !== 1)),
  );
}

function pad(api: ImporterApi, n: OnnxNode, i: number, a: Attrs) {
  const x = api.run(n, 0);
  attr(api, n, a, 'mode', 'constant', (v) => v === 'constant', 'constant');
  attr(api, n, a, 'value', 0, (v) => v === 0, '0 (zero padding)');
  const p = a.has('pads') ? (a.get('pads') as number[]) : Array.from(api.known(n, 1, 'pads').data);
  const v = api.value(n, 2);
  if (v && (v.kind !== 'const' || v.c.data[0] !== 0)) api.fail(n, 'only zero padding is supported');
  if (api.value(n, 3)) api.fail(n, 'the axes input is not supported');
  if (p.length !== 8 || p[0] || p[1] || p[4] || p[5] || p.some((q) => q < 0))
    api.fail(n, `pads [${p.join(', ')}]: padding of the image axes H and W by >= 0 expected`);
  api.setOut(n, api.emit(n, i, { type: 'pad', pads: [p[2], p[3], p[6], p[7]] }, [x]));
}

/** Div(x, sqrt 2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5), or Mul(x, 1/sqrt 2) first: GELU (erf). */
function gelu(api: ImporterApi, n: OnnxNode, i: number): boolean {
  const x = api.value(n, 0),
    c = api.value(n, 1);
  if (x?.kind !== 'run' || c?.kind !== 'const' || c.c.data.length !== 1) return false;
  const s = c.c.data[0];
  if (!(n.opType === 'Div' ? Math.abs(s - Math.SQRT2) < 1e-5 : Math.abs(s - Math.SQRT1_2) < 1e-5)) return false;
  const chain: number[] = [];
  let cur = n.output?.[0] ?? '';
  const next = (op: string, test: (m: OnnxNode) => boolean): boolean => {
    const j = api.only(cur);
    if (j === null) return false;
    const m = api.node(j);
    if (m.opType !== op || !test(m)) return false;
    chain.push(j);
    cur = m.output?.[0] ?? '';
    return true;
  };
  const isConst = (m: OnnxNode, v: number) =>
    (m.input ?? []).some((name) => {
      const q = api.peek(name);
      return q?.kind === 'const' && q.c.data.length === 1 && Math.abs(q.c.data[0] - v) < 1e-6;
    });
  const xName = n.input?.[0];
  const ok =
    next('Erf', () => true) &&
    next('Add', (m) => isConst(m, 1)) &&
    next('Mul', (m) => (m.input ?? []).includes(xName ?? '')) &&
    next('Mul', (m) => isConst(m, 0.5));
  if (!ok) return false;
  for (const j of chain) api.consume(j);
  const last = api.node(chain[chain.length - 1]);
  const from = chain.map((j) => api.node(j).name ?? '');
  api.setOut(last, api.emit(n, i, { type: 'gelu', form: 'erf' }, [x], { from }));
  return true;
}

/** Sigmoid(x) -> Mul(x, .): SiLU. */
function silu(api: ImporterApi, n: OnnxNode, i: number, x: Run): boolean {
  const j = api.only(n.output?.[0] ?? '');
  if (j === null) return false;
  const m = api.node(j);
  if (m.opType !== 'Mul' || !(m.input ?? []).includes(n.input?.[0] ?? '')) return false;
  api.consume(j);
  api.setOut(m, api.emit(n, i, { type: 'silu' }, [x], { from: [m.name ?? ''] }));
  return true;
}

/** Maps an op on computed tensors (mapRuntime is called for every node that is not folded to a constant). */
export function mapRuntime(api: ImporterApi, n: OnnxNode, i: number, op: string, a: Attrs) {
  const one = (l: NodeOp) => api.setOut(n, api.emit(n, i, l, [api.run(n, 0)]));
  switch (op) {
    case 'Conv':
      return conv(api, n, i, a);
    case 'Gemm':
      return gemm(api, n, i, a);
    case 'MatMul':
      return linear(api, n, i, api.known(n, 1, 'B (the weight)'), null, true);
    case 'Add':
      return add(api, n, i);
    case 'BatchNormalization':
      return batchNorm(api, n, i, a);
    case 'Relu':
      return one({ type: 'relu' });
    case 'LeakyRelu':
      return one({ type: 'leakyrelu', alpha: Number(((a.get('alpha') as number) ?? 0.01).toPrecision(7)) });
    case 'Tanh':
      return one({ type: 'tanh' });
    case 'Sigmoid':
      if (silu(api, n, i, api.run(n, 0))) return;
      return one({ type: 'sigmoid' });
    case 'Gelu': {
      const f = attr(api, n, a, 'approximate', 'none', (v) => v === 'none' || v === 'tanh', 'none, tanh');
      return one({ type: 'gelu', form: f === 'tanh' ? 'tanh' : 'erf' });
    }
    case 'Div':
    case 'Mul':
      if (gelu(api, n, i)) return;
      api.fail(n, 'on a computed tensor, only in the GELU (Div, Erf, Add, Mul, Mul) and SiLU (Sigmoid, Mul) patterns');
      break;
    case 'MaxPool':
      return pool(api, n, i, a, 'maxpool');
    case 'AveragePool':
      return pool(api, n, i, a, 'avgpool');
    case 'GlobalAveragePool':
      return one({ type: 'adaptive', size: [1, 1] });
    case 'Flatten': {
      attr(api, n, a, 'axis', 1, (v) => v === 1, '1');
      const x = api.run(n, 0);
      return api.setOut(n, x.shape.length === 1 ? x : api.emit(n, i, { type: 'flatten' }, [x]));
    }
    case 'Reshape':
      return reshape(api, n, i);
    case 'Squeeze':
      return squeeze(api, n, i, a);
    case 'Pad':
      return pad(api, n, i, a);
    case 'Identity':
    case 'Dropout': {
      if ((n.output ?? []).slice(1).some((o) => o && api.users(o).length > 0))
        api.fail(n, 'the mask output is not supported');
      return api.setOut(n, api.run(n, 0));
    }
    default:
      api.fail(n, `op ${op} is not supported; supported ops: ${SUPPORTED_OPS.join(', ')}`);
  }
}
