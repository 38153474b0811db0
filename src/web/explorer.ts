// The page's second half: the surface explorer's sources (files opened or dropped, the plane the playground
// trained) and the kernel profile (per-kernel GPU times of a few MPO steps where the adapter has timestamp queries).
import { parseNpy } from '../data/formats.ts';
import type { Dataset } from '../data/dataset.ts';
import type { Gpu } from '../engine/device.ts';
import { Profiler } from '../engine/profiler.ts';
import { parsePlane, planeModel } from '../mpo/plane-file.ts';
import { MpoTrainer } from '../mpo/trainer.ts';
import type { Model } from '../models/model.ts';
import { SurfaceExplorer, type Surface } from './surface.ts';

export interface ExplorerState {
  renders: number;
  /** distinct colours of the 3-D view after the last drawing (a blank canvas has 1) */
  colours: number;
  computed: number;
  view: { cx: number; cy: number; half: number; side: number } | null;
  profile: string | null;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export function startExplorer(o: {
  gpu: () => Gpu | null;
  trainer: () => MpoTrainer | null;
  data: { train: Dataset; test: Dataset };
  fail: (msg: string) => void;
  state: ExplorerState;
}): void {
  const q = new URLSearchParams(location.search);
  const side = Number(q.get('surface-side') ?? 21),
    images = Number(q.get('surface-images') ?? 200);
  const drawn = () => {
    o.state.renders = ex.renders;
    o.state.colours = ex.distinctColours();
    o.state.computed = ex.computed;
    o.state.view = ex.plane ? { ...ex.view } : null;
  };
  const ex = new SurfaceExplorer($('surface-3d'), $('surface-map'), $('surface-log'), $('surface-info'), drawn);
  let owned: Model | null = null;

  const open = async (files: File[]) => {
    const byName = new Map(files.map((f) => [f.name, f]));
    const json = files.find((f) => f.name.endsWith('.json')),
      npy = files.find((f) => f.name.endsWith('.npy')),
      plane = files.find((f) => f.name.endsWith('.safetensors'));
    if (plane) {
      const gpu = o.gpu();
      if (!gpu) throw new Error('no GPU device: press Reset above first');
      const p = parsePlane(new Uint8Array(await plane.arrayBuffer()), plane.name);
      owned?.dispose();
      const { model } = planeModel(gpu, p, plane.name, o.data.test.shape);
      owned = model;
      const half = Math.max(p.H, p.W) / 2 + 3;
      const src = { gpu, model, scale: p.scale, data: o.data.test, images, title: plane.name };
      await ex.computePlane(src, { cx: 0, cy: 0, half, side });
    } else if (json || npy) {
      const meta = json ? JSON.parse(await json.text()) : {};
      let loss: ArrayLike<number> = meta.loss;
      let [H, W] = [meta.y?.length, meta.x?.length];
      if (npy) {
        const a = parseNpy(new Uint8Array(await npy.arrayBuffer()), npy.name);
        if (a.shape.length !== 2) throw new Error(`${npy.name}: a 2-D loss grid expected, got [${a.shape}]`);
        [H, W] = a.shape;
        loss = a.data;
      }
      if (!loss || loss.length !== H * W)
        throw new Error(`${json?.name ?? npy?.name}: x, y and loss of a surface.json (loss-atlas surface) expected`);
      const s: Surface = {
        x: meta.x ?? Array.from({ length: W }, (_, j) => j),
        y: meta.y ?? Array.from({ length: H }, (_, i) => i),
        loss,
        title: [...byName.keys()].join(' + '),
      };
      ex.plane = null;
      ex.show(s);
    } else throw new Error('open surface.json (with surface_loss.npy) or a plane.safetensors');
  };
  const guarded = (f: () => Promise<void>) => () =>
    f().catch((e) => {
      o.fail((e as Error).message);
    });
  const input = $<HTMLInputElement>('surface-files');
  input.onchange = guarded(() => open(Array.from(input.files ?? [])));
  const drop = $('drop');
  drop.ondragover = (e) => e.preventDefault();
  drop.ondrop = (e) => {
    e.preventDefault();
    guarded(() => open(Array.from(e.dataTransfer?.files ?? [])))();
  };
  $('surface-trained').onclick = guarded(async () => {
    const t = o.trainer();
    if (!t) throw new Error('train a plane above first (Start), then compute its surface');
    await t.plane.updateBasis();
    const scale = (await t.plane.scale.basis.read())[0];
    const half = Math.max(t.mask.H, t.mask.W) / 2 + 3;
    const src = { gpu: t.gpu, model: t.plane.model, scale, data: o.data.test, images, title: 'the trained plane' };
    await ex.computePlane(src, { cx: 0, cy: 0, half, side });
  });

  $('profile').onclick = guarded(async () => {
    const gpu = o.gpu(),
      t = o.trainer();
    if (!gpu || !t) throw new Error('start a plane above first: the profile times its next steps on a copy');
    const out = $('profile-table');
    const prof = Profiler.attach(gpu);
    if (!prof) {
      out.textContent = `timestamp-query is not available on this adapter (${gpu.adapterInfo}): no kernel profile`;
      o.state.profile = out.textContent;
      return;
    }
    // a fresh plane of the same settings, so that the run above is left as it is
    const copy = MpoTrainer.fresh(gpu, t.spec, t.mask, t.train, t.s);
    try {
      for (let s = 0; s < 4; s++) {
        await copy.step();
        await prof.collect();
        if (s === 0) prof.clear(); // the first step compiles the pipelines
      }
      const rows = prof.rows();
      out.innerHTML = '';
      const table = document.createElement('table');
      table.innerHTML =
        '<tr><th>kernel</th><th>calls</th><th>total ms</th><th>mean ms</th><th>share</th></tr>' +
        rows
          .map(
            (r) =>
              `<tr><td>${r.name}</td><td>${r.calls}</td><td>${r.totalMs.toFixed(2)}</td>` +
              `<td>${r.meanMs.toFixed(3)}</td><td>${(r.share * 100).toFixed(1)}%</td></tr>`,
          )
          .join('');
      out.append('kernels over steps 2..4 of a copy of the plane (GPU times from timestamp queries):', table);
      o.state.profile = prof.table();
    } finally {
      prof.detach();
      copy.dispose();
    }
  });
}
