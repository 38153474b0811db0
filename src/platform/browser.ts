// The platform in a web page: navigator.gpu, no environment, no files (the page hands its data over as bytes).
import { NoFilesError, type Platform, setPlatform } from './index.ts';

const noFiles = (path: string): never => {
  throw new NoFilesError(`${path}: a web page reads no files by path (open the file in the page instead)`);
};

export const browserPlatform: Platform = {
  name: 'browser',
  async gpu() {
    const g = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
    if (!g) throw new Error('this browser has no WebGPU (navigator.gpu is missing)');
    return g;
  },
  env: () => undefined,
  readFile: noFiles,
  writeFileAtomic: noFiles,
  exists: () => false,
  mtimeMs: noFiles,
  resolvePath: (p) => p,
  decodeImage: async (path) => noFiles(path),
};

setPlatform(browserPlatform);
