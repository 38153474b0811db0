// Target pictures for MPO: built-in icons drawn here from geometry, image files (PNG/JPEG, decoded by the platform),
// random squares, the square grid, and the reference's ternary boundary-cell conversion.
// A mask is H x W with 1 = white (low loss wanted) and 0 = black (high loss wanted).
import { rng } from '../engine/random.ts';
import { EmptyImageError, platform } from '../platform/index.ts';

export interface Mask {
  H: number;
  W: number;
  /** row-major, 1 = white, 0 = black */
  data: Uint8Array;
  name: string;
}

export class MaskError extends Error {}

type Shape = (x: number, y: number) => boolean; // x right, y up, both in [-1, 1]

const inPoly = (pts: [number, number][], x: number, y: number): boolean => {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i],
      [xj, yj] = pts[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
};
const segDist = (x: number, y: number, ax: number, ay: number, bx: number, by: number): number => {
  const dx = bx - ax,
    dy = by - ay;
  const t = Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(x - ax - t * dx, y - ay - t * dy);
};
const star = (n: number, r1: number, r2: number): [number, number][] =>
  Array.from({ length: 2 * n }, (_, i) => {
    const a = Math.PI / 2 + (i * Math.PI) / n;
    const r = i % 2 ? r2 : r1;
    return [r * Math.cos(a), r * Math.sin(a)];
  });

/** The built-in icons, drawn from geometry by this project. */
export const ICONS: Record<string, Shape> = {
  heart: (x, y) =>
    Math.hypot(x - 0.45, y - 0.35) < 0.47 ||
    Math.hypot(x + 0.45, y - 0.35) < 0.47 ||
    inPoly(
      [
        [-0.9, 0.22],
        [0.9, 0.22],
        [0, -0.9],
      ],
      x,
      y,
    ),
  x: (x, y) => segDist(x, y, -0.8, -0.8, 0.8, 0.8) < 0.22 || segDist(x, y, -0.8, 0.8, 0.8, -0.8) < 0.22,
  star: (x, y) => inPoly(star(5, 0.95, 0.4), x, y + 0.05),
  ring: (x, y) => Math.hypot(x, y) < 0.85 && Math.hypot(x, y) > 0.45,
  house: (x, y) =>
    (Math.abs(x) < 0.6 && y > -0.85 && y < 0.1) ||
    inPoly(
      [
        [-0.85, 0.05],
        [0.85, 0.05],
        [0, 0.85],
      ],
      x,
      y,
    ),
  arrow: (x, y) =>
    (x > -0.85 && x < 0.15 && Math.abs(y) < 0.22) ||
    inPoly(
      [
        [0.05, 0.65],
        [0.9, 0],
        [0.05, -0.65],
      ],
      x,
      y,
    ),
  moon: (x, y) => Math.hypot(x, y) < 0.85 && Math.hypot(x - 0.4, y - 0.25) > 0.65,
  plus: (x, y) => (Math.abs(x) < 0.25 && Math.abs(y) < 0.85) || (Math.abs(y) < 0.25 && Math.abs(x) < 0.85),
  diamond: (x, y) => Math.abs(x) + Math.abs(y) < 0.9,
  smiley: (x, y) => {
    const r = Math.hypot(x, y);
    if (r > 0.9) return false;
    const eye = Math.hypot(Math.abs(x) - 0.32, y - 0.3) < 0.14;
    const mouth = Math.abs(Math.hypot(x, y + 0.05) - 0.5) < 0.1 && y < -0.15;
    return !(eye || mouth);
  },
};

/** Renders an icon onto an H x W grid: a cell is white when over half of its 4 x 4 subsamples are inside. */
export function iconMask(name: string, H: number, W = H): Mask {
  const shape = ICONS[name];
  if (!shape) throw new MaskError(`unknown icon "${name}"; built-in icons: ${Object.keys(ICONS).join(', ')}`);
  const data = new Uint8Array(H * W);
  const S = 4;
  for (let i = 0; i < H; i++)
    for (let j = 0; j < W; j++) {
      let hits = 0;
      for (let a = 0; a < S; a++)
        for (let b = 0; b < S; b++) {
          const x = -1 + (2 * (j + (b + 0.5) / S)) / W;
          const y = 1 - (2 * (i + (a + 0.5) / S)) / H;
          if (shape(x, y)) hits++;
        }
      data[i * W + j] = hits * 2 > S * S ? 1 : 0;
    }
  return { H, W, data, name };
}

/** Any image the platform decodes: alpha channel when the image has a non-trivial one, else luminance; resized to the
 * grid, thresholded at 0.5. */
export async function imageMask(path: string, H: number, W = H): Promise<Mask> {
  if (!platform().exists(path)) throw new MaskError(`mask image ${path}: file not found`);
  let decoded: { rgba: Uint8Array; hasAlpha: boolean };
  try {
    decoded = await platform().decodeImage(path, W, H);
  } catch (e) {
    if (e instanceof EmptyImageError) throw new MaskError(`mask image ${path}: empty image`);
    const why = (e as Error).message;
    throw new MaskError(
      `mask image ${path}: not a readable image (${why}; a PNG, JPEG, WebP, GIF, SVG or TIFF expected)`,
    );
  }
  const data = decoded.rgba;
  const ch = 4;
  let useAlpha = false;
  if (decoded.hasAlpha)
    for (let i = 0; i < H * W; i++)
      if (data[i * ch + ch - 1] < 250) {
        useAlpha = true;
        break;
      }
  const out = new Uint8Array(H * W);
  for (let i = 0; i < H * W; i++) {
    const v = useAlpha
      ? data[i * ch + ch - 1] / 255
      : ch >= 3
        ? (0.2126 * data[i * ch] + 0.7152 * data[i * ch + 1] + 0.0722 * data[i * ch + 2]) / 255
        : data[i * ch] / 255;
    out[i] = v > 0.5 ? 1 : 0;
  }
  return { H, W, data: out, name: path };
}

/** The reference's randomly_filled_square: 30 x 30, a ring at rows/columns 1 and 28, interior [2, 28) filled with
 * probability p. */
export function randomSquaresMask(p: number, seed: number, size = 30): Mask {
  if (!(p >= 0 && p <= 1)) throw new MaskError(`random:P needs 0 <= P <= 1, got ${p}`);
  const r = rng(seed);
  const data = new Uint8Array(size * size);
  for (let i = 1; i < size - 1; i++)
    for (let j = 1; j < size - 1; j++) {
      const ring = i === 1 || i === size - 2 || j === 1 || j === size - 2;
      data[i * size + j] = ring ? 1 : r() < p ? 1 : 0;
    }
  return { H: size, W: size, data, name: `random:${p}` };
}

/** The reference's square_grid(n): (2n+1)^2 with ones at odd (row, column). */
export function squareGridMask(n: number): Mask {
  const s = 2 * n + 1;
  const data = new Uint8Array(s * s);
  for (let i = 1; i < s; i += 2) for (let j = 1; j < s; j += 2) data[i * s + j] = 1;
  return { H: s, W: s, data, name: `grid:${n}` };
}

/**
 * The reference's make_mask_ternary: a cell is ignored (0) if it is black with no white neighbour, or white with
 * all of its (edge-clipped) 3x3 neighbourhood white; the rest become +1 (white) and -1 (black).
 */
export function ternary(m: Mask): Int8Array {
  const { H, W, data } = m;
  const out = new Int8Array(H * W);
  for (let i = 0; i < H; i++)
    for (let j = 0; j < W; j++) {
      let ones = 0,
        cells = 0;
      for (let a = Math.max(0, i - 1); a <= Math.min(H - 1, i + 1); a++)
        for (let b = Math.max(0, j - 1); b <= Math.min(W - 1, j + 1); b++) {
          ones += data[a * W + b];
          cells++;
        }
      const v = data[i * W + j];
      if ((v === 0 && ones === 0) || (v === 1 && ones === cells)) out[i * W + j] = 0;
      else out[i * W + j] = v ? 1 : -1;
    }
  return out;
}

/** Parses --mask: an icon name, `random:P[:SEED[:SIZE]]`, `grid:N`, or an image path. */
export async function loadMask(spec: string, grid: number, seed = 1): Promise<Mask> {
  let m: Mask;
  if (spec.startsWith('random:')) {
    const [p, s, size, ...rest] = spec.slice(7).split(':');
    const bad = (part: string, want: string, got: string) =>
      new MaskError(`--mask ${spec}: ${part} should be ${want}, got "${got}" (random:P[:SEED[:SIZE]] expected)`);
    if (rest.length) throw new MaskError(`--mask ${spec}: too many parts (random:P[:SEED[:SIZE]] expected)`);
    if (!/^(\d+\.?\d*|\.\d+)(e-?\d+)?$/i.test(p) || !(Number(p) <= 1)) throw bad('P', 'a probability in [0, 1]', p);
    if (s !== undefined && !(/^\d+$/.test(s) && Number(s) < 2 ** 32))
      throw bad('SEED', 'an integer 0 <= SEED < 2^32', s);
    if (size !== undefined && !(/^\d+$/.test(size) && Number(size) >= 6 && Number(size) <= 200))
      throw bad('SIZE', 'an integer 6 <= SIZE <= 200', size);
    m = randomSquaresMask(Number(p), s === undefined ? seed : Number(s), size === undefined ? 30 : Number(size));
  } else if (spec.startsWith('grid:')) {
    const n = spec.slice(5);
    if (!/^\d+$/.test(n) || Number(n) < 1 || Number(n) > 50)
      throw new MaskError(`--mask grid:N needs an integer 1 <= N <= 50, got "${n}" (grid:N expected)`);
    m = squareGridMask(Number(n));
  } else if (ICONS[spec]) m = iconMask(spec, grid);
  else if (/\.(png|jpe?g|webp|gif|svg|tiff?)$/i.test(spec) || spec.includes('/')) m = await imageMask(spec, grid);
  else
    throw new MaskError(
      `--mask "${spec}": not a built-in icon (${Object.keys(ICONS).join(', ')}), random:P, grid:N, or an image file`,
    );
  const t = ternary(m);
  let good = 0,
    bad = 0;
  for (const v of t) v > 0 ? good++ : v < 0 ? bad++ : 0;
  if (good === 0 || bad === 0) {
    throw new MaskError(
      `mask ${m.name} (${m.H}x${m.W}) has ${good} white and ${bad} black boundary cells` +
        `: it needs both (is the picture empty or all one colour?)`,
    );
  }
  return m;
}
