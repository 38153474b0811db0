// The platform in Node: Dawn's WebGPU from the `webgpu` package (its GPU objects installed as globals once), the
// file system, process.env.
import { readFileSync, renameSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import sharp from 'sharp';
import { create, globals } from 'webgpu';
import { EmptyImageError, type Platform, setPlatform } from './index.ts';

let globalsInstalled = false;

export const nodePlatform: Platform = {
  name: 'node',
  async gpu() {
    if (!globalsInstalled) {
      Object.assign(globalThis, globals);
      globalsInstalled = true;
    }
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    const flags = (process.env.LOSS_ATLAS_DAWN_FLAGS ?? '').split(',').filter((s) => s);
    return create(flags);
  },
  env: (name) => process.env[name],
  readFile: (path) => readFileSync(path),
  writeFileAtomic(path, data) {
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  },
  exists: (path) => existsSync(path),
  mtimeMs: (path) => statSync(path).mtimeMs,
  resolvePath: (path) => resolve(path),
  async decodeImage(path, width, height) {
    const meta = await sharp(path).metadata();
    if (!meta.width || !meta.height) throw new EmptyImageError('an empty image');
    const rgba = await sharp(path)
      .ensureAlpha()
      .resize(width, height, { fit: 'fill', kernel: 'lanczos3' })
      .raw()
      .toBuffer();
    return { rgba, hasAlpha: !!meta.hasAlpha };
  },
};

setPlatform(nodePlatform);
