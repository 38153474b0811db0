// Constant folding of an ONNX graph's shape arithmetic: the ops that exporters use to compute shapes and pads
// (Gather, Concat, Unsqueeze, Slice, Reshape, ...) evaluated at import time on known tensors. A value derived from
// the batch size (Shape of the data) is NaN: it may only end up as the batch axis of a Reshape.
import type { Attrs, Const } from './onnx-read.ts';

/** The ops folded here when all their inputs are known. */
export const FOLDABLE = [
  'Add',
  'Cast',
  'Concat',
  'ConstantOfShape',
  'Div',
  'Gather',
  'Identity',
  'Mul',
  'Neg',
  'Reshape',
  'Slice',
  'Squeeze',
  'Sub',
  'Transpose',
  'Unsqueeze',
];

const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
const strides = (dims: number[]) => dims.map((_, i) => size(dims.slice(i + 1)));
const isInt = (c: Const) => !(c.data instanceof Float32Array) && c.int !== false;

function make(dims: number[], data: number[], int: boolean): Const {
  return int ? { dims, data, int: true } : { dims, data: Float32Array.from(data) };
}

function ints(c: Const | undefined, what: string): number[] {
  if (!c) throw new Error(`${what} is missing`);
  return Array.from(c.data);
}

/** Multi-index iteration: calls f with each output index (row-major) of dims. */
function each(dims: number[], f: (idx: number[], flat: number) => void): void {
  const n = size(dims);
  const idx = dims.map(() => 0);
  for (let flat = 0; flat < n; flat++) {
    f(idx, flat);
    for (let a = dims.length - 1; a >= 0; a--) {
      if (++idx[a] < dims[a]) break;
      idx[a] = 0;
    }
  }
}

/** Numpy-style broadcasting of two shapes. */
function broadcast(a: number[], b: number[]): number[] {
  const r = Math.max(a.length, b.length);
  return Array.from({ length: r }, (_, i) => {
    const x = a[a.length - r + i] ?? 1,
      y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1)
      throw new Error(`shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    return Math.max(x, y);
  });
}

function binary(a: Const, b: Const, f: (x: number, y: number) => number, intDiv = false): Const {
  const dims = broadcast(a.dims, b.dims);
  const at = (c: Const, idx: number[]) => {
    const s = strides(c.dims);
    let o = 0;
    c.dims.forEach((d, i) => {
      o += (d === 1 ? 0 : idx[dims.length - c.dims.length + i]) * s[i];
    });
    return c.data[o];
  };
  const out: number[] = new Array(size(dims));
  const int = isInt(a) && isInt(b);
  each(dims, (idx, flat) => {
    const v = f(at(a, idx), at(b, idx));
    out[flat] = int && intDiv ? Math.trunc(v) : v;
  });
  return make(dims, out, int);
}

const axesOf = (c: Const | undefined, attrs: Attrs): number[] | undefined =>
  c ? Array.from(c.data) : (attrs.get('axes') as number[] | undefined);
const norm = (a: number, rank: number) => (a < 0 ? a + rank : a);

/** The value of a foldable op on known inputs (an empty input name is undefined). Throws with the reason. */
export function foldOp(op: string, x: (Const | undefined)[], attrs: Attrs): Const {
  const [a, b] = x;
  const need = (c: Const | undefined, i: number): Const => {
    if (!c) throw new Error(`input ${i} is missing`);
    return c;
  };
  switch (op) {
    case 'Identity':
      return need(a, 0);
    case 'Add':
      return binary(need(a, 0), need(b, 1), (p, q) => p + q);
    case 'Sub':
      return binary(need(a, 0), need(b, 1), (p, q) => p - q);
    case 'Mul':
      return binary(need(a, 0), need(b, 1), (p, q) => p * q);
    case 'Div':
      return binary(need(a, 0), need(b, 1), (p, q) => p / q, true);
    case 'Neg':
      return make(
        need(a, 0).dims,
        Array.from(a!.data, (v) => -v),
        isInt(a!),
      );
    case 'Cast': {
      const to = attrs.get('to') as number;
      const int = [2, 3, 4, 5, 6, 7, 9, 12, 13].includes(to);
      return make(
        need(a, 0).dims,
        Array.from(a!.data, (v) => (to === 9 ? Number(v !== 0) : int ? Math.trunc(v) : v)),
        int,
      );
    }
    case 'ConstantOfShape': {
      const dims = ints(a, 'the shape input');
      const v = attrs.get('value') as Const | undefined;
      const fill = v ? v.data[0] : 0;
      return make(dims, new Array(size(dims)).fill(fill), v ? isInt(v) : false);
    }
    case 'Gather': {
      const d = need(a, 0),
        ix = need(b, 1);
      const axis = norm((attrs.get('axis') as number | undefined) ?? 0, d.dims.length);
      const inner = size(d.dims.slice(axis + 1)),
        outer = size(d.dims.slice(0, axis)),
        n = d.dims[axis];
      const dims = [...d.dims.slice(0, axis), ...ix.dims, ...d.dims.slice(axis + 1)];
      const out: number[] = [];
      for (let o = 0; o < outer; o++)
        for (const i of Array.from(ix.data)) {
          const j = norm(i, n);
          if (j < 0 || j >= n) throw new Error(`index ${i} is out of range for an axis of ${n}`);
          for (let q = 0; q < inner; q++) out.push(d.data[(o * n + j) * inner + q]);
        }
      return make(dims, out, isInt(d));
    }
    case 'Unsqueeze': {
      const d = need(a, 0);
      const axes = axesOf(b, attrs) ?? [];
      const rank = d.dims.length + axes.length;
      const set = new Set(axes.map((v) => norm(v, rank)));
      const dims: number[] = [];
      let j = 0;
      for (let i = 0; i < rank; i++) dims.push(set.has(i) ? 1 : d.dims[j++]);
      return { ...d, dims, initializer: undefined };
    }
    case 'Squeeze': {
      const d = need(a, 0);
      const axes = axesOf(b, attrs)?.map((v) => norm(v, d.dims.length));
      return { ...d, dims: d.dims.filter((v, i) => (axes ? !axes.includes(i) : v !== 1)), initializer: undefined };
    }
    case 'Concat': {
      const parts = x.map((c, i) => need(c, i));
      const rank = parts[0].dims.length;
      const axis = norm(attrs.get('axis') as number, rank);
      if (rank !== 1 || axis !== 0) throw new Error('only 1-D tensors are concatenated at import time');
      return make(
        [parts.reduce((s, c) => s + c.dims[0], 0)],
        parts.flatMap((c) => Array.from(c.data)),
        parts.every(isInt),
      );
    }
    case 'Reshape': {
      const d = need(a, 0);
      const target = ints(b, 'the shape input').map((v, i) => (v === 0 ? d.dims[i] : v));
      const known = size(target.filter((v) => v !== -1));
      const dims = target.map((v) => (v === -1 ? size(d.dims) / known : v));
      if (size(dims) !== size(d.dims) || !dims.every(Number.isInteger))
        throw new Error(`[${d.dims.join(', ')}] cannot be reshaped to [${target.join(', ')}]`);
      return { ...d, dims, initializer: undefined };
    }
    case 'Transpose': {
      const d = need(a, 0);
      const perm = (attrs.get('perm') as number[] | undefined) ?? d.dims.map((_, i) => d.dims.length - 1 - i);
      const dims = perm.map((p) => d.dims[p]);
      const s = strides(d.dims);
      const out: number[] = new Array(size(dims));
      each(dims, (idx, flat) => {
        out[flat] = d.data[idx.reduce((o, v, i) => o + v * s[perm[i]], 0)];
      });
      return make(dims, out, isInt(d));
    }
    case 'Slice': {
      const d = need(a, 0);
      const starts = ints(x[1], 'starts'),
        ends = ints(x[2], 'ends');
      const axes = x[3] ? ints(x[3], 'axes').map((v) => norm(v, d.dims.length)) : starts.map((_, i) => i);
      const steps = x[4] ? ints(x[4], 'steps') : starts.map(() => 1);
      const lo = d.dims.map(() => 0),
        step = d.dims.map(() => 1);
      const dims = [...d.dims];
      axes.forEach((ax, i) => {
        const n = d.dims[ax],
          st = steps[i];
        const clamp = (v: number, l: number, h: number) => Math.min(Math.max(v < 0 ? v + n : v, l), h);
        const s0 = st > 0 ? clamp(starts[i], 0, n) : clamp(starts[i], 0, n - 1);
        const e0 = st > 0 ? clamp(ends[i], 0, n) : clamp(ends[i], -1, n - 1);
        lo[ax] = s0;
        step[ax] = st;
        dims[ax] = Math.max(0, Math.ceil((e0 - s0) / st));
      });
      const s = strides(d.dims);
      const out: number[] = new Array(size(dims));
      each(dims, (idx, flat) => {
        out[flat] = d.data[idx.reduce((o, v, i) => o + (lo[i] + v * step[i]) * s[i], 0)];
      });
      return make(dims, out, isInt(d));
    }
    default:
      throw new Error(`${op} is not folded at import time`);
  }
}
