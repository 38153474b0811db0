// Small writers and readers for the files runs leave behind: .npy (numpy) and .safetensors.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

/** A little-endian float32 .npy file of the given shape (C order). */
export function npyBytes(data: Float32Array, shape: number[]): Buffer {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new Error(`npy: ${data.length} values for shape [${shape}]`);
  let header =
    `{'descr': '<f4',` +
    ` 'fortran_order': False,` +
    ` 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += `${' '.repeat((64 - (total % 64)) % 64)}\n`;
  const h = Buffer.alloc(10);
  h.write('\x93NUMPY', 0, 'latin1');
  h[6] = 1;
  h[7] = 0;
  h.writeUInt16LE(header.length, 8);
  return Buffer.concat([h, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

export function readNpy(path: string): { shape: number[]; data: Float32Array } {
  const b = readFileSync(path);
  if (b.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${path}: not a .npy file`);
  const hl = b.readUInt16LE(8);
  const header = b.toString('latin1', 10, 10 + hl);
  if (!header.includes("'<f4'")) throw new Error(`${path}: float32 expected, header ${header.trim()}`);
  const shape = (header.match(/'shape': \(([^)]*)\)/)?.[1] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const data = new Float32Array(b.buffer.slice(b.byteOffset + 10 + hl, b.byteOffset + b.length));
  return { shape, data };
}

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

/** safetensors: 8-byte little-endian header length, JSON header (dtype F32, shape, data_offsets), then the data. */
export function safetensorsBytes(tensors: Record<string, NamedTensor>, metadata: Record<string, string> = {}): Buffer {
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
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([
    len,
    Buffer.from(json),
    ...names.map((n) => Buffer.from(tensors[n].data.buffer, tensors[n].data.byteOffset, tensors[n].data.byteLength)),
  ]);
}

export function readSafetensors(path: string): {
  tensors: Record<string, NamedTensor>;
  metadata: Record<string, string>;
} {
  const b = readFileSync(path);
  if (b.length < 8) throw new Error(`${path}: ${b.length} bytes, too short for a safetensors file`);
  const n = Number(b.readBigUInt64LE(0));
  if (8 + n > b.length) throw new Error(`${path}: header of ${n} bytes but the file has ${b.length} (truncated?)`);
  let header: Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>
  >;
  try {
    header = JSON.parse(b.toString('utf8', 8, 8 + n));
  } catch {
    throw new Error(`${path}: corrupt safetensors header`);
  }
  const tensors: Record<string, NamedTensor> = {};
  const base = 8 + n;
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const t = v as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (t.dtype !== 'F32') throw new Error(`${path}: tensor ${name} is ${t.dtype}, F32 expected`);
    if (base + t.data_offsets[1] > b.length)
      throw new Error(`${path}: tensor ${name} runs past the end of the file (truncated?)`);
    const bytes = b.subarray(base + t.data_offsets[0], base + t.data_offsets[1]);
    tensors[name] = {
      shape: t.shape,
      data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)),
    };
  }
  return { tensors, metadata: (header.__metadata__ as Record<string, string>) ?? {} };
}

/** Writes a file so that readers see the old or the new content, never a partial one (write, then rename). */
export function atomicWrite(path: string, data: string | Buffer): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}
