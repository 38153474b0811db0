// Drawing in the page: a grid of values as coloured cells on a canvas (loss on a log scale, accuracy in [0, 1]), and
// the mask editor (click or drag to flip cells).
import { interpolateMagma, interpolateViridis } from 'd3-scale-chromatic';
import type { Mask } from '../mpo/masks.ts';

/** Paints values [H, W] onto the canvas, cell by cell; log10 for a loss map. */
export function paintGrid(
  canvas: HTMLCanvasElement,
  values: ArrayLike<number>,
  H: number,
  W: number,
  kind: 'loss' | 'acc',
  outline?: { mask: Mask; pad: number },
): void {
  const cell = Math.max(4, Math.floor(288 / Math.max(H, W)));
  canvas.width = W * cell;
  canvas.height = H * cell;
  const g = canvas.getContext('2d')!;
  const v = Array.from(values, (x) => (kind === 'loss' ? Math.log10(Math.max(x, 1e-4)) : x));
  const finite = v.filter(Number.isFinite);
  const lo = kind === 'acc' ? 0 : Math.min(...finite),
    hi = kind === 'acc' ? 1 : Math.max(...finite);
  for (let i = 0; i < H; i++)
    for (let j = 0; j < W; j++) {
      const t = hi > lo ? (v[i * W + j] - lo) / (hi - lo) : 0.5;
      g.fillStyle = kind === 'loss' ? interpolateMagma(Math.min(1, Math.max(0, t))) : interpolateViridis(t);
      g.fillRect(j * cell, i * cell, cell, cell);
    }
  if (outline) {
    // the white cells' border, so the picture can be compared with the target
    const { mask, pad } = outline;
    g.strokeStyle = 'rgba(255,255,255,0.8)';
    g.lineWidth = 1;
    const white = (i: number, j: number) =>
      i >= 0 && j >= 0 && i < mask.H && j < mask.W && mask.data[i * mask.W + j] === 1;
    g.beginPath();
    for (let i = -1; i <= mask.H; i++)
      for (let j = -1; j <= mask.W; j++) {
        const x = (j + pad) * cell,
          y = (i + pad) * cell;
        if (white(i, j) !== white(i, j + 1)) g.rect(x + cell, y, 0, cell);
        if (white(i, j) !== white(i + 1, j)) g.rect(x, y + cell, cell, 0);
      }
    g.stroke();
  }
}

/** A mask editor: paints the mask and flips the cells the mouse presses or drags over; onChange after each flip. */
export function maskEditor(canvas: HTMLCanvasElement, get: () => Mask, onChange: () => void): () => void {
  const draw = () => {
    const m = get();
    paintGrid(canvas, Float32Array.from(m.data), m.H, m.W, 'acc');
  };
  let painting: number | null = null;
  const cellAt = (e: MouseEvent) => {
    const m = get();
    const r = canvas.getBoundingClientRect();
    const j = Math.floor(((e.clientX - r.left) / r.width) * m.W),
      i = Math.floor(((e.clientY - r.top) / r.height) * m.H);
    return i >= 0 && j >= 0 && i < m.H && j < m.W ? i * m.W + j : null;
  };
  const paint = (e: MouseEvent) => {
    const c = cellAt(e);
    if (c === null || painting === null) return;
    const m = get();
    if (m.data[c] !== painting) {
      m.data[c] = painting;
      draw();
      onChange();
    }
  };
  canvas.addEventListener('mousedown', (e) => {
    const c = cellAt(e);
    if (c === null || canvas.dataset.locked === '1') return;
    painting = get().data[c] ? 0 : 1;
    paint(e);
  });
  canvas.addEventListener('mousemove', paint);
  window.addEventListener('mouseup', () => (painting = null));
  draw();
  return draw;
}
