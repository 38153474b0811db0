import { Gpu } from '../src/engine/device.ts';

/** One GPU device per test file; destroyed after the file so the process can exit. */
export async function testGpu(): Promise<Gpu> {
  return Gpu.create({});
}
