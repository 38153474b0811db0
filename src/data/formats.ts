// Small writers and readers for the files runs leave behind: .npy (numpy) and .safetensors. Bytes in and out
// (Uint8Array, so that a web page reads and writes them too); files through the platform.
import { platform } from '../platform/index.ts';
import { DataError, readBytes } from './read.ts';

const NPY_MAGIC = '\x93NUMPY';

/** Bytes [start, end) as a latin-1 string (headers: one character per byte). */
const latin1 = (b: Uint8Array, start: number, end: number) => String.fromCharCode(...b.subarray(start, end));
const fromLatin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A little-endian float32 .npy file of the given shape (C order). */
export function npyBytes(data: Float32Array, shape: number[]): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new Error(`npy: ${data.length} values for shape [${shape}]`);
  let header =
    `{'descr': '<f4',` +
    ` 'fortran_order': False,` +
    ` 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += `${' '.repeat((64 - (total % 64)) % 64)}\n`;
  const h = new Uint8Array(10);
  h.set(fromLatin1(NPY_MAGIC));
  h[6] = 1;
  h[7] = 0;
  view(h).setUint16(8, header.length, true);
  return concat([h, fromLatin1(header), bytesOf(data)]);
}

/** The header of a .npy file (format 1.0 to 3.0, C order), its data checked to be complete; errors name the file. */
function npyLayout(
  path: string,
  what: string,
  sizes: Record<string, number>,
): { shape: number[]; descr: string; b: Uint8Array; at: number } {
  return npyLayoutOf(readBytes(path, what), path, what, sizes);
}

function npyLayoutOf(
  b: Uint8Array,
  path: string,
  what: string,
  sizes: Record<string, number>,
): { shape: number[]; descr: string; b: Uint8Array; at: number } {
  const bad = (why: string) => new DataError(`${path}: ${why} (${what} expected)`);
  const magic = latin1(b, 0, 6);
  if (magic !== NPY_MAGIC) {
    if (b.length < 6 && NPY_MAGIC.startsWith(magic))
      throw bad(`${b.length} bytes, too short for a .npy header (truncated)`);
    throw bad(`not a .npy file (magic \\x93NUMPY expected, found ${JSON.stringify(magic)})`);
  }
  const major = b[6],
    start = major === 1 ? 10 : 12;
  if (b.length < start) throw bad(`${b.length} bytes, too short for a .npy header (truncated)`);
  if (major < 1 || major > 3) throw bad(`.npy format version ${major}.${b[7]} (1.0 to 3.0 supported)`);
  const hl = major === 1 ? view(b).getUint16(8, true) : view(b).getUint32(8, true);
  if (start + hl > b.length) throw bad(`a header of ${hl} bytes but the file has ${b.length} (truncated)`);
  const header = latin1(b, start, start + hl).trim();
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const dims = /'shape'\s*:\s*\(([^)]*)\)/
    .exec(header)?.[1]
    .split(',')
    .map((d) => d.trim());
  if (!header.startsWith('{') || !header.endsWith('}') || descr === undefined || !fortran || !dims)
    throw bad(`corrupt .npy header ${JSON.stringify(header.slice(0, 200))} (descr, fortran_order and shape expected)`);
  if (!(descr in sizes)) throw bad(`dtype '${descr}' not supported: ${Object.keys(sizes).join(', ')}`);
  if (dims.at(-1) === '') dims.pop();
  if (!dims.every((d) => /^\d+$/.test(d))) throw bad(`shape (${dims}) is not a tuple of sizes`);
  const shape = dims.map(Number);
  if (fortran === 'True' && shape.length > 1) throw bad('Fortran-order array: C order expected');
  const need = sizes[descr] * shape.reduce((x, y) => x * y, 1),
    has = b.length - start - hl;
  if (has !== need)
    throw bad(
      `shape [${shape}] needs ${need} bytes of data, the file has ${has}` +
        (has < need ? ' (truncated)' : ` (${has - need} bytes too many)`),
    );
  return { shape, descr, b, at: start + hl };
}

/** Reads a little-endian float32 .npy file (format 1.0 to 3.0, C order); every error names the file. */
export function readNpy(path: string, what = 'a float32 .npy file'): { shape: number[]; data: Float32Array } {
  return parseNpy(readBytes(path, what), path, what);
}

/** A float32 .npy file's bytes (from a file, or handed to a page) as readNpy reads them; errors name `path`. */
export function parseNpy(bytes: Uint8Array, path: string, what = 'a float32 .npy file') {
  const { shape, b, at } = npyLayoutOf(bytes, path, what, { '<f4': 4 });
  return { shape, data: new Float32Array(b.buffer.slice(b.byteOffset + at, b.byteOffset + b.length)) };
}

const NPY_TYPES: Record<string, number> = { '<f4': 4, '<f8': 8, '|u1': 1, '<u1': 1, '|i1': 1, '<i4': 4, '<i8': 8 };

/** Reads a .npy file of float32/64, uint8, int8, int32 or int64 values as numbers; `dtype` is its descr. */
export function readNpyValues(path: string, what: string): { shape: number[]; dtype: string; data: Float32Array } {
  const { shape, descr, b, at } = npyLayout(path, what, NPY_TYPES);
  const n = shape.reduce((x, y) => x * y, 1);
  const v = new DataView(b.buffer, b.byteOffset + at, b.length - at);
  const data = new Float32Array(n);
  const get: Record<string, (i: number) => number> = {
    '<f4': (i) => v.getFloat32(4 * i, true),
    '<f8': (i) => v.getFloat64(8 * i, true),
    '|u1': (i) => v.getUint8(i),
    '<u1': (i) => v.getUint8(i),
    '|i1': (i) => v.getInt8(i),
    '<i4': (i) => v.getInt32(4 * i, true),
    '<i8': (i) => Number(v.getBigInt64(8 * i, true)),
  };
  for (let i = 0; i < n; i++) data[i] = get[descr](i);
  return { shape, dtype: descr, data };
}

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

/** safetensors: 8-byte little-endian header length, JSON header (dtype F32, shape, data_offsets), then the data. */
export function safetensorsBytes(
  tensors: Record<string, NamedTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name];
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const text = new TextEncoder().encode(json);
  const len = new Uint8Array(8);
  view(len).setBigUint64(0, BigInt(text.length), true);
  return concat([len, text, ...names.map((n) => bytesOf(tensors[n].data))]);
}

/** Bytes per element of the safetensors dtypes (only F32 is read). */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  U16: 2,
  I16: 2,
  F16: 2,
  BF16: 2,
  U32: 4,
  I32: 4,
  F32: 4,
  U64: 8,
  I64: 8,
  F64: 8,
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isSize = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * Reads a .safetensors file of F32 tensors. The header must be a JSON object; each tensor's shape times its dtype's
 * size must be its byte range, and the ranges must tile the data section exactly (no gap, no overlap, nothing after).
 */
export function readSafetensors(
  path: string,
  what = 'a .safetensors file',
): { tensors: Record<string, NamedTensor>; metadata: Record<string, string> } {
  return parseSafetensors(readBytes(path, what), path, what);
}

/** A .safetensors file's bytes (from a file, or handed to a page) as readSafetensors reads them; errors name `path`. */
export function parseSafetensors(
  b: Uint8Array,
  path: string,
  what = 'a .safetensors file',
): { tensors: Record<string, NamedTensor>; metadata: Record<string, string> } {
  const bad = (why: string) => new DataError(`${path}: ${why}`);
  if (b.length < 8) throw bad(`${b.length} bytes, too short for a safetensors file (${what} expected; truncated?)`);
  const n64 = view(b).getBigUint64(0, true);
  if (n64 > BigInt(b.length - 8))
    throw bad(`header of ${n64} bytes but the file has ${b.length} (truncated, or not ${what}?)`);
  const n = Number(n64),
    base = 8 + n,
    size = b.length - base;
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(b.subarray(8, base)));
  } catch (e) {
    throw bad(`corrupt safetensors header: not valid JSON (${(e as Error).message}; ${what} expected)`);
  }
  if (!isObject(header)) throw bad(`corrupt safetensors header: a JSON object expected (${what})`);
  const meta = header.__metadata__ ?? {};
  if (!isObject(meta) || !Object.values(meta).every((v) => typeof v === 'string'))
    throw bad('corrupt safetensors header: __metadata__ should map names to strings');
  const ranges: { name: string; begin: number; end: number }[] = [];
  const tensors: Record<string, NamedTensor> = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (!isObject(t)) throw bad(`tensor ${name}: {dtype, shape, data_offsets} expected, found ${JSON.stringify(t)}`);
    const { dtype, shape, data_offsets: off } = t;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES))
      throw bad(
        `tensor ${name}: unknown dtype ${JSON.stringify(dtype)} (one of ${Object.keys(DTYPE_BYTES).join(', ')})`,
      );
    if (dtype !== 'F32') throw bad(`tensor ${name} is ${dtype}, F32 expected`);
    if (!Array.isArray(shape) || !shape.every(isSize))
      throw bad(`tensor ${name}: shape should be a list of sizes, found ${JSON.stringify(shape)}`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isSize) || off[0] > off[1])
      throw bad(`tensor ${name}: data_offsets should be [begin, end], found ${JSON.stringify(off)}`);
    const [begin, end] = off as [number, number];
    if (end > size)
      throw bad(`tensor ${name} runs past the end of the file (data_offsets [${off}], ${size} data bytes; truncated?)`);
    const count = shape.reduce((x: number, y: number) => x * y, 1);
    if (count * 4 !== end - begin)
      throw bad(
        `tensor ${name}: shape [${shape}] of F32 is ${count * 4} bytes, its data_offsets [${off}] hold ${end - begin}`,
      );
    ranges.push({ name, begin, end });
    const bytes = b.subarray(base + begin, base + end);
    tensors[name] = {
      shape,
      data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)),
    };
  }
  ranges.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let at = 0,
    prev = 'the header';
  for (const r of ranges) {
    if (r.begin < at) throw bad(`the data of tensors ${prev} and ${r.name} overlap`);
    if (r.begin > at) throw bad(`${r.begin - at} bytes between ${prev} and tensor ${r.name} belong to no tensor`);
    at = r.end;
    prev = r.name;
  }
  if (at !== size) throw bad(`${size - at} bytes after the last tensor's data (${prev}) belong to no tensor`);
  return { tensors, metadata: meta as Record<string, string> };
}

/** Writes a file so that readers see the old or the new content, never a partial one (write, then rename). */
export function atomicWrite(path: string, data: string | Uint8Array): void {
  platform().writeFileAtomic(path, data);
}
