import { Gpu } from '../src/engine/device.ts';
import { Manifold, Param } from '../src/engine/manifold.ts';
import * as ops from '../src/engine/ops.ts';
import { Profiler } from '../src/engine/profiler.ts';
import { Tape } from '../src/engine/tape.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { randArray, rng } from '../src/engine/gradcheck.ts';
const gpu = await Gpu.create({ profile: true });
const prof = Profiler.attach(gpu)!;
const [K, N, F, O, B, cg] = process.argv.slice(2).map(Number);
const m = new Manifold(gpu, K, B, randArray(rng(1), K * B));
const w = new Param(gpu, 'w', [O, F], B, randArray(rng(2), B * O * F));
const b = new Param(gpu, 'b', [O], B, randArray(rng(3), B * O));
const x = Tensor.fromArray(gpu, [K, N, F], randArray(rng(4), K * N * F));
for (let i = 0; i < 3; i++) {
  const tape = new Tape(gpu, m, !!cg);
  const y = ops.linear({ gpu, manifold: m, tape }, x, w, b);
  tape.backwardFrom(y, Tensor.zeros(gpu, y.shape));
  tape.dispose();
  await gpu.sync();
}
await prof.collect();
for (const t of prof.times.slice(-6)) console.log(t.name, (t.durNs / 1e6).toFixed(2), 'ms', t.what.slice(-40));
gpu.destroy(); process.exit(0);
