// Every op: forward vs the CPU reference, backward vs central finite differences (see src/engine/gradcheck.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { checkOp, opCases } from '../src/engine/gradcheck.ts';
import { convCase } from '../src/engine/ops/conv.cases.ts';
import type { OpCase } from '../src/engine/ops/case.ts';
import { wedgeCases } from '../src/structure/wedge.ts';
import { testGpu } from './helpers.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe('ops against the CPU reference and finite differences', () => {
  for (const c of [...opCases(), ...wedgeCases()]) {
    it(`${c.op}: ${c.name}`, async () => {
      const before = gpu.pool.liveBytes;
      const r = await checkOp(gpu, c);
      expect(r.detail).toBe('');
      expect(r.pass).toBe(true);
      expect(r.fwdErr).toBeLessThanOrEqual(1);
      expect(r.bwdErr).toBeLessThanOrEqual(1);
      expect(gpu.pool.liveBytes).toBe(before);
    });
  }
});

describe('1-D kernels at one element per invocation (the GPU setting; CPU adapters run 16)', () => {
  let saved = 1;
  beforeAll(() => {
    saved = gpu.elemsPerThread;
    gpu.elemsPerThread = gpu.elemsPerThread === 1 ? 16 : 1;
  });
  afterAll(() => {
    gpu.elemsPerThread = saved;
  });
  // elementwise (relu, add), max-pool forward, and the combine kernel of the shared-input conv path
  const picked = opCases().filter(
    (c) =>
      ['relu', 'add', 'maxpool2d'].includes(c.op) || (c.op === 'conv2d' && c.name.startsWith('K7 B3 shared input')),
  );
  for (const c of picked) {
    it(`${c.op}: ${c.name}`, async () => {
      const r = await checkOp(gpu, c);
      expect(r.detail).toBe('');
      expect(r.pass).toBe(true);
    });
  }
  it('covers the kernels it is meant to', () =>
    expect(picked.map((c) => c.op).sort()).toEqual(['add', 'conv2d', 'conv2d', 'maxpool2d', 'maxpool2d', 'relu']));
});

describe('lanes weight gradient with more per-lane dL/dC partials than a binding holds', () => {
  it('falls back to the tiled kernel for that layer (K40 B2 Cin1 Cout1 under a 32 KiB binding limit)', async () => {
    // lanes: 14 layers x 16 lanes x 40 points x 2 = 71.7 KB of partials; tiled: 40 x 40 x 2 = 12.8 KB
    const c = convCase('K40 B2', 40, 2, { N: 1, Cin: 1, H: 5, W: 5, Cout: 1, KH: 3, KW: 3, stride: 1, pad: 1 });
    const saved = gpu.bindingLimit;
    gpu.bindingLimit = 32 * 1024;
    try {
      const r = await checkOp(gpu, { ...c, gpu: (ctx, x, p) => c.gpu({ ...ctx, convKernels: 'lanes' }, x, p) });
      expect(r.detail).toBe('');
      expect(r.pass).toBe(true);
    } finally {
      gpu.bindingLimit = saved;
    }
  });
});

describe('the checker itself can fail', () => {
  const conv = opCases().find((c) => c.op === 'conv2d' && c.K === 7)!;
  it('flags a forward that is off by 0.1%', async () => {
    const bad: OpCase = { ...conv, ref: (x, p, c) => conv.ref(x, p, c).map((v) => v * 1.001) };
    const r = await checkOp(gpu, bad);
    expect(r.pass).toBe(false);
    expect(r.fwdErr).toBeGreaterThan(1);
  });
  it('flags a backward that is off by 1%', async () => {
    const bad: OpCase = {
      ...conv,
      refLoss: (x, p, c, seed) => conv.ref(x, p, c).reduce((s, v, i) => s + v * seed[i], 0) * 1.01,
    };
    const r = await checkOp(gpu, bad);
    expect(r.pass).toBe(false);
    expect(r.bwdErr).toBeGreaterThan(1);
  });
});
