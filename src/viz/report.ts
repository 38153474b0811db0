// `loss-atlas report`: one static HTML page over the run directories under a folder (MPO runs, trainings,
// interpolations, surfaces, trajectories, bn-compare): their pictures, metrics and settings, newest first.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const IMAGES = ['summary.png', 'trajectory.png', 'interpolate.png', 'surface_contour.png', 'surface_heatmap.png', 'bn_compare.png', 'mask.png'];
const METRICS = ['metrics.json', 'trajectory.json'];

interface RunEntry { dir: string; kind: string; mtime: number; images: string[]; metrics: string | null; config: string | null }

function kindOf(files: string[]): string {
  if (files.includes('summary.png')) return 'MPO pattern';
  if (files.includes('bn_compare.png')) return 'bn-compare';
  if (files.includes('trajectory.png')) return 'trajectory';
  if (files.includes('interpolate.png')) return '1-D interpolation';
  if (files.includes('surface_heatmap.png')) return '2-D surface';
  if (files.includes('model.safetensors')) return 'training';
  return 'run';
}

function collect(root: string, depth = 0, out: RunEntry[] = []): RunEntry[] {
  if (depth > 3 || !existsSync(root)) return out;
  const files = readdirSync(root);
  const looksLikeRun = files.some((f) => f === 'config.json' || f === 'surface_meta.json' || IMAGES.includes(f));
  if (looksLikeRun && depth > 0) {
    const m = METRICS.find((f) => files.includes(f));
    out.push({
      dir: root, kind: kindOf(files), mtime: statSync(root).mtimeMs,
      images: IMAGES.filter((f) => files.includes(f)),
      metrics: m ? readFileSync(join(root, m), 'utf8').slice(0, 4000) : null,
      config: files.includes('config.json') ? readFileSync(join(root, 'config.json'), 'utf8').slice(0, 4000) : null,
    });
  }
  for (const f of files) {
    const p = join(root, f);
    if (statSync(p).isDirectory() && f !== 'checkpoint' && f !== 'snapshots') collect(p, depth + 1, out);
  }
  return out;
}

/** Writes root/report.html; returns the number of runs listed. */
export function writeReport(root: string): number {
  const runs = collect(root).sort((a, b) => b.mtime - a.mtime);
  const sections = runs.map((r) => `
<section>
  <h2>${esc(r.kind)}: <code>${esc(relative(root, r.dir) || '.')}</code></h2>
  <p class="when">${new Date(r.mtime).toISOString().replace('T', ' ').slice(0, 19)} UTC</p>
  ${r.images.map((i) => `<a href="${esc(relative(root, join(r.dir, i)))}"><img src="${esc(relative(root, join(r.dir, i)))}" alt="${esc(i)}"></a>`).join('\n  ')}
  ${r.metrics ? `<details open><summary>results</summary><pre>${esc(r.metrics)}</pre></details>` : ''}
  ${r.config ? `<details><summary>settings</summary><pre>${esc(r.config)}</pre></details>` : ''}
</section>`).join('\n');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loss-atlas report</title>
<style>
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 2em; max-width: 1400px; color: #222; }
section { border-top: 1px solid #ccc; padding: 1em 0; }
img { max-width: 640px; max-height: 480px; margin: 0.3em; border: 1px solid #eee; vertical-align: top; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 12px; }
.when { color: #777; font-size: 13px; margin-top: -0.6em; }
</style></head><body>
<h1>loss-atlas report</h1>
<p>${runs.length} run${runs.length === 1 ? '' : 's'} under <code>${esc(root)}</code>, newest first. Generated ${new Date().toISOString().slice(0, 19)} UTC.</p>
${sections || '<p>No runs found.</p>'}
</body></html>
`;
  writeFileSync(join(root, 'report.html'), html);
  return runs.length;
}
