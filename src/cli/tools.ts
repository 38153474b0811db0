// The tool commands: inspect (a model's node table), data:cifar10 (download) and gradcheck (every op against its
// reference).
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { checkOp, opCases } from '../engine/gradcheck.ts';
import { wedgeCases } from '../structure/wedge.ts';
import { CIFAR10, cifar10Dir } from '../data/cifar10.ts';
import { fetchArchive } from '../data/download.ts';
import { defineCommand } from '../options/index.ts';
import { inspectModel } from '../models/inspect.ts';
import { modelSpec } from '../models/zoo.ts';
import { command, withGpu, type Command } from './common.ts';

export const DATA_CIFAR10 = defineCommand({
  name: 'data:cifar10',
  summary: 'download CIFAR-10 (binary version), verify size and MD5, unpack the batches into data/cifar-10-batches-bin',
  description: `\
Downloads the CIFAR-10 binary archive (or uses the one already at --archive), checks its size and MD5, and unpacks
the training and test batches.`,
  options: {
    dir: {
      type: 'string',
      placeholder: 'DIR',
      defaultText: '$LOSS_ATLAS_CIFAR10 or data/cifar-10-batches-bin',
      help: 'where the batches go',
    },
    data: { type: 'string', placeholder: 'DIR', help: 'the same as --dir' },
    archive: {
      type: 'string',
      placeholder: 'FILE',
      defaultText: 'cifar-10-binary.tar.gz next to DIR',
      help: 'the archive',
    },
    url: {
      type: 'string',
      placeholder: 'URL',
      defaultText: "the dataset authors' address",
      help: 'where to download from',
    },
    bytes: { type: 'integer', min: 1, default: CIFAR10.bytes, help: 'expected archive size' },
    md5: {
      type: 'string',
      placeholder: 'HEX',
      default: CIFAR10.md5,
      help: 'expected MD5 of the archive',
      check: (v) => (/^[0-9a-f]{32}$/.test(v) ? null : '32 lowercase hexadecimal digits'),
    },
  },
  globals: ['verbose', 'help'],
});

export const GRADCHECK = defineCommand({
  name: 'gradcheck',
  summary: 'check every op: forward vs CPU reference, backward vs finite differences (non-zero exit on failure)',
  description: `\
Runs every op case on the GPU: the forward pass against the CPU reference, the backward pass against finite
differences, each error as a fraction of its tolerance. Exits non-zero when a case fails.`,
  options: {
    op: { type: 'string', placeholder: 'NAME', defaultText: 'all', help: 'only the ops whose name contains NAME' },
  },
});

export const INSPECT = defineCommand({
  name: 'inspect',
  summary: 'the node table of a model (zoo name or .onnx): shapes, parameters, FLOPs, batch norm, directions',
  usage: 'loss-atlas inspect MODEL [flags]',
  description: `\
Prints the model's nodes (name, op, output shape, parameters, FLOPs), the totals, its batch-norm layers with their
running statistics, and which tensors the random directions of the loss-surface tools cover. MODEL is a name of
the zoo or an ONNX file (FILE.onnx). No GPU is used.`,
  options: {
    bn: { type: 'boolean', help: 'a zoo model with batch norm' },
    skip: { type: 'boolean', help: 'a zoo model with residual blocks' },
    width: { type: 'number', min: 1 / 16, default: 1, help: 'ResNet channel multiplier' },
    input: {
      type: 'list',
      of: 'integer',
      min: 1,
      placeholder: 'C,H,W',
      defaultText: "the model's (1,28,28 for the size-agnostic nets)",
      help: 'the input images',
    },
    json: { type: 'string', placeholder: 'FILE', help: 'also write the table as JSON' },
  },
  positionals: { placeholder: 'MODEL', min: 1, max: 1, help: 'a model name or an ONNX file', missing: 'a model' },
  globals: ['help'],
});

const inspect = command(INSPECT, async ({ options: o, positionals: [name] }) => {
  if (o.input && o.input.length !== 3) throw new Error(`--input: C,H,W expected, got ${o.input.join(',')}`);
  const input = o.input as [number, number, number] | undefined;
  const spec = modelSpec(name, { bn: o.bn, skip: o.skip, width: o.width, input });
  const r = inspectModel(name, spec);
  console.log(r.text);
  if (o.json) {
    const { text: _text, ...rest } = r;
    writeFileSync(
      o.json,
      `${JSON.stringify({ model: name, input: spec.input, classes: spec.classes ?? 10, ...rest })}\n`,
    );
  }
  return 0;
});

const dataCifar10 = command(DATA_CIFAR10, async ({ options: o }) => {
  const dir = cifar10Dir(o.dir ?? o.data);
  const archive = o.archive ?? join(dirname(dir), 'cifar-10-binary.tar.gz');
  const spec = {
    url: o.url ?? CIFAR10.url,
    bytes: o.bytes,
    md5: o.md5,
    members: [...CIFAR10.train, ...CIFAR10.test, 'batches.meta.txt'].map((f) => `${CIFAR10.folder}/${f}`),
  };
  const files = await fetchArchive(spec, archive, dir);
  console.log(`CIFAR-10 ready in ${dir} (${files.length} files)`);
  return 0;
});

const gradcheck = command(GRADCHECK, async ({ options: o, globals }) =>
  withGpu(globals, async (gpu) => {
    const filter = o.op ?? '';
    console.log(`adapter: ${gpu.adapterInfo}`);
    console.log('| op | case | forward err / tol | backward err / tol | result |\n|---|---|---|---|---|');
    let failed = 0;
    for (const c of [...opCases(), ...wedgeCases()].filter((c) => c.op.includes(filter))) {
      const r = await checkOp(gpu, c);
      if (!r.pass) failed++;
      const result = r.pass ? 'ok' : `FAIL: ${r.detail}`;
      console.log(`| ${r.op} | ${r.name} | ${r.fwdErr.toFixed(3)} | ${r.bwdErr.toFixed(3)} | ${result} |`);
    }
    const passed = 'all cases passed (errors are shown as a fraction of the tolerance)';
    console.log(failed ? `${failed} case(s) failed` : passed);
    return failed ? 1 : 0;
  }),
);

export const TOOL_COMMANDS: Record<string, Command> = { inspect, 'data:cifar10': dataCifar10, gradcheck };
