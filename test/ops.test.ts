// Every op: forward vs the CPU reference, backward vs central finite differences (see src/engine/gradcheck.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { checkOp, opCases, type OpCase } from '../src/engine/gradcheck.ts';
import { testGpu } from './helpers.ts';

let gpu: Gpu;
beforeAll(async () => { gpu = await testGpu(); });
afterAll(() => gpu?.destroy());

describe('ops against the CPU reference and finite differences', () => {
  for (const c of opCases()) {
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
