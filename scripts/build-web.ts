// npm run build:web [-- --out DIR --data DIR --train-images N --test-images N]: the web page as static files in
// dist/web/ (index.html, style.css, app.js bundled by esbuild for browsers, fashion-mnist.pack: the first N training
// and test images of the local Fashion-MNIST). Deployable to any static host. The build fails if the bundle would
// take in a Node-only module (the file system, sharp, Dawn's webgpu package).
import '../src/platform/node.ts';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { fashionMnistDir, loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { packBytes } from '../src/data/pack.ts';

/** Module paths a page must not contain: Node's built-ins and the Node-only packages. */
export const NODE_ONLY = /^node:|^(fs|path|os|child_process|worker_threads|util|zlib)$|node_modules\/(sharp|webgpu)\//;

const root = resolve(import.meta.dirname, '..');

export async function buildWeb(o: { out: string; data?: string; train: number; test: number }) {
  mkdirSync(o.out, { recursive: true });
  const r = await build({
    entryPoints: [join(root, 'src/web/main.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    metafile: true,
    outfile: join(o.out, 'app.js'),
    logLevel: 'warning',
  });
  const inputs = Object.keys(r.metafile.inputs);
  const bad = inputs.filter((p) => NODE_ONLY.test(p));
  if (bad.length) throw new Error(`build:web: the bundle takes in Node-only modules: ${bad.join(', ')}`);
  for (const f of ['index.html', 'style.css']) copyFileSync(join(root, 'web', f), join(o.out, f));
  const dir = fashionMnistDir(o.data);
  const [train, test] = [loadFashionMnist(dir, 'train', o.train), loadFashionMnist(dir, 't10k', o.test)];
  const pack = packBytes('fashion-mnist', train, test, o.train, o.test);
  writeFileSync(join(o.out, 'fashion-mnist.pack'), pack);
  const js = Object.entries(r.metafile.outputs).find(([k]) => k.endsWith('app.js'));
  return { out: o.out, inputs, bundleBytes: js?.[1].bytes ?? 0 };
}

if (process.argv[1]?.endsWith('build-web.ts')) {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: join(root, 'dist/web') },
      data: { type: 'string' },
      'train-images': { type: 'string', default: '4000' },
      'test-images': { type: 'string', default: '1000' },
    },
  });
  const count = (flag: string, v: string) => {
    if (!/^[1-9]\d*$/.test(v)) throw new Error(`--${flag}: a positive integer expected, got '${v}'`);
    return Number(v);
  };
  buildWeb({
    out: values.out!,
    data: values.data,
    train: count('train-images', values['train-images']!),
    test: count('test-images', values['test-images']!),
  }).then(
    (b) => console.log(`wrote ${b.out}: app.js (${(b.bundleBytes / 1024).toFixed(0)} KiB, ${b.inputs.length} modules)`),
    (e) => {
      console.error((e as Error).message);
      process.exit(1);
    },
  );
}
