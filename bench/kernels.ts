// npm run bench:kernels [-- --K 100 --N 64 --reps 10 --json PATH]
// Conv forward, input-gradient and weight-gradient at the MPO models' shapes: GPU time per call from
// timestamp queries (median over reps), GFLOP/s, and the share of a tiled f32 matmul and a copy measured
// on the same adapter (the roofline probe). Each kernel is validated against the CPU reference first.
import '../src/platform/node.ts';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { execSync } from 'node:child_process';
import { Gpu } from '../src/engine/device.ts';
import { Manifold, Param } from '../src/engine/manifold.ts';
import * as ops from '../src/engine/ops/index.ts';
import { Profiler } from '../src/engine/profiler.ts';
import { Tape } from '../src/engine/tape.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { checkOp, opCases, randArray, rng } from '../src/engine/gradcheck.ts';
import { describeRoofline, roofline } from './roofline.ts';

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

async function main(): Promise<void> {
  const gpu = await Gpu.create({ profile: true, verbose: argv.includes('--verbose') });
  const cpu = gpu.isCpu;
  const K = Number(flag('K') ?? (cpu ? 8 : 100));
  const N = Number(flag('N') ?? (cpu ? 16 : 64));
  const reps = Number(flag('reps') ?? (cpu ? 5 : 20));
  const mm = Number(flag('matmul') ?? (cpu ? 512 : 4096));
  console.log(`adapter: ${gpu.adapterInfo}${cpu ? ' (CPU adapter: small sizes; pass --K/--N to change)' : ''}`);

  // validate the conv kernels before timing them
  for (const c of opCases().filter((c) => c.op === 'conv2d')) {
    const r = await checkOp(gpu, c);
    if (!r.pass) throw new Error(`validation failed: conv2d ${c.name}: ${r.detail}`);
  }
  console.log('validation: conv2d forward and gradients match the CPU reference');
  const prof = Profiler.attach(gpu);
  if (!prof) throw new Error(`adapter ${gpu.adapterInfo} has no timestamp-query: GPU times cannot be measured`);

  const roof = await roofline(gpu, prof, mm, cpu ? 2 ** 22 : 2 ** 26, reps);
  const peakGflops = roof.gflops,
    peakGBs = roof.gbps;
  console.log(`${describeRoofline(roof)}\n`);

  const shapes = [
    { name: 'icon conv1 1->8 @28x28 (shared input)', Cin: 1, Cout: 8, H: 28, shared: true },
    { name: 'icon conv2 8->32 @14x14', Cin: 8, Cout: 32, H: 14, shared: false },
    { name: 'icon conv3 32->64 @7x7', Cin: 32, Cout: 64, H: 7, shared: false },
    { name: 'cifar conv2 16->32 @32x32', Cin: 16, Cout: 32, H: 32, shared: false },
  ];
  const rows: object[] = [];
  console.log(`| layer | K | N | kernel | ms | GFLOP/s | share of matmul |\n|---|---:|---:|---|---:|---:|---:|`);
  for (const s of shapes) {
    const B = 3;
    const manifold = new Manifold(gpu, K, B, randArray(rng(3), K * B));
    const w = new Param(gpu, 'w', [s.Cout, s.Cin, 3, 3], B, randArray(rng(4), B * s.Cout * s.Cin * 9, 0.1));
    const bias = new Param(gpu, 'b', [s.Cout], B, randArray(rng(5), B * s.Cout, 0.1));
    const xs = s.shared ? [N, s.Cin, s.H, s.H] : [K, N, s.Cin, s.H, s.H];
    const x = Tensor.fromArray(
      gpu,
      xs,
      randArray(
        rng(6),
        xs.reduce((p, q) => p * q, 1),
      ),
      'x',
    );
    for (let i = 0; i < reps + 1; i++) {
      const tape = new Tape(gpu, manifold, false);
      const y = ops.conv2d({ gpu, manifold, tape }, x, w, bias, { pad: 1 });
      tape.backwardFrom(y, Tensor.zeros(gpu, y.shape, 'seed'));
      tape.dispose();
      await gpu.sync();
      await prof.collect();
    }
    const flopsOf = { 'conv2d.fwd': 0, 'conv2d.dgrad': 0, 'conv2d.wgrad': 0 } as Record<string, number>;
    for (const name of ['conv2d.fwd', 'conv2d.dgrad', 'conv2d.wgrad', 'conv2d.wgrad_reduce']) {
      const ts = prof.times.filter((x) => x.name === name);
      if (!ts.length) continue;
      const per = ts.length / (reps + 1);
      const calls: number[] = [];
      for (let i = 1; i <= reps; i++)
        calls.push(ts.slice(i * per, (i + 1) * per).reduce((acc, x) => acc + x.durNs, 0) / 1e6);
      const ms = median(calls);
      const fl = ts[0].flops * per;
      flopsOf[name] = fl;
      // a kernel shorter than the timer's resolution reads 0 ms: no rate then
      const gf = fl && ms > 0 ? fl / (ms * 1e6) : null;
      rows.push({ layer: s.name, K, N, kernel: name, ms, gflops: gf, share: gf ? gf / peakGflops : null });
      console.log(
        `| ${s.name} | ${K} | ${N} | ${name} | ${ms > 0 ? ms.toFixed(3) : '< timer resolution'} ` +
          `| ${gf ? gf.toFixed(1) : '-'} | ${gf ? `${((gf / peakGflops) * 100).toFixed(0)}%` : '-'} |`,
      );
    }
    prof.clear();
    x.dispose();
    w.dispose();
    bias.dispose();
    manifold.dispose();
  }
  const commit = (() => {
    try {
      return execSync('git rev-parse HEAD', { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim();
    } catch {
      return 'unknown';
    }
  })();
  const out = {
    adapter: gpu.adapterInfo,
    commit,
    date: new Date().toISOString(),
    matmul: { n: mm, gflops: peakGflops },
    copyGBs: peakGBs,
    rows,
  };
  const slug = gpu.adapterInfo
    .split(' / ')
    .pop()!
    .replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40);
  const json = flag('json') ?? `bench/results/kernels-${slug}-${out.date.slice(0, 10)}.json`;
  mkdirSync(dirname(json), { recursive: true });
  writeFileSync(json, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`\nwrote ${json}`);
  prof.detach();
  gpu.destroy();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
