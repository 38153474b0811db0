// The flags of `npm run bench` (bench/mpo.ts), a table of src/options/: parsed, validated and rendered as
// --help from here.
import { defineCommand } from '../src/options/index.ts';

export const WORKLOADS = ['mpo-fashion', 'mpo-cifar', 'surface-icons', 'surface-onnx'] as const;
export const PEERS = ['tfjs-webgpu', 'tfjs-cpu', 'tfjs-wasm'] as const;

export const BENCH = defineCommand({
  name: 'bench',
  program: 'npm run bench --',
  usage: 'npm run bench [-- --quick] [--json PATH] [--steps N] [--workloads ...] [--cells ...] [--peers ...] [flags]',
  summary: 'times the MPO training step and the loss-surface workload against peers',
  description: `\
Times the MPO training step (the code loss-atlas mpo runs) and the loss-surface workload on synthetic batches:
wall and GPU time per step, cell-images per second, GFLOP/s and peak GPU memory, against the tfjs peers (checked first:
the same losses) and, merged with --torch, PyTorch. Writes a markdown table and bench/results/<adapter>-<date>.json.
A CPU adapter always gets the --quick sizes.`,
  options: {
    quick: { type: 'boolean', help: 'small sizes (always on a CPU adapter)' },
    json: {
      type: 'string',
      placeholder: 'PATH',
      help: 'also write the results there (and the partial results while running)',
    },
    steps: { type: 'integer', min: 1, default: 10, help: 'timed loss-atlas steps (after 2 warm-up steps)' },
    workloads: {
      type: 'list',
      of: 'string',
      choices: WORKLOADS,
      placeholder: 'NAME,...',
      defaultText: 'mpo-fashion,surface-icons with --quick, else all',
      help: 'the workloads',
    },
    cells: {
      type: 'list',
      of: 'integer',
      above: 0,
      defaultText: '1,4 with --quick, else 1,16,100,400',
      help: 'cells per step',
    },
    batch: {
      type: 'list',
      of: 'integer',
      above: 0,
      defaultText: '16 with --quick, else 64,512',
      help: 'images per step',
    },
    peers: {
      type: 'list',
      of: 'string',
      choices: [...PEERS, 'none'],
      placeholder: 'PEER,...',
      defaultText: 'tfjs-webgpu,tfjs-wasm,tfjs-cpu with --quick, else tfjs-webgpu,tfjs-wasm',
      help: 'the peers timed (PyTorch runs from bench/torch_reference.py, merged with --torch)',
    },
    'peer-steps': {
      type: 'integer',
      min: 1,
      defaultText: '5 (tfjs-cpu 1) with --quick, else 3',
      help: 'timed peer steps',
    },
    'peer-budget-s': {
      type: 'number',
      above: 0,
      defaultText: '60 on a GPU, none on a CPU adapter',
      help: "skip a peer's configuration predicted to take longer (seconds)",
    },
    'peer-points': {
      type: 'integer',
      min: 1,
      defaultText: '4 with --quick, else 50',
      help: 'surface-icons: points the peers are timed on',
    },
    'surface-side': {
      type: 'integer',
      min: 1,
      defaultText: '5 with --quick, else 51 (surface-onnx: 3, else 11)',
      help: 'surface workloads: grid points per side',
    },
    'surface-images': {
      type: 'integer',
      min: 1,
      defaultText: '100 with --quick, else 1000 (surface-onnx: 4, else 64)',
      help: 'surface workloads: images per point',
    },
    torch: {
      type: 'string',
      placeholder: 'FILE',
      help: 'merge the rows of bench/torch_reference.py (bench/results/torch-*.json)',
    },
    'check-dir': {
      type: 'string',
      placeholder: 'DIR',
      help: 'write the loss checks for bench/torch_reference.py --check-dir',
    },
    'check-only': { type: 'boolean', help: 'with --check-dir: stop after writing the checks' },
  },
  globals: ['verbose', 'help'],
  // scripts/gpu-check.sh puts the user's flags first, before a stage's own
  repeated: 'first',
});
