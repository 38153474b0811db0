// Tensors: a pooled GPU buffer plus a shape. f32 unless said otherwise (u32 for labels and pool indices).
// Disposal is explicit (t.dispose()) or scoped (tidy(gpu, fn) frees what fn made and did not return).
import type { Gpu } from './device.ts';

export type DType = 'f32' | 'u32';

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
export const shapeStr = (shape: readonly number[]): string => `[${shape.join(',')}]`;
/** Output side of a window (conv or pool kernel k) over an input side n: floor((n + 2 pad - k) / stride) + 1. */
export const outSize = (n: number, k: number, stride: number, pad: number): number =>
  Math.floor((n + 2 * pad - k) / stride) + 1;

const scopes = new WeakMap<Gpu, Set<Tensor>[]>();

export class Tensor {
  readonly size: number;
  private _buffer: GPUBuffer | null;

  constructor(
    readonly gpu: Gpu,
    readonly shape: readonly number[],
    readonly label = 'tensor',
    readonly dtype: DType = 'f32',
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d <= 0) throw new Error(`tensor ${label}: bad shape ${shapeStr(shape)}`);
    }
    this.size = numel(shape);
    this._buffer = gpu.pool.acquire(this.size * 4, label);
    const stack = scopes.get(gpu);
    if (stack?.length) stack[stack.length - 1].add(this);
  }

  get buffer(): GPUBuffer {
    if (!this._buffer) throw new Error(`tensor ${this.label} ${shapeStr(this.shape)} used after dispose`);
    return this._buffer;
  }

  get disposed(): boolean {
    return this._buffer === null;
  }

  static fromArray(
    gpu: Gpu,
    shape: readonly number[],
    data: ArrayLike<number>,
    label = 'tensor',
    dtype: DType = 'f32',
  ): Tensor {
    const t = new Tensor(gpu, shape, label, dtype);
    if (data.length !== t.size)
      throw new Error(`tensor ${label}: ${data.length} values for shape ${shapeStr(shape)} (${t.size} expected)`);
    gpu.write(t.buffer, dtype === 'f32' ? Float32Array.from(data) : Uint32Array.from(data));
    return t;
  }

  static zeros(gpu: Gpu, shape: readonly number[], label = 'zeros'): Tensor {
    const t = new Tensor(gpu, shape, label);
    gpu.commandEncoder().clearBuffer(t.buffer, 0, t.size * 4);
    return t;
  }

  /** Same buffer seen with another shape of equal size (the view shares the storage; dispose only one). */
  reshape(shape: readonly number[]): TensorView {
    if (numel(shape) !== this.size)
      throw new Error(`reshape ${this.label}: ${shapeStr(this.shape)} -> ${shapeStr(shape)} changes the size`);
    return new TensorView(this, shape);
  }

  async read(): Promise<Float32Array> {
    const ab = await this.gpu.read(this.buffer, this.size * 4);
    return new Float32Array(ab);
  }

  async readU32(): Promise<Uint32Array> {
    return new Uint32Array(await this.gpu.read(this.buffer, this.size * 4));
  }

  write(data: ArrayLike<number>): void {
    if (data.length !== this.size)
      throw new Error(`tensor ${this.label}: write of ${data.length} values into ${shapeStr(this.shape)}`);
    this.gpu.write(this.buffer, this.dtype === 'f32' ? Float32Array.from(data) : Uint32Array.from(data));
  }

  dispose(): void {
    if (!this._buffer) return;
    this.gpu.pool.release(this._buffer);
    this._buffer = null;
  }
}

/** A reshaped alias of a tensor. Owns nothing. */
export class TensorView {
  constructor(
    readonly base: Tensor,
    readonly shape: readonly number[],
  ) {}
  get buffer(): GPUBuffer {
    return this.base.buffer;
  }
  get size(): number {
    return this.base.size;
  }
}

export type AnyTensor = Tensor | TensorView;

/** Runs fn; disposes every tensor created inside that is not in the returned value (a tensor, array or object of
 * tensors). */
export async function tidy<T>(gpu: Gpu, fn: () => T | Promise<T>): Promise<T> {
  let stack = scopes.get(gpu);
  if (!stack) scopes.set(gpu, (stack = []));
  const made = new Set<Tensor>();
  stack.push(made);
  try {
    const out = await fn();
    const keep = new Set<Tensor>();
    const visit = (v: unknown): void => {
      if (v instanceof Tensor) keep.add(v);
      else if (Array.isArray(v)) v.forEach(visit);
      else if (v && typeof v === 'object' && !ArrayBuffer.isView(v)) Object.values(v).forEach(visit);
    };
    visit(out);
    for (const t of made) if (!keep.has(t)) t.dispose();
    if (stack.length > 1) for (const t of keep) stack[stack.length - 2].add(t);
    return out;
  } finally {
    stack.splice(stack.indexOf(made), 1);
  }
}
