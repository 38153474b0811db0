// The model on the GPU: a graph of layer-table nodes whose parameters are held as B basis tensors each, run for all K
// points of a weight manifold at once through the engine's ops.
import type { Gpu } from '../engine/device.ts';
import { Param } from '../engine/manifold.ts';
import type { Ctx } from '../engine/ops/ctx.ts';
import { Tensor, type AnyTensor } from '../engine/tensor.ts';
import {
  type Graph,
  INPUT,
  type ModelDef,
  consumers,
  initParams,
  initStates,
  paramShapes,
  stateShapes,
  toGraph,
} from './graph.ts';
import { type BnMode, rowOf } from './layers.ts';

const baseOf = (t: AnyTensor): Tensor => (t instanceof Tensor ? t : t.base);

export class Model {
  readonly graph: Graph;
  readonly params: Param[];
  /** BN running statistics, B basis tensors each like the parameters (not trained by gradients). */
  readonly states: Param[];
  bnMode: BnMode = 'batch';
  /** Dropout layers drop only while this is set (training); otherwise they are the identity (evaluation). */
  dropoutActive = false;
  /** Per node: its parameters and states. */
  private readonly slots: { params: Param[]; states: Param[] }[];
  private readonly users: Map<string, string[]>;

  constructor(
    readonly gpu: Gpu,
    readonly layers: ModelDef,
    readonly B: number,
    init: Float32Array[],
    states?: Float32Array[],
  ) {
    this.graph = toGraph(layers);
    const shapes = paramShapes(this.graph);
    if (init.length !== shapes.length)
      throw new Error(`model: ${init.length} initial tensors for ${shapes.length} parameters`);
    this.params = shapes.map((s, i) => new Param(gpu, s.name, s.shape, B, init[i]));
    const st = stateShapes(this.graph);
    const sInit = states ?? initStates(this.graph, B);
    if (sInit.length !== st.length)
      throw new Error(`model: ${sInit.length} running-statistics tensors for ${st.length}`);
    this.states = st.map((s, i) => new Param(gpu, s.name, s.shape, B, sInit[i]));
    let pi = 0,
      si = 0;
    this.slots = this.graph.nodes.map((n) => {
      const row = rowOf(n.op);
      const np = row.params?.(n.op as never, n.name).length ?? 0;
      const ns = row.states?.(n.op as never, n.name).length ?? 0;
      return { params: this.params.slice(pi, (pi += np)), states: this.states.slice(si, (si += ns)) };
    });
    this.users = consumers(this.graph);
  }

  static create(gpu: Gpu, layers: ModelDef, B = 1, seed = 0): Model {
    return new Model(gpu, layers, B, initParams(layers, B, seed));
  }

  /** Parameters of one point (the size of one weight vector). */
  get pointSize(): number {
    return this.params.reduce((a, p) => a + p.size, 0);
  }

  /**
   * Logits [K, N, classes] for the shared input batch x [N, C, H, W]. Without a tape, each intermediate is freed as
   * soon as its last consumer has run. A conv or linear node whose only consumer is a ReLU computes it in its kernel
   * (not with paired masks, whose ReLUs take their masks from the pair).
   */
  forward(ctx: Ctx, x: AnyTensor, dropoutSeed = 0): Tensor {
    const g = this.graph;
    const vals = new Map<string, AnyTensor>([[INPUT, x]]);
    // pending consumers per storage (views and pass-through nodes share their input's)
    const pending = new Map<Tensor, number>();
    const addUses = (t: AnyTensor, n: number) => pending.set(baseOf(t), (pending.get(baseOf(t)) ?? 0) + n);
    addUses(x, this.users.get(INPUT)!.length + 1); // the input is the caller's: never freed
    const fused = new Set<string>();
    g.nodes.forEach((n, i) => {
      const row = rowOf(n.op);
      const users = this.users.get(n.name)!;
      const fuse =
        !!row.fusesRelu &&
        !ctx.pairedMasks &&
        users.length === 1 &&
        g.nodes.find((m) => m.name === users[0])?.op.type === 'relu';
      if (fuse) fused.add(users[0]);
      const inputs = n.inputs.map((v) => vals.get(v)!);
      const { params, states } = this.slots[i];
      const env = {
        ctx,
        bnMode: this.bnMode,
        dropoutActive: this.dropoutActive,
        dropoutSeed: dropoutSeed + n.index,
        fuseRelu: fuse || fused.has(n.name),
      };
      const y = row.forward(n.op as never, inputs, params, states, env);
      vals.set(n.name, y);
      addUses(y, users.length + (n.name === g.output ? 1 : 0));
      if (ctx.tape) return;
      for (const v of inputs) {
        const b = baseOf(v);
        const left = pending.get(b)! - 1;
        pending.set(b, left);
        if (left === 0) b.dispose();
      }
    });
    const y = vals.get(g.output)!;
    return y instanceof Tensor ? y : y.base;
  }

  dispose(): void {
    for (const p of this.params) p.dispose();
    for (const p of this.states) p.dispose();
  }
}
