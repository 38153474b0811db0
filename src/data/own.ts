// A user's own data: .npy arrays (npy:X.npy,y.npy[,Xtest.npy,ytest.npy]) and image folders (DIR/train and
// DIR/test with one subfolder per class, decoded and resized with sharp), and the per-channel normalization
// (--normalize) any data set can be given. Every error names the file or folder and what was expected.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Dataset } from './dataset.ts';
import { readNpyValues } from './formats.ts';
import { DataError } from './read.ts';

export const isNpySpec = (data: string): boolean => data.startsWith('npy:');

/** DIR holds train/ and test/, each with one subfolder per class. */
export function isImageFolder(dir: string): boolean {
  const sub = (d: string) => existsSync(d) && statSync(d).isDirectory();
  return sub(join(dir, 'train')) && sub(join(dir, 'test')) && !existsSync(join(dir, 'train-images-idx3-ubyte.gz'));
}

function npySplit(xPath: string, yPath: string): Dataset {
  const x = readNpyValues(xPath, 'images [N, C, H, W] (float32 or uint8)');
  if (x.shape.length !== 4)
    throw new DataError(`${xPath}: images [N, C, H, W] expected, the array has shape [${x.shape.join(', ')}]`);
  if (x.dtype !== '<f4' && x.dtype !== '|u1' && x.dtype !== '<u1')
    throw new DataError(`${xPath}: dtype '${x.dtype}': images of float32 or uint8 expected`);
  const y = readNpyValues(yPath, 'labels [N] (integers)');
  const [n, C, H, W] = x.shape;
  if (y.shape.length !== 1 || y.shape[0] !== n)
    throw new DataError(`${yPath}: labels [${n}] expected (one per image of ${xPath}), got [${y.shape.join(', ')}]`);
  const labels = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const v = y.data[i];
    if (!Number.isInteger(v) || v < 0)
      throw new DataError(`${yPath}: label ${i} is ${v}: class indices 0, 1, 2, ... expected`);
    labels[i] = v;
  }
  // uint8 images are scaled to [0, 1] (as torchvision's ToTensor); float32 ones are taken as they are
  const images = x.dtype === '<f4' ? x.data : x.data.map((v) => v / 255);
  let classes = 0;
  for (const l of labels) classes = Math.max(classes, l + 1);
  return { images, labels, n, shape: [C, H, W], classes };
}

/** npy:X.npy,y.npy (the test split is then the same set) or npy:X.npy,y.npy,Xtest.npy,ytest.npy. */
export function loadNpySplits(
  spec: string,
  log: (m: string) => void = console.warn,
): { train: Dataset; test: Dataset } {
  const files = spec.slice(4).split(',');
  if (files.length !== 2 && files.length !== 4)
    throw new DataError(
      `--data ${spec}: npy:X.npy,y.npy or npy:X.npy,y.npy,Xtest.npy,ytest.npy expected (${files.length} files given)`,
    );
  const train = npySplit(files[0], files[1]);
  if (files.length === 2) log(`--data ${spec}: no test arrays given: the test split is the training set`);
  const test = files.length === 4 ? npySplit(files[2], files[3]) : train;
  if (test.shape.join() !== train.shape.join())
    throw new DataError(`${files[2]}: images [${test.shape}], the training images are [${train.shape}]`);
  const classes = Math.max(train.classes, test.classes);
  const tr = { ...train, classes };
  // one object for both splits when they are one set (normalized once)
  return { train: tr, test: test === train ? tr : { ...test, classes } };
}

const IMAGE = /\.(png|jpe?g|webp|gif|tiff?|bmp)$/i;

async function folderSplit(dir: string, classNames: string[], shape: [number, number, number]): Promise<Dataset> {
  const [C, H, W] = shape;
  const files: { path: string; label: number }[] = [];
  classNames.forEach((c, label) => {
    const d = join(dir, c);
    if (!existsSync(d)) throw new DataError(`${d}: class folder missing (${join(dir, '..', 'train')} has it)`);
    const imgs = readdirSync(d)
      .filter((f) => IMAGE.test(f))
      .sort();
    if (!imgs.length) throw new DataError(`${d}: an empty class folder (images .png, .jpg, .webp, ... expected)`);
    for (const f of imgs) files.push({ path: join(d, f), label });
  });
  const per = C * H * W;
  const images = new Float32Array(files.length * per);
  const labels = new Uint32Array(files.length);
  for (let i = 0; i < files.length; i++) {
    let raw: Buffer;
    try {
      let img = sharp(files[i].path).resize(W, H, { fit: 'fill' }).removeAlpha();
      img = C === 1 ? img.grayscale() : img.toColourspace('srgb');
      raw = await img.raw().toBuffer();
    } catch (e) {
      throw new DataError(`${files[i].path}: cannot decode the image (${(e as Error).message})`);
    }
    if (raw.length !== per) throw new DataError(`${files[i].path}: decoded to ${raw.length} values, ${per} expected`);
    // HWC bytes to CHW floats in [0, 1]
    for (let p = 0; p < H * W; p++) for (let c = 0; c < C; c++) images[i * per + c * H * W + p] = raw[p * C + c] / 255;
    labels[i] = files[i].label;
  }
  return { images, labels, n: files.length, shape, classes: classNames.length };
}

/**
 * An image folder: DIR/train/<class>/*.png and DIR/test/<class>/*.png (classes in sorted order, as torchvision's
 * ImageFolder), resized to `shape` (default: the first training image's size, grey or colour as it is).
 */
export async function loadImageFolder(
  dir: string,
  shape?: [number, number, number],
): Promise<{ train: Dataset; test: Dataset }> {
  const train = join(dir, 'train');
  const classNames = readdirSync(train)
    .filter((c) => statSync(join(train, c)).isDirectory())
    .sort();
  if (!classNames.length) throw new DataError(`${train}: no class folders (one subfolder per class expected)`);
  const testDir = join(dir, 'test');
  const extra = readdirSync(testDir).filter((c) => statSync(join(testDir, c)).isDirectory() && !classNames.includes(c));
  if (extra.length)
    throw new DataError(
      `${testDir}: class folder${extra.length > 1 ? 's' : ''} ${extra.join(', ')} not in ${train} ` +
        `(train/ names the classes: ${classNames.join(', ')})`,
    );
  let want = shape;
  if (!want) {
    const first = readdirSync(join(train, classNames[0])).find((f) => IMAGE.test(f));
    if (!first) throw new DataError(`${join(train, classNames[0])}: an empty class folder`);
    const m = await sharp(join(train, classNames[0], first)).metadata();
    want = [m.channels === 1 || m.channels === 2 ? 1 : 3, m.height ?? 0, m.width ?? 0];
  }
  return {
    train: await folderSplit(train, classNames, want),
    test: await folderSplit(testDir, classNames, want),
  };
}

/** --normalize: one mean and std for every channel, or C means then C stds. */
export function parseNormalize(v: number[], channels: number, flag = '--normalize'): { mean: number[]; std: number[] } {
  if (v.length === 2) {
    if (!(v[1] > 0)) throw new DataError(`${flag}: the std must be > 0, got ${v[1]}`);
    return { mean: Array(channels).fill(v[0]), std: Array(channels).fill(v[1]) };
  }
  if (v.length !== 2 * channels)
    throw new DataError(
      `${flag}: MEAN,STD or ${channels} means then ${channels} stds expected, got ${v.length} numbers`,
    );
  if (v.slice(channels).some((s) => !(s > 0))) throw new DataError(`${flag}: the stds must be > 0`);
  return { mean: v.slice(0, channels), std: v.slice(channels) };
}

/** (x - mean[c]) / std[c] per channel, in place. */
export function normalizeImages(d: Dataset, n: { mean: number[]; std: number[] }): void {
  const [C, H, W] = d.shape;
  const hw = H * W;
  for (let i = 0; i < d.n; i++)
    for (let c = 0; c < C; c++) {
      const o = (i * C + c) * hw;
      for (let p = 0; p < hw; p++) d.images[o + p] = (d.images[o + p] - n.mean[c]) / n.std[c];
    }
}
