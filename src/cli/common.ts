// What the commands share: the GPU with the global --verbose / --profile, run directories, the checkpoint flags with
// their dataset, and the frame of a Fashion-MNIST experiment.
import { existsSync, writeFileSync } from 'node:fs';
import { Gpu } from '../engine/device.ts';
import { Profiler } from '../engine/profiler.ts';
import { readSafetensors } from '../data/formats.ts';
import { loadSplits } from '../data/datasets.ts';
import { fashionMnistDir } from '../data/fashion-mnist.ts';
import { readCheckpoint } from '../models/checkpoint.ts';
import { isOnnxPath } from '../models/onnx.ts';
import { modelData } from '../models/data.ts';
import { defaultRunDir } from '../run/run-info.ts';
import type { CommandSpec, Globals, Invocation, OptionTable } from '../options/index.ts';

/** A command: its option table and what it does with the parsed command line (the exit code). */
export interface Command<O extends OptionTable = OptionTable> {
  spec: CommandSpec<O>;
  run: (inv: Invocation<O>) => Promise<number>;
}

/** A command of the registry (its table's types kept inside `run`). */
export function command<O extends OptionTable>(
  spec: CommandSpec<O>,
  run: (inv: Invocation<O>) => Promise<number>,
): Command {
  return { spec, run } as unknown as Command;
}

/**
 * The GPU for a command, with the global flags: --verbose prints the adapter and its limits; --profile times every
 * dispatch and prints the per-kernel table at the end, with a Chrome trace in --trace. `profile`: timestamp queries
 * without that table (a command that profiles itself).
 */
export async function withGpu<T>(g: Globals, fn: (gpu: Gpu) => Promise<T>, o: { profile?: boolean } = {}): Promise<T> {
  const gpu = await Gpu.create({ verbose: g.verbose, profile: !!o.profile || g.profile });
  const prof = g.profile ? Profiler.attach(gpu) : null;
  if (g.profile && !prof) throw new Error(`--profile: adapter ${gpu.adapterInfo} has no timestamp-query`);
  try {
    const r = await fn(gpu);
    if (prof) {
      await prof.collect();
      const what = 'kernels of the whole command (pipeline compilation included), from timestamp queries';
      console.log(`\n${what}:\n${prof.table()}`);
      writeFileSync(g.trace, JSON.stringify(prof.chromeTrace()));
      console.log(`Chrome trace: ${g.trace}`);
      prof.detach();
    }
    return r;
  } finally {
    gpu.destroy();
  }
}

/**
 * The dataset a checkpoint's architecture takes (modelData), in the image shape it takes: a .onnx file, or a
 * checkpoint whose metadata names its model (an ONNX graph, when train wrote it from one).
 */
export async function checkpointData(file: string, dataDir: string | undefined) {
  if (!existsSync(file)) throw new Error(`${file}: no such checkpoint file`);
  const model = isOnnxPath(file)
    ? file
    : (readSafetensors(file, 'a checkpoint (a model.safetensors written by loss-atlas train)').metadata.model ?? '');
  return modelData(model, dataDir);
}

/** A checkpoint (--model-file) and the extra ones given, with the dataset its architecture was trained on. */
export async function checkpointsAndData(file: string, extra: (string | undefined)[], dataDir: string | undefined) {
  const data = await checkpointData(file, dataDir);
  const others = extra.map((f) => (f !== undefined ? readCheckpoint(f, data.train.shape) : null));
  return { a: readCheckpoint(file, data.train.shape), others, data, file };
}

type Splits = Awaited<ReturnType<typeof loadSplits>>;

/**
 * A Fashion-MNIST experiment command: the dataset (--data; with --model-file, the one its checkpoint takes), the run
 * directory (--out, default runs/<name>-<time>), the GPU (--verbose prints its adapter); the body returns the closing
 * line.
 */
export function fashionExperiment<O extends OptionTable & { data: unknown; out: unknown }>(
  spec: CommandSpec<O>,
  body: (gpu: Gpu, d: { data: Splits; dataDir: string; out: string }, inv: Invocation<O>) => Promise<string>,
): Command {
  return command(spec, async (inv) => {
    const o = inv.options as { data?: string; out?: string; modelFile?: string };
    const dataDir = fashionMnistDir(o.data);
    const data = o.modelFile ? await checkpointData(o.modelFile, o.data) : await loadSplits('fashion-mnist', dataDir);
    const out = o.out ?? defaultRunDir(spec.name);
    return withGpu(inv.globals, async (gpu) => {
      console.log(await body(gpu, { data, dataDir, out }, inv));
      return 0;
    });
  });
}
