// The web page: build:web makes static files whose bundle holds no Node-only module; in Debian's Chromium, headless
// with WebGPU on its SwiftShader Vulkan, the page trains the quick heart for a few steps with a fixed seed, and its
// first steps' per-cell losses equal the same steps taken here in Node (the same trainer on lavapipe), within 1e-3
// relative; the white cells' test loss ends below the black cells'; the page's plane reads back in the command line;
// the surface explorer draws a committed surface in 3-D, the trained plane's, and recentres it on a click; the
// kernel profile shows its table or says why not. Screenshots are kept in test/artifacts/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWeb, NODE_ONLY } from '../scripts/build-web.ts';
import { serve } from '../scripts/serve-web.ts';
import { fashionMnistDir } from '../src/data/fashion-mnist.ts';
import { parsePack } from '../src/data/pack.ts';
import type { Gpu } from '../src/engine/device.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { iconMask } from '../src/mpo/masks.ts';
import { PRESETS } from '../src/mpo/presets.ts';
import { MpoTrainer } from '../src/mpo/trainer.ts';
import type { ExplorerState } from '../src/web/explorer.ts';
import type { PageRun } from '../src/web/playground.ts';
import { readNpy } from '../src/data/formats.ts';
import { CLI_ARGS, fashionFixture, testGpu } from './helpers.ts';

const CHROMIUM = process.env.LOSS_ATLAS_CHROMIUM ?? '/usr/bin/chromium';
const WEBGPU_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=native',
  '--disable-vulkan-surface',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
];
const STEPS = 12;
const FIX = 'test/fixtures/web'; // surface.json and surface_loss.npy of loss-atlas surface (5 x 5, a small CNN)
const out = mkdtempSync(join(tmpdir(), 'la-web-'));
const planeFile = join(out, 'plane-from-page.safetensors');
const cliPlane = join(out, 'cli-mpo', 'plane.safetensors');
// Fashion-MNIST where it is installed (npm test's setup installs it), else a small set of the same format
const fmnist = fashionMnistDir();
const data = existsSync(join(fmnist, 'train-images-idx3-ubyte.gz')) ? fmnist : fashionFixture('la-web-data-').data;
let built: Awaited<ReturnType<typeof buildWeb>>;
let gpu: Gpu;
beforeAll(async () => {
  built = await buildWeb({ out, data, train: 160, test: 40 });
  gpu = await testGpu();
}, 120_000);
afterAll(() => gpu?.destroy());

describe('npm run build:web', () => {
  it('writes the page, its bundle and the data pack; the bundle takes in no Node-only module', () => {
    for (const f of ['index.html', 'style.css', 'app.js', 'fashion-mnist.pack'])
      expect(existsSync(join(out, f))).toBe(true);
    expect(built.inputs.some((p) => p.endsWith('src/mpo/trainer.ts'))).toBe(true);
    expect(built.inputs.filter((p) => NODE_ONLY.test(p))).toEqual([]);
    const js = readFileSync(join(out, 'app.js'), 'utf8');
    for (const m of ['fs', 'path', 'sharp', 'webgpu', 'node:fs'])
      expect(js).not.toMatch(new RegExp(`(require\\(|from ?|import\\()["']${m}["']`));
    const pack = parsePack(readFileSync(join(out, 'fashion-mnist.pack')), 'fashion-mnist.pack');
    expect([pack.header.train, pack.header.test]).toEqual([160, 40]);
  });

  it('runs as an npm script with its flags, and refuses a bad one naming it', () => {
    const dir = join(out, 'npm-build');
    const npm = (args: string[]) =>
      spawnSync('npm', ['run', '--silent', 'build:web', '--', ...args], { encoding: 'utf8' });
    const r = npm(['--out', dir, '--data', data, '--train-images', '50', '--test-images', '10']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote .*npm-build: app\.js \(\d+ KiB, \d+ modules\)/);
    expect(parsePack(readFileSync(join(dir, 'fashion-mnist.pack')), 'pack').header.train).toBe(50);
    const bad = npm(['--out', dir, '--train-images', '0']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("--train-images: a positive integer expected, got '0'");
  }, 120_000);
});

describe.skipIf(!existsSync(CHROMIUM))('the page in headless Chromium (WebGPU on SwiftShader)', () => {
  it('without WebGPU says so and how to turn it on, instead of failing silently', async () => {
    const server = await serve(out, 0);
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: false,
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-features=WebGPU,Vulkan'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
      await page.waitForFunction(() => !document.getElementById('error')?.hidden, null, { timeout: 60_000 });
      expect(await page.locator('#error').innerText()).toMatch(/no WebGPU|gave no adapter/);
      expect(await page.locator('#app').isHidden()).toBe(true);
    } finally {
      await browser.close();
      server.close();
    }
  }, 120_000);

  it('trains the heart as Node does, saves a plane the CLI reads, explores surfaces, recovers', async () => {
    // a plane of the command line (2 steps), for the page to open
    const mpoArgs = ['mpo', '--quick', '--data', data, '--steps', '2', '--eval-images', '10', '--pad', '0'];
    const made = spawnSync(process.execPath, [...CLI_ARGS, ...mpoArgs, '--out', join(out, 'cli-mpo')], {
      encoding: 'utf8',
    });
    expect(made.status, made.stderr).toBe(0);
    const server = await serve(out, 0);
    const port = (server.address() as { port: number }).port;
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: false, args: WEBGPU_FLAGS });
    let run: PageRun;
    let files: ExplorerState, first: ExplorerState, second: ExplorerState;
    let fromCli: ExplorerState, restarted: PageRun;
    let profile: string | null, error: string | null, lost: string;
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
      const q =
        `autostart=1&steps=${STEPS}&eval=${STEPS}&eval-images=40&seed=42&icon=heart&grid=12&net=small` +
        '&surface-side=7&surface-images=20';
      await page.goto(`http://127.0.0.1:${port}/?${q}`);
      await page.waitForFunction(() => window.__lossAtlas?.done || window.__lossAtlas?.error, null, {
        timeout: 600_000,
      });
      run = await page.evaluate(() => window.__lossAtlas);
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#save-plane')]);
      await dl.saveAs(planeFile);
      mkdirSync('test/artifacts', { recursive: true });
      await page.screenshot({ path: 'test/artifacts/web.png', fullPage: true });

      // the surface explorer: a committed surface of loss-atlas surface, drawn in 3-D
      const state = () => page.evaluate(() => window.__lossAtlas.explorer);
      const until = (f: string) => page.waitForFunction(f, null, { timeout: 300_000 });
      await page.setInputFiles(
        '#surface-files',
        ['surface.json', 'surface_loss.npy'].map((f) => join(FIX, f)),
      );
      await until('window.__lossAtlas.explorer.renders > 0 || window.__lossAtlas.error');
      files = await state();
      // the trained plane's surface, then a click on the map's top-left quarter: recentred there at half the span
      await page.click('#surface-trained');
      await until('window.__lossAtlas.explorer.computed >= 1 || window.__lossAtlas.error');
      first = await state();
      const box = (await page.locator('#surface-map').boundingBox())!;
      await page.mouse.click(box.x + box.width * 0.2, box.y + box.height * 0.2);
      await until('window.__lossAtlas.explorer.computed >= 2 || window.__lossAtlas.error');
      second = await state();
      // the command line's plane opens in the page too, and its surface is computed there
      await page.setInputFiles('#surface-files', cliPlane);
      await until('window.__lossAtlas.explorer.computed >= 3 || window.__lossAtlas.error');
      fromCli = await state();
      await page.click('#profile');
      await until('window.__lossAtlas.explorer.profile !== null || window.__lossAtlas.error');
      profile = (await state()).profile;
      error = await page.evaluate(() => window.__lossAtlas.error);
      await page.screenshot({ path: 'test/artifacts/web-explorer.png', fullPage: true });
      // a lost device is reported; Reset makes a new one and a run starts again
      await page.evaluate(() => (window as { __lossAtlasLoseDevice?: () => void }).__lossAtlasLoseDevice?.());
      await until('/device was lost/.test(window.__lossAtlas.error ?? "")');
      lost = await page.locator('#error').innerText();
      await page.click('#reset');
      await page.click('#start');
      await until('window.__lossAtlas.step >= 1 || /device/.test(window.__lossAtlas.error ?? "x")');
      await page.click('#pause');
      restarted = await page.evaluate(() => window.__lossAtlas);
    } finally {
      await browser.close();
      server.close();
    }
    expect(run.error).toBeNull();
    expect(run.adapter).toMatch(/swiftshader/i);
    expect(run.step).toBe(STEPS);
    expect(run.goodTest!).toBeLessThan(run.badTest!);

    // the same steps in Node
    const pack = parsePack(readFileSync(join(out, 'fashion-mnist.pack')), 'fashion-mnist.pack');
    const cfg = { ...PRESETS.quick, seed: 42 };
    const spec = modelSpec('small', { input: pack.train.shape });
    const t = MpoTrainer.fresh(gpu, spec, iconMask('heart', 12), pack.train, cfg);
    try {
      expect(run.steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5]);
      for (const s of run.steps) {
        const r = await t.step();
        expect(r.cells).toEqual(s.cells);
        for (let k = 0; k < s.loss.length; k++)
          expect(Math.abs(s.loss[k] - r.loss[k]), `step ${s.step} cell ${k}`).toBeLessThan(1e-3 * Math.abs(r.loss[k]));
      }
    } finally {
      t.dispose();
    }

    // the page's plane, read by the command line: its test grid is the page's last evaluation
    const cli = join(out, 'plane-cli');
    const args = ['plane', planeFile, '--data', data, '--images', '40', '--pad', String(run.pad), '--out', cli];
    const r = spawnSync(process.execPath, [...CLI_ARGS, ...args], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const grid = readNpy(join(cli, 'grid_test.npy'));
    const loss = Array.from({ length: grid.data.length / 2 }, (_, k) => grid.data[2 * k]);
    expect(loss.length).toBe(run.testLoss!.length);
    for (let k = 0; k < loss.length; k++)
      expect(Math.abs(loss[k] - run.testLoss![k]), `cell ${k}`).toBeLessThan(1e-3 * loss[k]);
    const m = JSON.parse(readFileSync(join(cli, 'metrics.json'), 'utf8'));
    expect(m.test.acc_diff).toEqual(expect.any(Number));

    // the explorer drew the committed surface (a blank canvas has one colour), computed the plane's and recentred it
    expect(error).toBeNull();
    expect(files.renders).toBeGreaterThan(0);
    expect(files.colours).toBeGreaterThan(8);
    expect(first.view).toMatchObject({ cx: 0, cy: 0, side: 7 });
    expect(first.colours).toBeGreaterThan(8);
    const { cx, cy, half } = first.view!;
    expect(second.view!.half).toBeCloseTo(half / 2, 6);
    // the click at 20% of the map falls in column and row 1 of 7: x = cx - half + 2 half / 6
    expect(second.view!.cx).toBeCloseTo(cx - half + (2 * half) / 6, 6);
    expect(second.view!.cy).toBeCloseTo(cy - half + (2 * half) / 6, 6);
    expect(second.renders).toBeGreaterThan(first.renders);
    expect(profile).toMatch(/timestamp-query is not available|conv2d/);
    expect(fromCli.view).toMatchObject({ cx: 0, cy: 0, half: 12 / 2 + 3 });
    expect(lost).toMatch(/The GPU device was lost .*Press Reset to start again/);
    expect(restarted.devices).toBe(2);
    expect(restarted.error).toBeNull();
    expect(restarted.step).toBeGreaterThanOrEqual(1);
  }, 900_000);
});
