// The HTML report: a page per run (pictures, results, settings, data links) and a gallery; opened in headless
// Chromium (Debian's chromium, driven by playwright-core), where every image must load.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import sharp from 'sharp';
import { writeReport } from '../src/viz/report.ts';
import { writeRunConfig } from '../src/run/run-info.ts';

const CHROMIUM = process.env.LOSS_ATLAS_CHROMIUM ?? '/usr/bin/chromium';

async function png(path: string, color: string): Promise<void> {
  await sharp({ create: { width: 40, height: 30, channels: 3, background: color } })
    .png()
    .toFile(path);
}

async function makeRuns(): Promise<string> {
  const root = mkdtempSync(join(tmpdir(), 'la-report-'));
  mkdirSync(join(root, 'quick-1', 'checkpoint'), { recursive: true });
  writeFileSync(join(root, 'quick-1', 'config.json'), '{"mask":"heart"}');
  writeFileSync(join(root, 'quick-1', 'metrics.json'), '{"test":{"agreement":0.958}}');
  writeFileSync(join(root, 'quick-1', 'grid_test.npy'), 'npy');
  await png(join(root, 'quick-1', 'summary.png'), '#336699');
  await png(join(root, 'quick-1', 'loss_test.png'), '#993366');
  mkdirSync(join(root, 'nested', 'hessian 1'), { recursive: true }); // a space in the name: links must be encoded
  writeFileSync(join(root, 'nested', 'hessian 1', 'hessian_meta.json'), '{}');
  await png(join(root, 'nested', 'hessian 1', 'hessian_ratio.png'), '#669933');
  return root;
}

describe('report', () => {
  it('a page per run with every picture, results and data links, and a gallery', async () => {
    const root = await makeRuns();
    const r = writeReport(root);
    expect(r.runs).toBe(2);
    const run = readFileSync(join(root, 'quick-1', 'index.html'), 'utf8');
    expect(run).toContain('<img src="summary.png"');
    expect(run).toContain('<img src="loss_test.png"');
    expect(run).toContain('<a href="grid_test.npy">grid_test.npy</a>');
    expect(run).toContain('&quot;agreement&quot;:0.958');
    const gallery = readFileSync(join(root, 'index.html'), 'utf8');
    expect(gallery).toContain('MPO pattern: <a href="quick-1/index.html">');
    expect(gallery).toContain('Hessian eigenvalues: <a href="nested/hessian%201/index.html">');
    // a run directory alone gets its own page
    const one = writeReport(join(root, 'quick-1'));
    expect(one.pages).toEqual([join(root, 'quick-1', 'index.html')]);
    expect(() => writeReport(join(root, 'missing'))).toThrow(/missing does not exist/);
  });

  it('a run made of runs (a figure set) heads the gallery of its parts with its own pictures and results', async () => {
    const root = mkdtempSync(join(tmpdir(), 'la-report-set-'));
    writeFileSync(join(root, 'summary.json'), '{"scale":"cpu"}');
    await png(join(root, 'fort_summary.png'), '#123456');
    mkdirSync(join(root, 'connect-fort'));
    writeFileSync(join(root, 'connect-fort', 'metrics.json'), '{"barrier_path_train":0.03}');
    await png(join(root, 'connect-fort', 'connect.png'), '#654321');
    const r = writeReport(root);
    expect(r.runs).toBe(1);
    expect(r.pages).toEqual([join(root, 'connect-fort', 'index.html'), join(root, 'index.html')]);
    const gallery = readFileSync(join(root, 'index.html'), 'utf8');
    expect(gallery).toContain('figure set: this directory');
    expect(gallery).toContain('<img class="thumb" src="fort_summary.png"');
    expect(gallery).toContain('&quot;scale&quot;:&quot;cpu&quot;');
    expect(gallery).toContain('<a href="connect-fort/index.html">');
  });

  it('names a run by the kind in its config.json; older or damaged ones by their files', async () => {
    const root = mkdtempSync(join(tmpdir(), 'la-report-kind-'));
    writeRunConfig(join(root, 'm-sweep'), 'msweep', { points: 4 }, 'gpu');
    await png(join(root, 'm-sweep', 'connect.png'), '#222222'); // the file-name guess would say connector
    writeRunConfig(join(root, 'grid'), 'hessian', { x: [0] }, 'gpu');
    writeFileSync(join(root, 'grid', 'surface_meta.json'), '{}');
    mkdirSync(join(root, 'damaged'));
    writeFileSync(join(root, 'damaged', 'config.json'), '{"kind": "tunn');
    await png(join(root, 'damaged', 'tunnels.png'), '#333333');
    mkdirSync(join(root, 'old'));
    writeFileSync(join(root, 'old', 'config.json'), '{"command": "tunnels --sweep", "rays": 2}');
    expect(writeReport(root).runs).toBe(4);
    const gallery = readFileSync(join(root, 'index.html'), 'utf8');
    expect(gallery).toContain('m-connectors: <a href="m-sweep/index.html">');
    expect(gallery).toContain('Hessian eigenvalues: <a href="grid/index.html">');
    expect(gallery).toContain('radial tunnels: <a href="damaged/index.html">');
    expect(gallery).toContain('radial tunnels: <a href="old/index.html">');
    const damaged = readFileSync(join(root, 'damaged', 'index.html'), 'utf8');
    expect(damaged).toMatch(/<p class="problem">\S*damaged[/\\]config\.json: not valid JSON/);
  });

  it('in headless Chromium every image of the gallery and of every run page loads', async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `${CHROMIUM} not found: install Debian's chromium (npm test's setup does, as root) or set LOSS_ATLAS_CHROMIUM`,
      );
    const root = await makeRuns();
    writeReport(root);
    const types: Record<string, string> = { '.html': 'text/html', '.png': 'image/png' };
    const server = createServer((req, res) => {
      const p = normalize(join(root, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
      if (!p.startsWith(root) || !existsSync(p)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': types[extname(p)] ?? 'application/octet-stream' }).end(readFileSync(p));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = await browser.newPage();
      const imagesLoaded = async (url: string) => {
        await page.goto(url, { waitUntil: 'load' });
        return page.$$eval('img', (imgs) =>
          imgs.map((i) => {
            const im = i as unknown as { complete: boolean; naturalWidth: number };
            return { src: i.getAttribute('src'), ok: im.complete && im.naturalWidth > 0 };
          }),
        );
      };
      const gallery = await imagesLoaded(`${base}index.html`);
      expect(gallery.length).toBe(3);
      expect(gallery.filter((i) => !i.ok)).toEqual([]);
      const links = await page.$$eval('h2 a', (as) => as.map((a) => (a as unknown as { href: string }).href));
      expect(links.length).toBe(2);
      let images = 0;
      for (const l of links) {
        const imgs = await imagesLoaded(l);
        expect(imgs.filter((i) => !i.ok)).toEqual([]);
        images += imgs.length;
      }
      expect(images).toBe(3);
    } finally {
      await browser.close();
      server.close();
    }
  }, 60_000);
});
