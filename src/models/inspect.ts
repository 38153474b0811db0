// What `loss-atlas inspect` prints of a model (a zoo name or an ONNX graph): the node table (name, op, output
// shape, parameters, FLOPs), the totals, the batch-norm layers with their states, and which tensors the random
// directions of the loss-surface tools cover.
import { numel } from '../engine/tensor.ts';
import { INPUT, nodeShapes, paramShapes, stateShapes, toGraph } from './graph.ts';
import { type NodeOp, rowOf } from './layers.ts';
import type { ModelSpec } from './zoo.ts';

/** An op in a few words: `conv 3x3 /2 pad 1, 4 -> 8`. */
export function describeOp(op: NodeOp): string {
  switch (op.type) {
    case 'conv': {
      const st = (op.stride ?? 1) > 1 ? ` /${op.stride}` : '';
      const pad = op.pad ? ` pad ${op.pad}` : '';
      return `conv ${op.k}x${op.kw ?? op.k}${st}${pad}, ${op.cin} -> ${op.cout}${op.bias === false ? ', no bias' : ''}`;
    }
    case 'linear':
      return `linear ${op.in} -> ${op.out}${op.bias === false ? ', no bias' : ''}`;
    case 'bn':
      return `batch norm ${op.c}, eps ${op.eps ?? 1e-5}${op.reparam ? ' (gamma + 1)' : ''}`;
    case 'maxpool':
    case 'avgpool': {
      const kind = op.type === 'maxpool' ? 'max' : 'average';
      return `${kind} pool ${op.k} /${op.stride ?? op.k}${op.pad ? ` pad ${op.pad}` : ''}`;
    }
    case 'adaptive':
      return `adaptive average pool to ${op.size.join('x')}`;
    case 'pad':
      return `zero pad (top, left, bottom, right) ${op.pads.join(', ')}`;
    case 'leakyrelu':
      return `leaky ReLU ${op.alpha}`;
    case 'gelu':
      return `GELU (${op.form ?? 'erf'})`;
    case 'dropout':
      return `dropout ${op.p}`;
    case 'add':
      return 'add (residual)';
    default:
      return op.type;
  }
}

const fmt = (n: number) => n.toLocaleString('en-US');
const flopsStr = (f: number) =>
  f >= 1e9
    ? `${(f / 1e9).toFixed(2)} G`
    : f >= 1e6
      ? `${(f / 1e6).toFixed(2)} M`
      : f >= 1e3
        ? `${(f / 1e3).toFixed(1)} k`
        : `${f}`;

export interface Inspection {
  nodes: { name: string; op: string; inputs: string[]; shape: number[]; params: number; flops: number }[];
  parameters: number;
  flops: number;
  bn: { node: string; states: string[] }[];
  text: string;
}

/** The report of a model; `name` as the user gave it. */
export function inspectModel(name: string, spec: ModelSpec): Inspection {
  const g = toGraph(spec.layers);
  const shapes = nodeShapes(g, spec.input);
  const params = paramShapes(g),
    states = stateShapes(g);
  let pi = 0,
    si = 0;
  const bn: Inspection['bn'] = [];
  const nodes = g.nodes.map((n) => {
    const row = rowOf(n.op);
    const np = row.params?.(n.op as never, n.name).length ?? 0;
    const ns = row.states?.(n.op as never, n.name).length ?? 0;
    const mine = params.slice(pi, (pi += np));
    const st = states.slice(si, (si += ns));
    if (n.op.type === 'bn') bn.push({ node: n.name, states: st.map((s) => s.name) });
    const shape = shapes.get(n.name)!;
    const inputs = n.inputs.map((i) => shapes.get(i)!);
    return {
      name: n.name,
      op: describeOp(n.op),
      inputs: n.inputs,
      shape,
      params: mine.reduce((a, p) => a + numel(p.shape), 0),
      flops: row.flops?.(n.op as never, inputs, shape) ?? 0,
    };
  });
  const parameters = nodes.reduce((a, n) => a + n.params, 0);
  const flops = nodes.reduce((a, n) => a + n.flops, 0);
  const lines: string[] = [`${name}: ${spec.description}`, ''];
  const w = Math.max(4, ...nodes.map((n) => n.name.length));
  const ow = Math.max(2, ...nodes.map((n) => n.op.length));
  lines.push(`${'node'.padEnd(w)}  ${'op'.padEnd(ow)}  ${'output'.padEnd(14)}  ${'parameters'.padStart(11)}  FLOPs`);
  const linear = g.nodes.every((n, i) => n.inputs.length === 1 && n.inputs[0] === (i ? g.nodes[i - 1].name : INPUT));
  for (const n of nodes) {
    const from = linear ? '' : `  <- ${n.inputs.join(', ')}`;
    lines.push(
      `${n.name.padEnd(w)}  ${n.op.padEnd(ow)}  ${`[${n.shape.join(', ')}]`.padEnd(14)}  ` +
        `${(n.params ? fmt(n.params) : '').padStart(11)}  ${n.flops ? flopsStr(n.flops) : ''}${from}`,
    );
  }
  lines.push('', `input [${spec.input.join(', ')}], ${spec.classes ?? 10} classes, ${g.nodes.length} nodes`);
  lines.push(`parameters: ${fmt(parameters)} in ${params.length} tensors`);
  lines.push(`FLOPs per image (forward, a multiply-add is 2): ${flopsStr(flops)} (${fmt(flops)})`);
  lines.push('');
  if (bn.length) {
    lines.push(`batch norm: ${bn.length} layers, running statistics as the model's state:`);
    for (const b of bn) lines.push(`  ${b.node}: ${b.states.join(', ')}`);
  } else if (spec.onnx)
    lines.push(
      'batch norm: none in this graph. If the network had BN layers, the exporter folded them into the convolutions' +
        ' (torch.onnx.export in eval mode does by default): export with do_constant_folding=False and' +
        ' training=torch.onnx.TrainingMode.PRESERVE to keep them in the landscape.',
    );
  else lines.push('batch norm: none');
  const multi = params.filter((p) => p.shape.length > 1);
  const single = params.filter((p) => p.shape.length <= 1);
  const count = (ps: typeof params) => fmt(ps.reduce((a, p) => a + numel(p.shape), 0));
  lines.push(
    '',
    `directions (surface, interpolate, hessian): random and normalized (--norm, per filter by default) on the` +
      ` ${multi.length} tensors of dim > 1 (${count(multi)} parameters);` +
      ` the ${single.length} tensors of dim <= 1 (biases, BN: ${count(single)}) are copied from the weights,` +
      ` or 0 with --ignore biasbn; BN running statistics move only with --dir-type states.`,
  );
  if (spec.onnx?.transposed.size)
    lines.push(`held transposed to their ONNX initializers (MatMul weights): ${[...spec.onnx.transposed].join(', ')}`);
  return { nodes, parameters, flops, bn, text: lines.join('\n') };
}
