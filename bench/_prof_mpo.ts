import { Gpu } from '../src/engine/device.ts';
import { Profiler } from '../src/engine/profiler.ts';
import { runMpo } from '../src/experiments/mpo.ts';
import { mpoConfig, loadData } from '../src/experiments/mpo-cli.ts';
const gpu = await Gpu.create({ profile: true });
const prof = Profiler.attach(gpu)!;
const cfg = mpoConfig({ quick: true, steps: process.argv[2] ?? '6', 'eval-images': '1', pad: '0', 'checkpoint-every': '1000', ...(process.argv[3] ? { batch: process.argv[3] } : {}) });
const data = loadData(cfg);
let last = performance.now();
let gpuMs = 0;
await runMpo(gpu, cfg, data, '/tmp/la/prof' + Date.now(), false, { onStep: async (s) => { const now = performance.now(); console.log(`step ${s}: ${(now - last).toFixed(0)} ms wall, dispatches ${gpu.dispatchCount}, pool live ${(gpu.pool.liveBytes/1e6).toFixed(1)} MB alloc ${(gpu.pool.allocatedBytes/1e6).toFixed(1)} MB`); last = now; } });
await prof.collect();
console.log('GPU ms total (incl. 1-image eval):', prof.times.reduce((a, t) => a + t.durNs / 1e6, 0).toFixed(0));
console.log(prof.table());
const by = new Map<string, number>();
for (const t of prof.times) { const k = t.name + ' | ' + t.what.replace(/K=\d+/, 'K').slice(0, 90); by.set(k, (by.get(k) ?? 0) + t.durNs / 1e6); }
for (const [k, v] of [...by.entries()].sort((a, b) => b[1] - a[1]).slice(0, 14)) console.log(v.toFixed(0).padStart(7), 'ms ', k);
gpu.destroy(); process.exit(0);
