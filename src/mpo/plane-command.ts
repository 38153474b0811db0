// `loss-atlas plane PLANE.safetensors`: the loss and accuracy maps of an MPO plane, made by `loss-atlas mpo` or
// saved by the web page, on the images of the data set; scored against its mask when the file holds one.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWrite } from '../data/formats.ts';
import { readBytes } from '../data/read.ts';
import type { Gpu } from '../engine/device.ts';
import { modelData } from '../models/data.ts';
import { evaluateOnImages } from '../models/run.ts';
import { defineCommand, type OptionInput, optionsOf } from '../options/index.ts';
import { defaultRunDir } from '../run/run-info.ts';
import { compose, writePng } from '../viz/figure.ts';
import { gridCoefs, scoreGrid } from './evaluate.ts';
import { ternary } from './masks.ts';
import { writeGridFiles } from './mpo.ts';
import { parsePlane, planeModel } from './plane-file.ts';

export const PLANE = defineCommand({
  name: 'plane',
  summary: 'the loss and accuracy maps of an MPO plane (plane.safetensors of mpo or of the web page)',
  usage: 'loss-atlas plane PLANE.safetensors [flags]',
  description: `Evaluates every cell of an MPO plane's grid (its mask's size plus --pad cells of margin) on the first
--images training and test images: writes grid_train.npy and grid_test.npy ([rows, cols, 2] = mean CE, accuracy),
loss_{train,test}.png, acc_{train,test}.png, summary.png and metrics.json (acc_diff and agreement against the mask
when the file holds its cells) into --out (default runs/plane-<time>). Planes saved by the web page load here, and
the command line's planes load in the page.`,
  positionals: {
    placeholder: 'PLANE',
    min: 1,
    max: 1,
    help: 'a plane.safetensors of loss-atlas mpo or of the web page',
    missing: 'give the plane file (plane.safetensors of loss-atlas mpo or of the web page)',
  },
  options: {
    images: { type: 'integer', min: 1, default: 1000, help: 'images per split (the first ones)' },
    pad: { type: 'integer', min: 0, default: 3, help: 'cells of margin around the mask' },
    data: {
      type: 'string',
      placeholder: 'DIR',
      help: "the data set's directory (Fashion-MNIST, or CIFAR-10 for a colour model), npy: arrays or an image folder",
    },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/plane-<time>', help: 'output directory' },
  },
  globals: ['verbose', 'profile', 'trace', 'normalize', 'help'],
});

export async function planeCommand(gpu: Gpu, file: string, input: OptionInput<typeof PLANE.options>): Promise<number> {
  const o = optionsOf(PLANE.options, input);
  const plane = parsePlane(readBytes(file, 'an MPO plane (plane.safetensors)'), file);
  // the data set of the plane's model: CIFAR-10 for the cifar net and colour ONNX graphs, else Fashion-MNIST
  const data = await modelData(plane.model, o.data);
  const { model } = planeModel(gpu, plane, file, data.train.shape);
  const out = o.out ?? defaultRunDir('plane');
  mkdirSync(out, { recursive: true });
  const { coefs, GH, GW } = gridCoefs(plane.H, plane.W, plane.scale, o.pad);
  const mask = plane.cells ? { H: plane.H, W: plane.W, data: plane.cells, name: plane.maskName } : null;
  const outline = mask ? { data: mask.data, H: mask.H, W: mask.W, pad: o.pad } : undefined;
  const metrics: Record<string, unknown> = { plane: file, model: plane.model, bn: plane.bn, images: o.images };
  const panels = [];
  try {
    for (const split of ['train', 'test'] as const) {
      const d = data[split];
      const pick = Array.from({ length: Math.min(o.images, d.n) }, (_, i) => i);
      const { loss, acc } = await evaluateOnImages(gpu, model, coefs, d, pick);
      panels.push(await writeGridFiles(out, split, loss, acc, GH, GW, outline));
      if (mask) metrics[split] = scoreGrid(loss, acc, mask, ternary(mask), o.pad);
    }
  } finally {
    model.dispose();
  }
  await writePng(
    compose(panels, `loss-atlas plane: ${plane.maskName} (${plane.model}${plane.bn ? ' + BN' : ''})`),
    join(out, 'summary.png'),
  );
  atomicWrite(join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  const m = metrics.test as { acc_diff: number; agreement: number } | undefined;
  console.log(
    `${file}: ${GH}x${GW} cells` +
      (m ? `; test acc_diff ${m.acc_diff.toFixed(3)}, agreement ${m.agreement.toFixed(3)}` : ' (no mask in the file)'),
  );
  console.log(`wrote ${out}/summary.png, metrics.json, grid_{train,test}.npy`);
  return 0;
}
