// The one seam between loss-atlas and where it runs. In Node (src/platform/node.ts) the GPU is Dawn's through the
// `webgpu` package, files are the file system's and the environment is process.env; in a web page
// (src/platform/browser.ts) the GPU is navigator.gpu and there are no files. The engine, the models and the MPO and
// surface code reach either only through platform(); everything else Node-only (sharp, the data readers' folders,
// signals, the command line) stays in modules a page never imports.

export interface Platform {
  /** 'node' or 'browser'. */
  name: string;
  /** The WebGPU entry point. */
  gpu(): Promise<GPU>;
  /** An environment variable (a page has none). */
  env(name: string): string | undefined;
  /** A file's bytes; the error names the file (a page refuses: it has only the files a user hands it). */
  readFile(path: string): Uint8Array;
  /** Writes a file whole, through a temporary file renamed into place (a half-written file is never seen). */
  writeFileAtomic(path: string, data: Uint8Array | string): void;
  exists(path: string): boolean;
  /** A file's modification time in ms (what caches of parsed files key on). */
  mtimeMs(path: string): number;
  /** An absolute path (files are named by it in checkpoints). */
  resolvePath(path: string): string;
  /**
   * An image file decoded and resized to width x height (RGBA bytes, row-major), and whether the file has an alpha
   * channel; throws EmptyImageError for an image of no pixels, another error when the file is no image it can read.
   */
  decodeImage(path: string, width: number, height: number): Promise<{ rgba: Uint8Array; hasAlpha: boolean }>;
}

// kept on globalThis: one platform per process (or page), also where a loader gives a module several instances
const KEY = Symbol.for('loss-atlas.platform');
const slot = globalThis as { [KEY]?: Platform };

/** Installs the platform (src/platform/node.ts and browser.ts do on import). */
export function setPlatform(p: Platform): void {
  slot[KEY] = p;
}

export function platform(): Platform {
  const current = slot[KEY];
  if (!current)
    throw new Error(
      'loss-atlas: no platform installed: import src/platform/node.ts first in Node, src/platform/browser.ts in a page',
    );
  return current;
}

/** The error of a file operation where there are no files. */
export class NoFilesError extends Error {}

/** decodeImage's error for an image file of no pixels. */
export class EmptyImageError extends Error {}
