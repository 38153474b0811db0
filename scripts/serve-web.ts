// npm run web [-- --port N --host H]: builds the page when dist/web/ is missing or older than its sources, then
// serves dist/web/ on http://localhost:PORT/ (default 8080) and prints the URL. Any static server does as well:
// the page is plain files.
import '../src/platform/node.ts';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildWeb } from './build-web.ts';

const root = resolve(import.meta.dirname, '..');
const dist = join(root, 'dist/web');
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.png': 'image/png',
};

/** The newest modification time under a folder (the page's sources). */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Serves `dir` on host:port; resolves with the server once it listens. */
export function serve(dir: string, port: number, host = '127.0.0.1') {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = normalize(join(dir, decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname)));
    // inside dir only: a sibling folder whose name starts with dir's is outside too
    if (relative(dir, path).startsWith('..') || !existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${url.pathname}`);
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' });
    createReadStream(path).pipe(res);
  });
  return new Promise<typeof server>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => ok(server));
  });
}

if (process.argv[1]?.endsWith('serve-web.ts')) {
  const { values } = parseArgs({
    options: { port: { type: 'string', default: '8080' }, host: { type: 'string', default: '127.0.0.1' } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port: a port number 0..65535 expected, got '${values.port}'`);
    process.exit(2);
  }
  const stale =
    !existsSync(join(dist, 'app.js')) ||
    statSync(join(dist, 'app.js')).mtimeMs < Math.max(newest(join(root, 'src')), newest(join(root, 'web')));
  (async () => {
    if (stale) {
      console.log('building the page (npm run build:web) ...');
      await buildWeb({ out: dist, train: 4000, test: 1000 });
    }
    const server = await serve(dist, port, values.host);
    const a = server.address();
    const p = typeof a === 'object' && a ? a.port : port;
    console.log(`loss-atlas in the browser: http://${values.host === '0.0.0.0' ? 'localhost' : values.host}:${p}/`);
    console.log('(a browser with WebGPU: Chrome or Edge 113+, Safari 26; Ctrl-C stops the server)');
  })().catch((e) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
