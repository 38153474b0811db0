// The profiler times every dispatch, also past one query set's capacity (full sets are resolved into buffers of
// their own), and aggregates them per kernel.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../src/engine/device.ts';
import { CAPACITY, Profiler } from '../src/engine/profiler.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { kernel, w } from '../src/engine/kernel.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await Gpu.create({ profile: true });
});
afterAll(() => gpu?.destroy());

describe('profiler', () => {
  it('times all of 2 x CAPACITY + 5 dispatches between two collects', async () => {
    const prof = Profiler.attach(gpu);
    expect(prof, 'this adapter has no timestamp-query').not.toBeNull();
    const fill = kernel(
      'test.fill',
      '',
      [['n', 'u32']],
      [w('y')],
      '@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {' +
        ' if (g.x < u.n) { y[g.x] = f32(g.x); } }',
      64,
    );
    const y = new Tensor(gpu, [100], 'y');
    const n = 2 * CAPACITY + 5;
    for (let i = 0; i < n; i++) {
      gpu.dispatch({
        kernel: fill,
        buffers: { y: y.buffer },
        uniforms: { n: 100 },
        groups: [2],
        what: `fill ${i}`,
        flops: 100,
      });
      if (i === 10) await gpu.sync(); // submissions in between do not matter
    }
    await prof!.collect();
    expect(prof!.times.length).toBe(n);
    expect(prof!.times.map((t) => t.what)).toEqual(Array.from({ length: n }, (_, i) => `fill ${i}`));
    expect(prof!.times.every((t) => t.durNs >= 0 && Number.isFinite(t.startNs))).toBe(true);
    const row = prof!.rows().find((r) => r.name === 'test.fill');
    expect(row?.calls).toBe(n);
    expect((prof!.chromeTrace() as { traceEvents: unknown[] }).traceEvents.length).toBe(n);
    expect((await y.read())[99]).toBe(99);
    prof!.detach();
    y.dispose();
  }, 120_000);
});
