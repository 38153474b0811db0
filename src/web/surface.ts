// The surface explorer: a loss surface as a 3-D mesh (three.js; drag to turn it, scroll to zoom) and as a contour map,
// log scale on or off. From the files of `loss-atlas surface` (surface.json, and surface_loss.npy when given), or
// live on a plane: a plane file (an mpo run's or the playground's plane.safetensors) or the net the playground
// trained. On a plane, a click on the map recentres the grid there at half the span and computes it again, all its
// points in one batched manifold pass.
import { interpolateMagma } from 'd3-scale-chromatic';
import * as THREE from 'three';
import { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';
import type { Dataset } from '../data/dataset.ts';
import type { Gpu } from '../engine/device.ts';
import type { Model } from '../models/model.ts';
import { evaluateOnImages } from '../models/run.ts';
import { contourSegments } from '../viz/contour.ts';

export interface Surface {
  /** coordinates of the columns and rows */
  x: number[];
  y: number[];
  /** [y.length, x.length] row-major */
  loss: ArrayLike<number>;
  title: string;
}

/** A plane to compute surfaces on: a model of B = 3 basis tensors (origin, right, up) and the step of one cell. */
export interface PlaneSource {
  gpu: Gpu;
  model: Model;
  scale: number;
  data: Dataset;
  images: number;
  title: string;
}

const linspace = (c: number, half: number, n: number) =>
  Array.from({ length: n }, (_, i) => c - half + (2 * half * i) / (n - 1));

/** The loss of a side x side grid around (cx, cy) (in cells) on a plane, in one manifold pass per block of points. */
export async function planeSurface(p: PlaneSource, cx: number, cy: number, half: number, side: number) {
  const x = linspace(cx, half, side),
    y = linspace(cy, half, side);
  const coefs = new Float32Array(side * side * 3);
  for (let i = 0; i < side; i++)
    for (let j = 0; j < side; j++) coefs.set([1, p.scale * x[j], p.scale * y[i]], (i * side + j) * 3);
  const pick = Array.from({ length: Math.min(p.images, p.data.n) }, (_, i) => i);
  const { loss } = await evaluateOnImages(p.gpu, p.model, coefs, p.data, pick);
  return { x, y, loss, title: `${p.title}: ${side}x${side} around (${cx.toFixed(2)}, ${cy.toFixed(2)})` };
}

export class SurfaceExplorer {
  private renderer: THREE.WebGLRenderer;
  private scene = new THREE.Scene();
  private camera = new THREE.PerspectiveCamera(40, 1, 0.1, 100);
  private mesh: THREE.Mesh | null = null;
  surface: Surface | null = null;
  plane: PlaneSource | null = null;
  /** the current grid on a plane: centre and half-span in cells */
  view = { cx: 0, cy: 0, half: 1, side: 21 };
  renders = 0;
  /** surfaces computed on a plane (recentres included) */
  computed = 0;

  constructor(
    private canvas3d: HTMLCanvasElement,
    private map: HTMLCanvasElement,
    private logBox: HTMLInputElement,
    private info: HTMLElement,
    private onDrawn: () => void = () => {},
  ) {
    this.renderer = new THREE.WebGLRenderer({ canvas: canvas3d, antialias: true, preserveDrawingBuffer: true });
    this.renderer.setSize(canvas3d.clientWidth || 420, canvas3d.clientHeight || 320, false);
    this.camera.aspect = (canvas3d.clientWidth || 420) / (canvas3d.clientHeight || 320);
    this.camera.updateProjectionMatrix();
    this.camera.position.set(2.4, -3.0, 2.6);
    this.camera.up.set(0, 0, 1);
    const controls = new OrbitControls(this.camera, canvas3d);
    controls.addEventListener('change', () => this.render());
    this.scene.background = new THREE.Color(0xffffff);
    logBox.onchange = () => this.surface && this.show(this.surface);
    map.addEventListener('click', (e) => this.recentre(e));
  }

  private values(s: Surface): number[] {
    return Array.from(s.loss, (v) => (this.logBox.checked ? Math.log10(Math.max(v, 1e-6)) : v));
  }

  /** Draws a surface in both views. */
  show(s: Surface): void {
    this.surface = s;
    const W = s.x.length,
      H = s.y.length;
    const v = this.values(s);
    const lo = Math.min(...v),
      hi = Math.max(...v);
    const norm = (z: number) => (hi > lo ? (z - lo) / (hi - lo) : 0.5);
    // the mesh: x, y in [-1, 1], height in [0, 1]
    const geo = new THREE.PlaneGeometry(2, 2, W - 1, H - 1);
    const pos = geo.attributes.position;
    const colours = new Float32Array(pos.count * 3);
    for (let k = 0; k < pos.count; k++) {
      const i = H - 1 - Math.floor(k / W),
        j = k % W;
      const t = norm(v[i * W + j]);
      pos.setZ(k, t);
      const c = new THREE.Color(interpolateMagma(t));
      colours.set([c.r, c.g, c.b], 3 * k);
    }
    geo.setAttribute('color', new THREE.BufferAttribute(colours, 3));
    geo.computeVertexNormals();
    if (this.mesh) {
      this.scene.remove(this.mesh);
      this.mesh.geometry.dispose();
    }
    this.mesh = new THREE.Mesh(geo, new THREE.MeshBasicMaterial({ vertexColors: true, side: THREE.DoubleSide }));
    this.scene.add(this.mesh);
    this.render();
    this.drawMap(v, H, W, lo, hi);
    const minAt = v.indexOf(lo);
    this.info.textContent =
      `${s.title}; min ${Math.min(...Array.from(s.loss)).toFixed(4)} at (${s.x[minAt % W].toFixed(2)}, ` +
      `${s.y[Math.floor(minAt / W)].toFixed(2)}), max ${Math.max(...Array.from(s.loss)).toFixed(4)}` +
      (this.plane ? '; click the map to recentre there' : '');
    this.onDrawn();
  }

  private render(): void {
    this.camera.lookAt(0, 0, 0.3);
    this.renderer.render(this.scene, this.camera);
    this.renders++;
  }

  private drawMap(v: number[], H: number, W: number, lo: number, hi: number): void {
    const cell = Math.max(4, Math.floor(320 / Math.max(H, W)));
    this.map.width = W * cell;
    this.map.height = H * cell;
    const g = this.map.getContext('2d')!;
    for (let i = 0; i < H; i++)
      for (let j = 0; j < W; j++) {
        g.fillStyle = interpolateMagma(hi > lo ? (v[i * W + j] - lo) / (hi - lo) : 0.5);
        g.fillRect(j * cell, i * cell, cell, cell);
      }
    g.strokeStyle = 'rgba(255,255,255,0.7)';
    g.beginPath();
    const cols = Array.from({ length: W }, (_, j) => j),
      rows = Array.from({ length: H }, (_, i) => i);
    const levels = Array.from({ length: 9 }, (_, l) => lo + ((hi - lo) * (l + 1)) / 10);
    for (const c of contourSegments(v, cols, rows, levels)) {
      g.moveTo((c.x1 + 0.5) * cell, (c.y1 + 0.5) * cell);
      g.lineTo((c.x2 + 0.5) * cell, (c.y2 + 0.5) * cell);
    }
    g.stroke();
  }

  /** Distinct colours in the 3-D view (0 or 1 for a blank canvas). */
  distinctColours(): number {
    const c = document.createElement('canvas');
    c.width = this.canvas3d.width;
    c.height = this.canvas3d.height;
    const g = c.getContext('2d')!;
    g.drawImage(this.canvas3d, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const seen = new Set<number>();
    for (let k = 0; k < d.length; k += 4 * 7) seen.add((d[k] << 16) | (d[k + 1] << 8) | d[k + 2]);
    return seen.size;
  }

  /** Computes and shows the surface of a plane around the current view. */
  async computePlane(p: PlaneSource, view = this.view): Promise<void> {
    this.plane = p;
    this.view = view;
    const s = await planeSurface(p, view.cx, view.cy, view.half, view.side);
    this.computed++;
    this.show(s);
  }

  private async recentre(e: MouseEvent): Promise<void> {
    if (!this.plane || !this.surface) return;
    const r = this.map.getBoundingClientRect();
    const W = this.surface.x.length,
      H = this.surface.y.length;
    const j = Math.min(W - 1, Math.floor(((e.clientX - r.left) / r.width) * W)),
      i = Math.min(H - 1, Math.floor(((e.clientY - r.top) / r.height) * H));
    await this.computePlane(this.plane, {
      ...this.view,
      cx: this.surface.x[j],
      cy: this.surface.y[i],
      half: this.view.half / 2,
    });
  }
}
