// The ONNX importer: an ONNX graph mapped onto the model graph (graph.ts) node by node, its initializers as the
// weights (the origin of every manifold), with their names kept. Shape arithmetic folds to constants
// (onnx-fold.ts); the exporters' GELU (Div, Erf, Add, Mul, Mul) and SiLU (Sigmoid, Mul) patterns become one node.
// Anything else is refused with one error naming the node, its op, the attribute and what is supported.
import { type Graph, type GraphNode, INPUT, paramShapes, stateShapes } from './graph.ts';
import { type NodeOp, rowOf } from './layers.ts';
import { FOLDABLE, foldOp } from './onnx-fold.ts';
import { SUPPORTED_OPS, mapRuntime } from './onnx-ops.ts';
import { type Attrs, type Const, type OnnxNode, attrsOf, readOnnx, tensorValues, valueDims } from './onnx-read.ts';

export { SUPPORTED_OPS };

export interface OnnxModel {
  file: string;
  opset: number;
  graph: Graph;
  /** Per-sample input [C, H, W]. */
  input: [number, number, number];
  classes: number;
  /** Initial parameters (the initializers), one point each, in paramShapes(graph) order. */
  params: Float32Array[];
  /** BN running statistics, in stateShapes(graph) order. */
  states: Float32Array[];
  /** The ONNX nodes each node of the graph came from. */
  sources: Map<string, string[]>;
  /** Parameters held transposed to their ONNX initializer (MatMul, Gemm with transB = 0). */
  transposed: Set<string>;
}

type Value = { kind: 'run'; node: string; shape: number[] } | { kind: 'const'; c: Const };
type Run = Extract<Value, { kind: 'run' }>;

const shapeStr = (s: number[]) => `[${s.join(', ')}]`;
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

export const isOnnxPath = (name: string): boolean => /\.onnx$/i.test(name);

/** Reads and imports an ONNX file. */
export function importOnnx(file: string): OnnxModel {
  const { graph, opset } = readOnnx(file);
  return new Importer(file, opset, graph).result();
}

class Importer {
  private readonly values = new Map<string, Value>();
  private readonly nodes: GraphNode[] = [];
  private readonly tensors = new Map<string, { params: Float32Array[]; states: Float32Array[] }>();
  private readonly sources = new Map<string, string[]>();
  private readonly transposed = new Set<string>();
  private readonly consumed = new Set<number>();
  private readonly users = new Map<string, number[]>();
  private readonly onnxNodes: OnnxNode[];
  private readonly outputs: string[];
  private input: [number, number, number] = [0, 0, 0];

  constructor(
    readonly file: string,
    readonly opset: number,
    g: ReturnType<typeof readOnnx>['graph'],
  ) {
    for (const t of g.initializer ?? []) {
      const c = tensorValues(t as never, file);
      this.values.set(t.name ?? '', { kind: 'const', c: { ...c, initializer: t.name ?? '' } });
    }
    const inputs = (g.input ?? []).filter((v) => !this.values.has(v.name ?? ''));
    if (inputs.length !== 1)
      throw new Error(
        `${file}: one data input expected, the graph has ${inputs.length} (${inputs.map((v) => v.name)})`,
      );
    const dims = valueDims(inputs[0] as never);
    const name = inputs[0].name ?? '';
    if (dims?.length !== 4 || dims.slice(1).some((d) => typeof d !== 'number'))
      throw new Error(
        `${file}: input "${name}" has dims [${dims?.join(', ') ?? '?'}]:` +
          ' images [N, C, H, W] with C, H and W fixed expected',
      );
    this.input = dims.slice(1) as [number, number, number];
    this.values.set(name, { kind: 'run', node: INPUT, shape: [...this.input] });
    this.onnxNodes = (g.node ?? []) as OnnxNode[];
    this.onnxNodes.forEach((n, i) => {
      for (const v of n.input ?? []) if (v) this.users.set(v, [...(this.users.get(v) ?? []), i]);
    });
    this.outputs = (g.output ?? []).map((v) => v.name ?? '');
    if (this.outputs.length !== 1)
      throw new Error(`${file}: one graph output (the logits) expected, got ${this.outputs.length}`);
  }

  result(): OnnxModel {
    // constants first (they take no inputs): the patterns look ahead at them
    this.onnxNodes.forEach((n, i) => {
      if (n.opType === 'Constant') this.map(n, i);
    });
    this.onnxNodes.forEach((n, i) => {
      if (!this.consumed.has(i) && n.opType !== 'Constant') this.map(n, i);
    });
    const out = this.values.get(this.outputs[0]);
    if (out?.kind !== 'run' || out.shape.length !== 1 || out.node === INPUT)
      throw new Error(
        `${this.file}: the output "${this.outputs[0]}" must be logits [N, classes]` +
          (out?.kind === 'run' ? `, got [N, ${out.shape.join(', ')}]` : ''),
      );
    const graph: Graph = { nodes: this.nodes, output: out.node };
    const pick = (k: 'params' | 'states') => this.nodes.flatMap((n) => this.tensors.get(n.name)?.[k] ?? []);
    const params = pick('params'),
      states = pick('states');
    // the layer table's shapes of every tensor against the initializers' (a mismatch is an importer bug)
    const check = (specs: { name: string; shape: number[] }[], got: Float32Array[]) =>
      specs.forEach((s, i) => {
        if (numel(s.shape) !== got[i]?.length)
          throw new Error(`${this.file}: ${s.name} ${shapeStr(s.shape)} does not match its ${got[i]?.length} values`);
      });
    check(paramShapes(graph), params);
    check(stateShapes(graph), states);
    return {
      file: this.file,
      opset: this.opset,
      graph,
      input: this.input,
      classes: out.shape[0],
      params,
      states,
      sources: this.sources,
      transposed: this.transposed,
    };
  }

  private fail(n: OnnxNode, msg: string): never {
    throw new Error(`${this.file}: node "${n.name || n.output?.[0] || '?'}" (${n.opType}): ${msg}`);
  }

  private value(n: OnnxNode, i: number): Value | undefined {
    const name = n.input?.[i];
    if (!name) return undefined;
    const v = this.values.get(name);
    if (!v) this.fail(n, `input "${name}" is not defined before the node`);
    return v;
  }

  private run(n: OnnxNode, i = 0): Run {
    const v = this.value(n, i);
    if (v?.kind !== 'run') this.fail(n, `input ${i} must be a computed tensor, not a constant`);
    return v;
  }

  private known(n: OnnxNode, i: number, what: string): Const {
    const v = this.value(n, i);
    if (v?.kind !== 'const') this.fail(n, `${what} (input ${i}) must be a constant or an initializer`);
    return v.c;
  }

  /** The one consumer of a value, if it has exactly one and is not the graph's output. */
  private only(v: string): number | null {
    const u = this.users.get(v) ?? [];
    return u.length === 1 && !this.outputs.includes(v) ? u[0] : null;
  }

  private setOut(n: OnnxNode, v: Value) {
    this.values.set(n.output?.[0] ?? '', v);
  }

  private nodeName(n: OnnxNode, i: number, suffix = ''): string {
    const base = (n.name || `${n.opType}_${i}`) + suffix;
    let name = base;
    for (let j = 1; name === INPUT || this.tensors.has(name); j++) name = `${base}_${j}`;
    return name;
  }

  /** Adds a node of the model graph computing op on the inputs; returns its value. */
  private emit(n: OnnxNode, i: number, op: NodeOp, inputs: Run[], o: EmitOptions = {}): Run {
    const name = this.nodeName(n, i, o.suffix);
    let shape: number[];
    try {
      shape = rowOf(op).outShape(
        op as never,
        inputs.map((v) => v.shape),
        name,
      );
    } catch (e) {
      this.fail(n, (e as Error).message);
    }
    const node: GraphNode = { name, op, inputs: inputs.map((v) => v.node), index: this.nodes.length };
    if (o.params || o.states)
      node.names = { params: o.params?.map((p) => p.name), states: o.states?.map((p) => p.name) };
    this.nodes.push(node);
    this.tensors.set(name, {
      params: o.params?.map((p) => p.data) ?? [],
      states: o.states?.map((p) => p.data) ?? [],
    });
    this.sources.set(name, [...(o.from ?? []), n.name || `${n.opType}_${i}`]);
    return { kind: 'run', node: name, shape };
  }

  private map(n: OnnxNode, i: number) {
    const a = attrsOf(n, this.file);
    const op = n.opType ?? '';
    const ins = (n.input ?? []).map((_, j) => this.value(n, j));
    if (op === 'Constant') {
      const v = a.get('value') ?? a.get('value_float') ?? a.get('value_int') ?? a.get('value_ints');
      if (v === undefined) this.fail(n, `only the attributes value, value_float, value_int, value_ints are supported`);
      const c: Const =
        typeof v === 'number'
          ? { dims: [], data: [v], int: a.has('value_int') }
          : Array.isArray(v)
            ? { dims: [v.length], data: v, int: true }
            : (v as Const);
      return this.setOut(n, { kind: 'const', c });
    }
    if (op === 'Shape') {
      const x = ins[0];
      if (!x) this.fail(n, 'input 0 is missing');
      const dims = x.kind === 'run' ? [Number.NaN, ...x.shape] : x.c.dims;
      const s = (a.get('start') as number | undefined) ?? 0,
        e = (a.get('end') as number | undefined) ?? dims.length;
      const sl = dims.slice(s < 0 ? s + dims.length : s, e < 0 ? e + dims.length : e);
      return this.setOut(n, { kind: 'const', c: { dims: [sl.length], data: sl, int: true } });
    }
    if (FOLDABLE.includes(op) && ins.every((v) => !v || v.kind === 'const')) {
      try {
        return this.setOut(n, {
          kind: 'const',
          c: foldOp(
            op,
            ins.map((v) => (v?.kind === 'const' ? v.c : undefined)),
            a,
          ),
        });
      } catch (e) {
        this.fail(n, `cannot be folded to a constant: ${(e as Error).message}`);
      }
    }
    mapRuntime(this.api(), n, i, op, a);
  }

  private api(): ImporterApi {
    return {
      file: this.file,
      fail: (n, m) => this.fail(n, m),
      run: (n, i) => this.run(n, i),
      known: (n, i, w) => this.known(n, i, w),
      value: (n, i) => this.value(n, i),
      peek: (v) => this.values.get(v),
      only: (v) => this.only(v),
      node: (i) => this.onnxNodes[i],
      consume: (i) => this.consumed.add(i),
      setOut: (n, v) => this.setOut(n, v),
      emit: (n, i, op, inputs, o) => this.emit(n, i, op, inputs, o),
      transposed: (p) => this.transposed.add(p),
      graphNode: (name) => this.nodes.find((g) => g.name === name),
      tensorsOf: (name) => this.tensors.get(name),
      users: (v) => this.users.get(v) ?? [],
      producer: (v) => this.onnxNodes.find((m) => (m.output ?? []).includes(v)),
    };
  }
}

export interface Named {
  name: string;
  data: Float32Array;
}

export interface EmitOptions {
  params?: Named[];
  states?: Named[];
  /** The other ONNX nodes folded into this one (patterns). */
  from?: string[];
  suffix?: string;
}

/** What the op mappings (onnx-ops.ts) use of the importer. */
export interface ImporterApi {
  file: string;
  fail(n: OnnxNode, msg: string): never;
  run(n: OnnxNode, i?: number): Run;
  known(n: OnnxNode, i: number, what: string): Const;
  value(n: OnnxNode, i: number): Value | undefined;
  /** A value by name if it is defined already (no error). */
  peek(v: string): Value | undefined;
  only(v: string): number | null;
  node(i: number): OnnxNode;
  consume(i: number): void;
  setOut(n: OnnxNode, v: Value): void;
  emit(n: OnnxNode, i: number, op: NodeOp, inputs: Run[], o?: EmitOptions): Run;
  transposed(param: string): void;
  graphNode(name: string): GraphNode | undefined;
  tensorsOf(name: string): { params: Float32Array[]; states: Float32Array[] } | undefined;
  users(v: string): number[];
  /** The ONNX node that writes a value (undefined for the graph input and initializers). */
  producer(v: string): OnnxNode | undefined;
}

export type { Attrs, Const, OnnxNode, Run, Value };
