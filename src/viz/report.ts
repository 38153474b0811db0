// `loss-atlas report DIR`: static HTML. For a run directory, DIR/index.html with every picture, the results, the
// settings and links to the data files. For a folder of runs, an index.html in each run and a gallery DIR/index.html
// (newest first: kind, a thumbnail, headline results, a link to the run's page).
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { readRunConfig, type RunKind } from '../run/run-info.ts';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** Pictures shown first, in this order (the most telling per kind); any other PNG follows. */
const PREFERRED = [
  'summary.png',
  'trajectory.png',
  'interpolate.png',
  'surface_contour.png',
  'surface_heatmap.png',
  'surface_3d.png',
  'hessian_ratio.png',
  'hessian_path.png',
  'bn_compare.png',
  'mask.png',
  'fort_summary.png',
  'li_depth.png',
  'li_batch.png',
  'hyperplanes.png',
  'connect.png',
  'triangle.png',
  'tunnels.png',
  'sweep.png',
  'subspace.png',
  'swa.png',
];
const RESULTS = ['metrics.json', 'trajectory.json', 'summary.json'];
const DATA = /\.(npy|json|jsonl|safetensors|vtp|csv)$/;
/** Files that mark a directory as a run. */
const MARKERS = ['config.json', 'metrics.json', 'surface_meta.json', 'hessian_meta.json', 'summary.json'];

interface Run {
  dir: string;
  kind: string;
  mtime: number;
  images: string[];
  data: string[];
  results: string | null;
  config: string | null;
  /** Why config.json could not be read, if it could not. */
  problem: string | null;
}

/** How the report names each kind of run. */
const KIND_NAMES: Record<RunKind, string> = {
  mpo: 'MPO pattern',
  'bn-compare': 'bn-compare',
  train: 'training',
  interpolate: '1-D interpolation',
  surface: '2-D surface',
  hessian: 'Hessian eigenvalues',
  trajectory: 'trajectory',
  'li-figures': 'figure set',
  connect: 'connector',
  msweep: 'm-connectors',
  tunnels: 'radial tunnels',
  subspace: 'random subspaces',
  swa: 'SWA vs ensembles',
  toy: 'toy landscape',
  'fort-figures': 'figure set',
};

/** The kind from config.json; for run directories written before it named the kind, a guess from the file names. */
function kindOf(dir: string, files: string[]): { kind: string; problem: string | null } {
  if (!files.includes('config.json')) return { kind: guessKind(files), problem: null };
  try {
    return { kind: KIND_NAMES[readRunConfig(dir).kind], problem: null };
  } catch (e) {
    const msg = (e as Error).message;
    return { kind: guessKind(files), problem: /no "kind"/.test(msg) ? null : msg };
  }
}

function guessKind(files: string[]): string {
  if (files.includes('summary.png')) return 'MPO pattern';
  if (files.includes('bn_compare.png')) return 'bn-compare';
  if (files.includes('trajectory.png')) return 'trajectory';
  if (files.includes('interpolate.png')) return '1-D interpolation';
  if (files.includes('hessian_meta.json')) return 'Hessian eigenvalues';
  if (files.includes('hyperplanes.png')) return 'toy landscape';
  if (files.includes('connect.png') || files.includes('triangle.png')) return 'connector';
  if (files.includes('tunnels.png') || files.includes('sweep.png')) return 'radial tunnels';
  if (files.includes('subspace.png')) return 'random subspaces';
  if (files.includes('swa.png')) return 'SWA vs ensembles';
  if (files.includes('li_depth.png') || files.includes('fort_summary.png')) return 'figure set';
  if (files.includes('surface_meta.json')) return '2-D surface';
  if (files.includes('model.safetensors')) return 'training';
  return 'run';
}

function readRun(dir: string): Run {
  const files = readdirSync(dir)
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort();
  const pngs = files.filter((f) => f.endsWith('.png'));
  const r = RESULTS.find((f) => files.includes(f));
  return {
    dir,
    ...kindOf(dir, files),
    mtime: statSync(dir).mtimeMs,
    images: [...PREFERRED.filter((f) => pngs.includes(f)), ...pngs.filter((f) => !PREFERRED.includes(f))],
    data: files.filter((f) => DATA.test(f)),
    results: r ? readFileSync(join(dir, r), 'utf8').slice(0, 6000) : null,
    config: files.includes('config.json') ? readFileSync(join(dir, 'config.json'), 'utf8').slice(0, 6000) : null,
  };
}

const isRun = (dir: string) => MARKERS.some((m) => existsSync(join(dir, m)));

function collect(root: string, depth = 0, out: Run[] = []): Run[] {
  if (depth > 3 || !existsSync(root)) return out;
  if (depth > 0 && isRun(root)) out.push(readRun(root));
  for (const f of readdirSync(root)) {
    const p = join(root, f);
    if (statSync(p).isDirectory() && f !== 'checkpoint' && f !== 'snapshots' && f !== 'node_modules')
      collect(p, depth + 1, out);
  }
  return out;
}

const STYLE = `
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 2em; max-width: 1400px; color: #222; }
section { border-top: 1px solid #ccc; padding: 1em 0; }
img { max-width: 640px; max-height: 520px; margin: 0.3em; border: 1px solid #eee; vertical-align: top; }
img.thumb { max-width: 320px; max-height: 240px; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 12px; }
.when { color: #777; font-size: 13px; margin-top: -0.6em; }
ul.data { columns: 3; font-size: 13px; }
.problem { color: #a00; }`;

const page = (title: string, body: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${STYLE}</style></head><body>
${body}
</body></html>
`;

const when = (ms: number) => `${new Date(ms).toISOString().replace('T', ' ').slice(0, 19)} UTC`;

/** The page of one run: every picture, results, settings, data files. */
function runPage(r: Run, back: string | null): string {
  const href = (f: string) => esc(encodeURI(f));
  return page(
    `${r.kind}: ${basename(r.dir)}`,
    `
${back ? `<p><a href="${esc(back)}">&larr; all runs</a></p>` : ''}
<h1>${esc(r.kind)}: <code>${esc(basename(r.dir))}</code></h1>
<p class="when">${when(r.mtime)}</p>
${r.images.map((i) => `<a href="${href(i)}"><img src="${href(i)}" alt="${esc(i)}" title="${esc(i)}"></a>`).join('\n')}
${r.results ? `<h2>Results</h2><pre>${esc(r.results)}</pre>` : ''}
${r.problem ? `<p class="problem">${esc(r.problem)}</p>` : ''}
${r.config ? `<details><summary>Settings</summary><pre>${esc(r.config)}</pre></details>` : ''}
${
  r.data.length
    ? `<h2>Data files</h2><ul class="data">` +
      `${r.data.map((f) => `<li><a href="${href(f)}">${esc(f)}</a></li>`).join('')}</ul>`
    : ''
}`,
  );
}

/**
 * Writes the report: DIR/index.html for a run directory, or one index.html per run below DIR plus the gallery
 * DIR/index.html. Returns the pages written and the number of runs.
 */
export function writeReport(root: string): { runs: number; pages: string[] } {
  if (!existsSync(root)) throw new Error(`report: ${root} does not exist`);
  const runs = collect(root).sort((a, b) => b.mtime - a.mtime);
  if (isRun(root) && runs.length === 0) {
    writeFileSync(join(root, 'index.html'), runPage(readRun(root), null));
    return { runs: 1, pages: [join(root, 'index.html')] };
  }
  // a run made of runs (exp:fort-figures, exp:li-figures): its own pictures and results head the gallery of its parts
  const own = isRun(root) ? readRun(root) : null;
  const pages: string[] = [];
  for (const r of runs) {
    const back = relative(r.dir, join(root, 'index.html'));
    writeFileSync(join(r.dir, 'index.html'), runPage(r, back));
    pages.push(join(r.dir, 'index.html'));
  }
  const rel = (p: string) => esc(encodeURI(relative(root, p)));
  const sections = runs
    .map(
      (r) => `
<section>
  <h2>${esc(r.kind)}: <a href="${rel(join(r.dir, 'index.html'))}"><code>${esc(relative(root, r.dir))}</code></a></h2>
  <p class="when">${when(r.mtime)} &middot; ${r.images.length} picture${r.images.length === 1 ? '' : 's'}, \
${r.data.length} data file${r.data.length === 1 ? '' : 's'}</p>
  ${r.images
    .slice(0, 2)
    .map(
      (i) =>
        `<a href="${rel(join(r.dir, 'index.html'))}">` +
        `<img class="thumb" src="${rel(join(r.dir, i))}" alt="${esc(i)}"></a>`,
    )
    .join('\n  ')}
  ${r.results ? `<details><summary>results</summary><pre>${esc(r.results)}</pre></details>` : ''}
</section>`,
    )
    .join('\n');
  writeFileSync(
    join(root, 'index.html'),
    page(
      'loss-atlas report',
      `
<h1>loss-atlas report</h1>
<p>${runs.length} run${runs.length === 1 ? '' : 's'} under <code>${esc(root)}</code>, newest first. \
Generated ${when(Date.now())}.</p>
${
  own
    ? `<section>
  <h2>${esc(own.kind)}: this directory</h2>
  ${own.images
    .map((i) => `<a href="${rel(join(root, i))}"><img class="thumb" src="${rel(join(root, i))}" alt="${esc(i)}"></a>`)
    .join('\n  ')}
  ${own.results ? `<details><summary>results</summary><pre>${esc(own.results)}</pre></details>` : ''}
</section>`
    : ''
}
${sections || '<p>No runs found.</p>'}`,
    ),
  );
  pages.push(join(root, 'index.html'));
  return { runs: runs.length, pages };
}
