// One file holding a training and a test subset of an image data set, as the web page loads it: the magic "LAPK1\n",
// a little-endian uint32 header length, a JSON header {name, shape, classes, train, test}, then the training
// images (uint8, [train, C, H, W]), their labels (uint8), the test images and their labels. The images come back as
// floats in [0, 1], as the IDX reader gives them.
import type { Dataset } from './dataset.ts';

const MAGIC = 'LAPK1\n';

export interface PackHeader {
  name: string;
  shape: [number, number, number];
  classes: number;
  train: number;
  test: number;
}

/** The first nTrain training and nTest test images of two splits (images in [0, 1]), packed. */
export function packBytes(name: string, train: Dataset, test: Dataset, nTrain: number, nTest: number): Uint8Array {
  const h: PackHeader = {
    name,
    shape: train.shape,
    classes: train.classes,
    train: Math.min(nTrain, train.n),
    test: Math.min(nTest, test.n),
  };
  const json = new TextEncoder().encode(JSON.stringify(h));
  const per = h.shape[0] * h.shape[1] * h.shape[2];
  const out = new Uint8Array(MAGIC.length + 4 + json.length + (h.train + h.test) * (per + 1));
  out.set(Uint8Array.from(MAGIC, (c) => c.charCodeAt(0)));
  new DataView(out.buffer).setUint32(MAGIC.length, json.length, true);
  let at = MAGIC.length + 4;
  out.set(json, at);
  at += json.length;
  for (const [d, n] of [
    [train, h.train],
    [test, h.test],
  ] as const) {
    for (let i = 0; i < n * per; i++) out[at + i] = Math.round(d.images[i] * 255);
    at += n * per;
    for (let i = 0; i < n; i++) out[at + i] = d.labels[i];
    at += n;
  }
  return out;
}

/** The two splits of a pack; `what` names the file in errors. */
export function parsePack(b: Uint8Array, what: string): { header: PackHeader; train: Dataset; test: Dataset } {
  const bad = (why: string) => new Error(`${what}: ${why} (a data pack of build:web expected)`);
  if (String.fromCharCode(...b.subarray(0, MAGIC.length)) !== MAGIC) throw bad('no LAPK1 magic');
  const hl = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(MAGIC.length, true);
  let at = MAGIC.length + 4;
  let h: PackHeader;
  try {
    h = JSON.parse(new TextDecoder().decode(b.subarray(at, at + hl)));
  } catch (e) {
    throw bad(`corrupt header (${(e as Error).message})`);
  }
  at += hl;
  const per = h.shape[0] * h.shape[1] * h.shape[2];
  const need = at + (h.train + h.test) * (per + 1);
  if (b.length !== need) throw bad(`${b.length} bytes, ${need} expected for ${h.train} + ${h.test} images`);
  const split = (n: number): Dataset => {
    const images = new Float32Array(n * per);
    for (let i = 0; i < n * per; i++) images[i] = b[at + i] / 255;
    at += n * per;
    const labels = Uint32Array.from(b.subarray(at, at + n));
    at += n;
    return { images, labels, n, shape: h.shape, classes: h.classes };
  };
  const train = split(h.train);
  const test = split(h.test);
  return { header: h, train, test };
}
