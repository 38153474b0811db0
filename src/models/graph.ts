// The model graph: named nodes in topological order, each an op of the layer table with the names of its inputs.
// A layer list (with residual blocks) compiles into one; an imported graph can be one directly. Parameter and state
// names, shapes, FLOPs and the CPU reference are loops over the nodes.
import { rng } from '../engine/random.ts';
import { numel } from '../engine/tensor.ts';
import { type Layer, type NodeOp, type ParamSpec, type StateSpec, rowOf } from './layers.ts';

/** The graph's input value. */
export const INPUT = 'input';

export interface GraphNode {
  /** Unique; also the prefix of its parameter names (PyTorch's module path: "3.0" is layer 0 of block 3). */
  name: string;
  op: NodeOp;
  /** Names of the nodes (or INPUT) whose outputs this node takes. */
  inputs: string[];
  /** Position in its layer list (the dropout masks' seed offset). */
  index: number;
  /** Names of its parameters and states in place of the row's (an imported graph keeps its initializers' names). */
  names?: { params?: string[]; states?: string[] };
}

export interface Graph {
  nodes: GraphNode[];
  /** The node whose output is the model's output (logits). */
  output: string;
}

/** A model as a layer list or as a graph. */
export type ModelDef = Layer[] | Graph;

const cache = new WeakMap<Layer[], Graph>();
const checked = new WeakSet<Graph>();

/** The graph of a layer list: a residual block at position i becomes its body, its shortcut, and an add node "i". */
export function toGraph(m: ModelDef): Graph {
  if (!Array.isArray(m)) {
    if (!checked.has(m)) checkGraph(m);
    checked.add(m);
    return m;
  }
  const hit = cache.get(m);
  if (hit) return hit;
  const nodes: GraphNode[] = [];
  const walk = (ls: Layer[], prefix: string, input: string): string => {
    let h = input;
    ls.forEach((l, i) => {
      const name = `${prefix}${i}`;
      if (l.type === 'residual') {
        const body = walk(l.body, `${name}.`, h);
        const sc = l.shortcut ? walk(l.shortcut, `${name}.shortcut.`, h) : h;
        nodes.push({ name, op: { type: 'add' }, inputs: [sc, body], index: i });
      } else nodes.push({ name, op: l, inputs: [h], index: i });
      h = name;
    });
    return h;
  };
  const output = walk(m, '', INPUT);
  const g = { nodes, output };
  checkGraph(g);
  cache.set(m, g);
  return g;
}

/** Unique names, inputs defined before use, the output a node. */
export function checkGraph(g: Graph): void {
  const seen = new Set([INPUT]);
  for (const n of g.nodes) {
    if (seen.has(n.name)) throw new Error(`model graph: node name "${n.name}" used twice`);
    for (const i of n.inputs)
      if (!seen.has(i)) throw new Error(`model graph: node ${n.name} takes "${i}", which is not defined before it`);
    seen.add(n.name);
  }
  if (!g.nodes.some((n) => n.name === g.output)) throw new Error(`model graph: output "${g.output}" is not a node`);
}

/** How many nodes take each value (the output counts once more: the caller takes it). */
export function consumers(g: Graph): Map<string, string[]> {
  const c = new Map<string, string[]>([[INPUT, []]]);
  for (const n of g.nodes) {
    c.set(n.name, []);
    for (const i of n.inputs) c.get(i)!.push(n.name);
  }
  return c;
}

function renamed<T extends { name: string }>(specs: T[], names: string[] | undefined, node: string): T[] {
  if (!names) return specs;
  if (names.length !== specs.length)
    throw new Error(`model graph: node ${node} names ${names.length} tensors, its layer has ${specs.length}`);
  return specs.map((s, i) => ({ ...s, name: names[i] }));
}

/** Parameters of a model, in order (nodes in order, each node's in its row's order). */
export function paramShapes(m: ModelDef): ParamSpec[] {
  return toGraph(m).nodes.flatMap((n) =>
    renamed(rowOf(n.op).params?.(n.op as never, n.name) ?? [], n.names?.params, n.name),
  );
}

/** BN running statistics of a model, in order: running_mean and running_var per BN layer (PyTorch's names). */
export function stateShapes(m: ModelDef): StateSpec[] {
  return toGraph(m).nodes.flatMap((n) =>
    renamed(rowOf(n.op).states?.(n.op as never, n.name) ?? [], n.names?.states, n.name),
  );
}

export function parameterCount(m: ModelDef): number {
  return paramShapes(m).reduce((a, p) => a + numel(p.shape), 0);
}

/** Fresh running statistics (mean 0, variance 1) in basis 0 of B, the other basis tensors 0. */
export function initStates(m: ModelDef, B: number): Float32Array[] {
  return stateShapes(m).map((s) => {
    const a = new Float32Array(B * numel(s.shape));
    a.fill(s.init, 0, numel(s.shape));
    return a;
  });
}

/** PyTorch's default init (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv and linear weights and biases), B independent
 * draws. */
export function initParams(m: ModelDef, B: number, seed: number): Float32Array[] {
  const r = rng(seed);
  return paramShapes(m).map((p) => {
    const n = B * numel(p.shape);
    if (p.init === 'one') return new Float32Array(n).fill(1);
    if (p.init === 'zero') return new Float32Array(n);
    const bound = 1 / Math.sqrt(p.fanIn);
    return Float32Array.from({ length: n }, () => (2 * r() - 1) * bound);
  });
}

/** Per-sample output shape of every node, by name (INPUT included). */
export function nodeShapes(m: ModelDef, inShape: number[]): Map<string, number[]> {
  const s = new Map<string, number[]>([[INPUT, inShape]]);
  for (const n of toGraph(m).nodes)
    s.set(
      n.name,
      rowOf(n.op).outShape(
        n.op as never,
        n.inputs.map((i) => s.get(i)!),
        n.name,
      ),
    );
  return s;
}

/** Per-sample output shapes of the nodes, in order. */
export function layerShapes(m: ModelDef, inShape: number[]): number[][] {
  const s = nodeShapes(m, inShape);
  return toGraph(m).nodes.map((n) => s.get(n.name)!);
}

/** FLOPs of one forward pass of one point on one sample (multiply-adds count 2). */
export function forwardFlops(m: ModelDef, inShape: number[]): number {
  const s = nodeShapes(m, inShape);
  return toGraph(m).nodes.reduce(
    (f, n) =>
      f +
      (rowOf(n.op).flops?.(
        n.op as never,
        n.inputs.map((i) => s.get(i)!),
        s.get(n.name)!,
      ) ?? 0),
    0,
  );
}

/**
 * CPU float64 forward of one point with materialized parameter values (one array per parameter, in paramShapes
 * order) and, for batch norm in evaluation mode, running statistics (stateShapes order). x: [N, ...inShape].
 */
export function graphRef(
  m: ModelDef,
  values: ArrayLike<number>[],
  x: ArrayLike<number>,
  N: number,
  inShape: number[],
  dropoutSeed = 0,
  states?: ArrayLike<number>[],
): { y: Float64Array; shape: number[] } {
  const g = toGraph(m);
  const shapes = nodeShapes(g, inShape);
  const vals = new Map<string, Float64Array>([[INPUT, Float64Array.from(x)]]);
  let pi = 0,
    si = 0;
  for (const n of g.nodes) {
    const row = rowOf(n.op);
    const np = row.params?.(n.op as never, n.name).length ?? 0;
    const ns = row.states?.(n.op as never, n.name).length ?? 0;
    const p = values.slice(pi, (pi += np));
    const st = states ? states.slice(si, si + ns) : undefined;
    si += ns;
    const env = { N, dropoutSeed: dropoutSeed + n.index, states: ns ? st : undefined };
    vals.set(
      n.name,
      row.reference(
        n.op as never,
        n.inputs.map((i) => vals.get(i)!),
        n.inputs.map((i) => shapes.get(i)!),
        p,
        env,
      ),
    );
  }
  return { y: vals.get(g.output)!, shape: shapes.get(g.output)! };
}
