// The MPO playground: pick an icon or draw a mask, pick the net and batch norm, and watch multi-point optimization
// draw the mask into the net's loss landscape on this machine's GPU. The loop is the command line's (MpoTrainer,
// the quick preset's settings), so a page and `loss-atlas mpo --quick` with the same seed take the same steps.
import { safetensorsBytes } from '../data/formats.ts';
import type { Dataset } from '../data/dataset.ts';
import { Gpu } from '../engine/device.ts';
import { modelSpec } from '../models/zoo.ts';
import { ICONS, type Mask, iconMask, ternary } from '../mpo/masks.ts';
import { cellMeans } from '../mpo/evaluate.ts';
import { PRESETS } from '../mpo/presets.ts';
import { MpoTrainer } from '../mpo/trainer.ts';
import { planeMetadata } from '../mpo/plane-file.ts';
import { type ExplorerState, startExplorer } from './explorer.ts';
import { maskEditor, paintGrid } from './maps.ts';

/** What the page exposes as window.__lossAtlas (read by its end-to-end test, handy in the console). */
export interface PageRun {
  adapter: string;
  /** the first steps' per-cell losses, with the cells they were taken at */
  steps: { step: number; loss: number[]; cells: number[] }[];
  step: number;
  done: boolean;
  /** mean test loss of the good (white) and bad (black) boundary cells at the last evaluation */
  goodTest: number | null;
  badTest: number | null;
  /** the last evaluation's test loss of every grid cell ([GH, GW] row-major, pad cells of margin) */
  testLoss: number[] | null;
  pad: number;
  evaluations: number;
  error: string | null;
  /** GPU devices this page has made (a new one after a device loss and Reset) */
  devices: number;
  explorer: ExplorerState;
}

declare global {
  interface Window {
    __lossAtlas: PageRun;
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function download(name: string, blob: Blob): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

export async function startPlayground(data: { train: Dataset; test: Dataset }): Promise<void> {
  const q = new URLSearchParams(location.search);
  const cfg = { ...PRESETS.quick, seed: Number(q.get('seed') ?? PRESETS.quick.seed) };
  if (q.has('steps')) cfg.steps = Number(q.get('steps'));
  const evalEvery = Number(q.get('eval') ?? 25);
  const evalImages = Math.min(Number(q.get('eval-images') ?? cfg.evalImages), data.test.n);
  const run: PageRun = {
    adapter: '',
    steps: [],
    step: 0,
    done: false,
    goodTest: null,
    badTest: null,
    testLoss: null,
    pad: cfg.pad,
    evaluations: 0,
    error: null,
    devices: 0,
    explorer: { renders: 0, colours: 0, computed: 0, view: null, profile: null },
  };
  window.__lossAtlas = run;

  const iconSel = $<HTMLSelectElement>('icon'),
    gridIn = $<HTMLInputElement>('grid'),
    netSel = $<HTMLSelectElement>('net'),
    bnBox = $<HTMLInputElement>('bn');
  for (const name of [...Object.keys(ICONS), 'custom']) iconSel.add(new Option(name, name));
  iconSel.value = q.get('icon') ?? cfg.mask;
  gridIn.value = q.get('grid') ?? String(cfg.grid);
  netSel.value = q.get('net') ?? cfg.model;
  bnBox.checked = q.get('bn') === '1';
  const status = $('status'),
    errorBox = $('error');
  const fail = (msg: string) => {
    run.error = msg;
    errorBox.textContent = msg;
    errorBox.hidden = false;
  };

  let gpu: Gpu | null = null;
  const connect = async () => {
    gpu = await Gpu.create({ profile: true });
    // a visitor's GPU may share its memory with everything else: blocks of grid points of at most 64 MiB per binding
    gpu.bindingLimit = Math.min(gpu.bindingLimit, 64 * 2 ** 20);
    run.adapter = gpu.adapterInfo;
    run.devices++;
    $('adapter').textContent = gpu.adapterInfo;
    const mine = gpu;
    mine.device.lost.then((l) => {
      if (gpu !== mine) return;
      gpu = null;
      trainer = null;
      running = false;
      fail(`The GPU device was lost (${l.reason || 'unknown reason'}: ${l.message}). Press Reset to start again.`);
      buttons();
    });
  };
  await connect();

  let mask: Mask = iconMask(iconSel.value === 'custom' ? 'heart' : iconSel.value, Number(gridIn.value));
  const editor = $<HTMLCanvasElement>('mask');
  const redrawMask = maskEditor(
    editor,
    () => mask,
    () => (iconSel.value = 'custom'),
  );
  const newMask = () => {
    const n = Math.min(24, Math.max(8, Math.round(Number(gridIn.value)) || 12));
    gridIn.value = String(n);
    if (iconSel.value !== 'custom') mask = iconMask(iconSel.value, n);
    else if (mask.H !== n) mask = { H: n, W: n, data: new Uint8Array(n * n), name: 'custom' };
    redrawMask();
  };
  iconSel.onchange = newMask;
  gridIn.onchange = newMask;

  let trainer: MpoTrainer | null = null;
  let running = false;
  let pad = cfg.pad;
  const lossCanvas = $<HTMLCanvasElement>('loss'),
    accCanvas = $<HTMLCanvasElement>('acc');

  const buttons = () => {
    $<HTMLButtonElement>('start').textContent = trainer ? 'Resume' : 'Start';
    $<HTMLButtonElement>('start').disabled = running || run.done;
    $<HTMLButtonElement>('pause').disabled = !running;
    $<HTMLButtonElement>('save-plane').disabled = !trainer || running;
    $<HTMLButtonElement>('save-png').disabled = !run.evaluations;
    for (const el of [iconSel, gridIn, netSel, bnBox]) el.disabled = !!trainer;
    editor.dataset.locked = trainer ? '1' : '0';
  };

  const evaluate = async (t: MpoTrainer) => {
    const pick = Array.from({ length: evalImages }, (_, i) => i);
    const { loss, acc, GH, GW } = await t.evaluate(data.test, pick, pad);
    paintGrid(lossCanvas, loss, GH, GW, 'loss', { mask: t.mask, pad });
    paintGrid(accCanvas, acc, GH, GW, 'acc', { mask: t.mask, pad });
    const means = cellMeans(loss, acc, t.mask, t.tern, pad);
    run.testLoss = Array.from(loss);
    run.pad = pad;
    run.goodTest = means.goodLoss;
    run.badTest = means.badLoss;
    run.evaluations++;
    $('test-losses').textContent =
      `test loss (${evalImages} images) of the white cells ${run.goodTest.toFixed(3)}, ` +
      `of the black cells ${run.badTest.toFixed(3)}`;
  };

  const loop = async (t: MpoTrainer) => {
    let last = performance.now(),
      lastStep = t.state.step,
      rate = 0;
    while (running && trainer === t && t.state.step < cfg.steps) {
      const r = await t.step();
      run.step = r.step;
      if (run.steps.length < 5) run.steps.push({ step: r.step, loss: Array.from(r.loss), cells: r.cells });
      const now = performance.now();
      if (now - last > 500) {
        rate = ((t.state.step - lastStep) * 1000) / (now - last);
        last = now;
        lastStep = t.state.step;
      }
      const cellImages = rate * r.cells.length * cfg.batch;
      status.textContent =
        `step ${r.step}/${cfg.steps}  ${rate.toFixed(1)} steps/s  ${cellImages.toFixed(0)} cell-images/s  ` +
        `good loss ${r.goodLoss.toFixed(3)}  bad loss ${r.badLoss.toFixed(3)}`;
      if (r.step % evalEvery === 0 || r.step === cfg.steps) await evaluate(t);
      await new Promise((ok) => setTimeout(ok, 0));
    }
    if (trainer === t && t.state.step >= cfg.steps) {
      run.done = true;
      status.textContent += '  (done)';
    }
    running = false;
    buttons();
  };

  $('start').onclick = async () => {
    errorBox.hidden = true;
    try {
      if (!gpu) await connect();
      if (!trainer) {
        const tern = ternary(mask);
        if (!tern.some((v) => v > 0) || !tern.some((v) => v < 0))
          throw new Error('The mask needs white and black cells: draw some of each.');
        const spec = modelSpec(netSel.value, { bn: bnBox.checked, input: data.train.shape });
        pad = cfg.pad;
        trainer = MpoTrainer.fresh(gpu!, spec, { ...mask, data: mask.data.slice() }, data.train, cfg);
      }
      running = true;
      buttons();
      await loop(trainer);
    } catch (e) {
      running = false;
      fail((e as Error).message);
      buttons();
    }
  };
  $('pause').onclick = () => {
    running = false;
  };
  $('reset').onclick = async () => {
    running = false;
    trainer?.dispose();
    trainer = null;
    Object.assign(run, { steps: [], step: 0, done: false, goodTest: null, badTest: null, testLoss: null });
    run.evaluations = 0;
    status.textContent = 'ready';
    errorBox.hidden = true;
    run.error = null;
    if (!gpu) await connect().catch((e) => fail((e as Error).message));
    buttons();
  };
  $('save-plane').onclick = async () => {
    if (!trainer) return;
    const st = await trainer.planeTensors();
    const meta = { steps: String(trainer.state.step), made_by: 'loss-atlas web page' };
    const bytes = safetensorsBytes(st, planeMetadata(netSel.value, bnBox.checked, trainer.mask, meta));
    download('plane.safetensors', new Blob([bytes as Uint8Array<ArrayBuffer>]));
  };
  $('save-png').onclick = () => {
    const parts = [editor, lossCanvas, accCanvas];
    const c = document.createElement('canvas');
    c.width = parts.reduce((w, p) => w + p.width + 8, 0);
    c.height = Math.max(...parts.map((p) => p.height));
    const g = c.getContext('2d')!;
    g.fillStyle = 'white';
    g.fillRect(0, 0, c.width, c.height);
    let x = 0;
    for (const p of parts) {
      g.drawImage(p, x, 0);
      x += p.width + 8;
    }
    c.toBlob((b) => b && download('mpo.png', b));
  };
  startExplorer({ gpu: () => gpu, trainer: () => trainer, data, fail, state: run.explorer });
  // what a driver reset or a lost GPU does to a page, for trying the recovery (and its test)
  (window as { __lossAtlasLoseDevice?: () => void }).__lossAtlasLoseDevice = () => gpu?.device.destroy();
  status.textContent = 'ready';
  buttons();
  if (q.get('autostart') === '1') $('start').click();
}
