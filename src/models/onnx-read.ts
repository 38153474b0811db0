// Reading an ONNX file with the onnx-proto schema (protobufjs): the decoded graph, its tensors as numbers, and its
// nodes' attributes. Every error names the file.
import { platform } from '../platform/index.ts';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
export type OnnxNode = InstanceType<typeof onnx.NodeProto>;
export type OnnxTensor = InstanceType<typeof onnx.TensorProto>;
export type OnnxGraph = InstanceType<typeof onnx.GraphProto>;
export type OnnxValueInfo = InstanceType<typeof onnx.ValueInfoProto>;

/** A tensor known at import time: dims and values in row-major order. */
export interface Const {
  dims: number[];
  /** float32 tensors keep their bits (weights); integer and float64 tensors are plain numbers. */
  data: Float32Array | number[];
  /** An integer tensor (int32, int64, bool); float64 tensors are number[] with int false. */
  int?: boolean;
  /** The initializer's name, when the value is one. */
  initializer?: string;
}

/** A Long (protobufjs's 64-bit integer) or a number, as a number. */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof (v as { toNumber?: unknown }).toNumber === 'function')
    return (v as { toNumber(): number }).toNumber();
  throw new Error(`not a number: ${String(v)}`);
}

export function readOnnx(file: string): { graph: OnnxGraph; opset: number } {
  let bytes: Uint8Array;
  try {
    bytes = platform().readFile(file);
  } catch (e) {
    throw new Error(`${file}: cannot read the ONNX file (${(e as Error).message})`);
  }
  let m: InstanceType<typeof onnx.ModelProto>;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new Error(`${file}: not an ONNX model (protobuf decoding failed: ${(e as Error).message})`);
  }
  if (!m.graph?.node?.length) throw new Error(`${file}: not an ONNX model (no graph or no nodes)`);
  const main = m.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  return { graph: m.graph as OnnxGraph, opset: main ? num(main.version) : 0 };
}

const TYPES: Record<number, string> = { 1: 'float', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16', 11: 'double' };

/** A TensorProto's values (float, double, int32, int64, bool). */
export function tensorValues(t: OnnxTensor, file: string): Const {
  const dims = t.dims.map(num);
  const n = dims.reduce((a, b) => a * b, 1);
  const what = `${file}: tensor "${t.name}"`;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL)
    throw new Error(
      `${what} is stored in an external data file, which is not supported: export with the weights inside`,
    );
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : null;
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : null;
  const type = t.dataType;
  const sizes: Record<number, number> = { 1: 4, 6: 4, 7: 8, 9: 1, 11: 8 };
  if (!(type in sizes)) throw new Error(`${what}: data type ${TYPES[type] ?? type} is not supported (float, int64)`);
  if (view && view.byteLength !== n * sizes[type])
    throw new Error(`${what}: ${view.byteLength} bytes of data for dims [${dims.join(', ')}] (${n} values)`);
  const read = (i: number): number => {
    if (!view) throw new Error('no raw data');
    if (type === 1) return view.getFloat32(4 * i, true);
    if (type === 6) return view.getInt32(4 * i, true);
    if (type === 7) return Number(view.getBigInt64(8 * i, true));
    if (type === 9) return view.getUint8(i);
    return view.getFloat64(8 * i, true);
  };
  const listed: ArrayLike<unknown> =
    type === 1 ? t.floatData : type === 11 ? t.doubleData : type === 7 ? t.int64Data : t.int32Data;
  if (!view && listed.length !== n)
    throw new Error(`${what}: ${listed.length} values for dims [${dims.join(', ')}] (${n} values)`);
  if (type === 1) {
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = view ? read(i) : num(listed[i]);
    return { dims, data };
  }
  return { dims, data: Array.from({ length: n }, (_, i) => (view ? read(i) : num(listed[i]))), int: type !== 11 };
}

/** The attributes of a node, by name, as plain values. */
export type Attrs = Map<string, number | number[] | string | Const>;

export function attrsOf(n: OnnxNode, file: string): Attrs {
  const out: Attrs = new Map();
  const T = onnx.AttributeProto.AttributeType;
  for (const a of n.attribute) {
    const name = a.name ?? '';
    switch (a.type) {
      case T.FLOAT:
        out.set(name, a.f ?? 0);
        break;
      case T.INT:
        out.set(name, num(a.i));
        break;
      case T.STRING:
        out.set(name, new TextDecoder().decode(a.s ?? new Uint8Array()));
        break;
      case T.INTS:
        out.set(name, (a.ints ?? []).map(num));
        break;
      case T.FLOATS:
        out.set(name, [...(a.floats ?? [])]);
        break;
      case T.TENSOR:
        out.set(name, tensorValues(a.t as OnnxTensor, file));
        break;
      default:
        out.set(name, `<attribute of type ${a.type}>`);
    }
  }
  return out;
}

/** The dims of a graph input or output: numbers, or the symbol's name (e.g. "batch") for a dynamic axis. */
export function valueDims(v: OnnxValueInfo): (number | string)[] | null {
  const shape = v.type?.tensorType?.shape;
  if (!shape) return null;
  return (shape.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue != null ? num(d.dimValue) : '?'));
}
