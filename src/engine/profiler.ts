// Per-kernel GPU time from timestamp queries (one begin/end pair per compute pass), aggregated into a
// table (calls, ms, GFLOP/s, GB/s, share) and exportable as a Chrome trace (chrome://tracing, Perfetto).
import type { Dispatch, Gpu } from './device.ts';

export interface KernelTime {
  name: string;
  what: string;
  startNs: number;
  durNs: number;
  flops: number;
  bytes: number;
}

export interface KernelRow {
  name: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  gflops: number | null;
  gbps: number | null;
  share: number;
}

export const CAPACITY = 2048; // dispatches per query set (2 queries each; WebGPU allows 4096 per set)

export class Profiler {
  private querySet: GPUQuerySet;
  private pending: Dispatch[] = [];
  /** full query sets already resolved into their own buffers (in submission order), read by collect() */
  private resolved: { buf: GPUBuffer; dispatches: Dispatch[] }[] = [];
  readonly times: KernelTime[] = [];

  private constructor(private gpu: Gpu) {
    const d = gpu.device;
    this.querySet = d.createQuerySet({ type: 'timestamp', count: 2 * CAPACITY, label: 'profiler' });
    gpu.onDispatch = (disp, pass) => {
      // a full query set is resolved into a buffer of its own before its queries are reused (in submission order,
      // so the resolve sees the old values), and read at the next collect(): no dispatch goes untimed
      if (this.pending.length >= CAPACITY) this.flush();
      const i = this.pending.length;
      pass.timestampWrites = {
        querySet: this.querySet,
        beginningOfPassWriteIndex: 2 * i,
        endOfPassWriteIndex: 2 * i + 1,
      };
      this.pending.push(disp);
    };
  }

  /** null when the adapter has no timestamp queries (the Gpu must be created with profile: true). */
  static attach(gpu: Gpu): Profiler | null {
    if (!gpu.device.features.has('timestamp-query')) return null;
    return new Profiler(gpu);
  }

  private flush(): void {
    const n = this.pending.length;
    if (n === 0) return;
    const buf = this.gpu.device.createBuffer({
      size: 16 * n,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      label: 'profiler.resolved',
    });
    this.gpu.commandEncoder().resolveQuerySet(this.querySet, 0, 2 * n, buf, 0);
    this.resolved.push({ buf, dispatches: this.pending });
    this.pending = [];
  }

  /** Resolves the timestamps of everything dispatched since the last collect. */
  async collect(): Promise<void> {
    this.flush();
    const all = this.resolved.splice(0);
    for (const r of all) {
      this.take(new BigUint64Array(await this.gpu.read(r.buf, 16 * r.dispatches.length)), r.dispatches);
      r.buf.destroy();
    }
  }

  private take(raw: BigUint64Array, ds: Dispatch[]): void {
    ds.forEach((d, i) => {
      const t0 = Number(raw[2 * i]),
        t1 = Number(raw[2 * i + 1]);
      this.times.push({
        name: d.kernel.name,
        what: d.what,
        startNs: t0,
        durNs: Math.max(0, t1 - t0),
        flops: d.flops ?? 0,
        bytes: d.bytes ?? 0,
      });
    });
  }

  clear(): void {
    this.times.length = 0;
  }

  rows(): KernelRow[] {
    const by = new Map<string, { calls: number; ns: number; flops: number; bytes: number }>();
    for (const t of this.times) {
      const r = by.get(t.name) ?? { calls: 0, ns: 0, flops: 0, bytes: 0 };
      r.calls++;
      r.ns += t.durNs;
      r.flops += t.flops;
      r.bytes += t.bytes;
      by.set(t.name, r);
    }
    const total = this.times.reduce((a, t) => a + t.durNs, 0) || 1;
    return [...by.entries()]
      .map(([name, r]) => ({
        name,
        calls: r.calls,
        totalMs: r.ns / 1e6,
        meanMs: r.ns / 1e6 / r.calls,
        gflops: r.flops && r.ns ? r.flops / r.ns : null,
        gbps: r.bytes && r.ns ? r.bytes / r.ns : null,
        share: r.ns / total,
      }))
      .sort((a, b) => b.totalMs - a.totalMs);
  }

  table(): string {
    const f = (v: number | null, d = 1) => (v === null ? '-' : v.toFixed(d));
    const lines = [
      '| kernel | calls | total ms | mean ms | GFLOP/s | GB/s | share |',
      '|---|---:|---:|---:|---:|---:|---:|',
    ];
    for (const r of this.rows())
      lines.push(
        `| ${r.name} | ${r.calls} | ${r.totalMs.toFixed(2)} | ${r.meanMs.toFixed(3)} |` +
          ` ${f(r.gflops)} | ${f(r.gbps)} | ${(r.share * 100).toFixed(1)}% |`,
      );
    return lines.join('\n');
  }

  /** Chrome trace events (microseconds) of the collected dispatches. */
  chromeTrace(): object {
    let t0 = Infinity;
    for (const t of this.times) t0 = Math.min(t0, t.startNs);
    return {
      traceEvents: this.times.map((t) => ({
        name: t.name,
        cat: 'gpu',
        ph: 'X',
        ts: (t.startNs - t0) / 1000,
        dur: t.durNs / 1000,
        pid: 1,
        tid: 1,
        args: { what: t.what, gflop: t.flops / 1e9 },
      })),
      displayTimeUnit: 'ms',
    };
  }

  detach(): void {
    this.gpu.onDispatch = null;
    for (const r of this.resolved.splice(0)) r.buf.destroy();
    this.querySet.destroy();
  }
}
