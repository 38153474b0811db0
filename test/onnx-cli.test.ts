// An imported ONNX graph in the commands, as a user runs them: train starts from its initializers and writes
// checkpoints under their names, surface reads the .onnx file as its checkpoint (its centre is the CPU reference's
// loss), mpo trains a plane through its weights; a graph for other images or classes is refused.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { readNpy, readSafetensors, safetensorsBytes } from '../src/data/formats.ts';
import * as ref from '../src/engine/reference.ts';
import { graphRef, paramShapes, stateShapes } from '../src/models/graph.ts';
import { importOnnx } from '../src/models/onnx.ts';
import { checkClasses, modelSpec } from '../src/models/zoo.ts';
import { CLI_ARGS, fashionFixture } from './helpers.ts';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

const FIX = 'test/fixtures/onnx';
const NET = join(FIX, 'fmnist.onnx');
const { dir, data } = fashionFixture('la-onnx-cli-');
const run = (args: string[]) =>
  spawnSync(process.execPath, [...CLI_ARGS, ...args], {
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  });
const ok = (r: ReturnType<typeof run>) => expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);

describe('an ONNX graph in the commands', () => {
  it('train starts from its initializers and keeps their names (lr 0: the weights stay the initializers)', () => {
    const out = join(dir, 'train');
    const flags = ['--epochs', '1', '--batch', '50', '--lr', '0', '--wd', '0', '--eval-images', '20'];
    ok(run(['train', '--model', NET, '--data', data, '--out', out, ...flags]));
    const { tensors, metadata } = readSafetensors(join(out, 'model.safetensors'));
    expect(metadata.model).toBe(resolve(NET));
    const m = importOnnx(NET);
    expect(Object.keys(tensors).sort()).toEqual(
      ['conv1.weight', 'conv1.bias', 'conv2.weight', 'bn2.weight', 'bn2.bias', 'fc.weight', 'fc.bias']
        .concat(['bn2.running_mean', 'bn2.running_var'])
        .sort(),
    );
    expect(Array.from(tensors['conv2.weight'].data)).toEqual(Array.from(m.params[2]));
    expect(tensors['fc.weight'].shape).toEqual([10, 8]);
  });

  it("surface reads the .onnx file as its checkpoint; the centre is the CPU reference's loss", () => {
    const out = join(dir, 'surface');
    const r = run(['surface', '--model-file', NET, '--data', data, '--x', '-1:1:3', '--y', '-1:1:3', '--out', out]);
    ok(r);
    const loss = readNpy(join(out, 'surface_loss.npy'));
    expect(loss.shape).toEqual([3, 3]);
    // --images default 1000 > the 200 training images: all of them, in eval mode (running statistics)
    const m = importOnnx(NET);
    const ds = loadFashionMnist(data, 'train');
    const y = graphRef(m.graph, m.params, ds.images, ds.n, m.input, 0, m.states).y;
    const want = ref.crossEntropyRef(y, Array.from(ds.labels), ds.n, 10).loss;
    expect(Math.abs(loss.data[4] - want)).toBeLessThan(1e-4 * want);
  });

  it('mpo trains a plane through its weights', () => {
    const out = join(dir, 'mpo');
    const flags = ['--grid', '4', '--mask', 'plus', '--steps', '10', '--batch', '16', '--eval-images', '10'];
    ok(run(['mpo', '--quick', '--model', NET, '--data', data, '--pad', '1', '--out', out, ...flags]));
    expect(existsSync(join(out, 'summary.png'))).toBe(true);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(JSON.stringify(cfg)).toContain(resolve(NET));
  });

  it('a graph for other images is refused, naming both shapes', () => {
    const r = run(['train', '--model', join(FIX, 'lenet.onnx'), '--data', data, '--out', join(dir, 'no')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/lenet\.onnx: the graph takes images \[1, 12, 12\], the data has \[1, 28, 28\]/);
  });

  it('data with more classes than the graph outputs is refused', () => {
    const spec = modelSpec(join(FIX, 'gelu-mlp.onnx'));
    expect(spec.classes).toBe(5);
    expect(() => checkClasses(spec, 'gelu-mlp.onnx', { classes: 10, labels: [0, 9] })).toThrow(
      /gelu-mlp\.onnx: the model outputs 5 classes, the data has 10 \(labels 0\.\.9\)/,
    );
    expect(() => checkClasses(spec, 'gelu-mlp.onnx', { classes: 5, labels: [0, 4] })).not.toThrow();
  });

  it("inspect: the node table, the initializers' parameters, BN and its states; a graph without BN says so", () => {
    const json = join(dir, 'inspect.json');
    const r = run(['inspect', join(FIX, 'resbn.onnx'), '--json', json]);
    ok(r);
    // the initializers' own count (running statistics are state, not parameters)
    const g = onnx.ModelProto.decode(readFileSync(join(FIX, 'resbn.onnx'))).graph!;
    const held = (g.initializer ?? [])
      .filter((t) => !/running_(mean|var)$/.test(t.name ?? ''))
      .reduce((a, t) => a + (t.dims ?? []).reduce((p: number, q) => p * Number(q), 1), 0);
    expect(r.stdout).toContain(`parameters: ${held.toLocaleString('en-US')} in 20 tensors`);
    expect(r.stdout).toMatch(
      /batch norm: 6 layers[\s\S]*\/b2\/shortcut\/shortcut\.1\/BatchNormalization: b2\.shortcut\.1\.running_mean/,
    );
    expect(r.stdout).toMatch(
      /\/b2\/Add +add \(residual\) +\[8, 4, 4\].*<- \/b2\/bn2\/BatchNormalization, \/b2\/shortcut/,
    );
    const j = JSON.parse(readFileSync(json, 'utf8'));
    expect(j.parameters).toBe(held);
    expect(j.nodes).toHaveLength(22);
    const lenet = run(['inspect', join(FIX, 'lenet.onnx')]);
    ok(lenet);
    expect(lenet.stdout).toMatch(/batch norm: none in this graph.*do_constant_folding=False/);
    expect(lenet.stdout).toMatch(/\/Pad +zero pad \(top, left, bottom, right\) 0, 0, 1, 1 +\[4, 7, 7\]/);
  });

  it("train --init: a state_dict by name onto the graph's initializers; mismatches listed in one error", () => {
    const m = importOnnx(NET);
    const names = [...paramShapes(m.graph), ...stateShapes(m.graph)];
    const vals = [...m.params, ...m.states].map((t) => t.map((v) => v * 0.5 + 0.01));
    const t: Record<string, { shape: number[]; data: Float32Array }> = {};
    names.forEach((s, i) => (t[s.name] = { shape: s.shape, data: vals[i] }));
    const good = join(dir, 'state_dict.safetensors');
    writeFileSync(
      good,
      safetensorsBytes({ ...t, 'bn2.num_batches_tracked': { shape: [1], data: new Float32Array(1) } }),
    );
    const out = join(dir, 'train-init');
    const flags = ['--epochs', '1', '--batch', '50', '--lr', '0', '--wd', '0', '--eval-images', '20'];
    ok(run(['train', '--model', NET, '--data', data, '--init', good, '--out', out, ...flags]));
    const got = readSafetensors(join(out, 'model.safetensors')).tensors;
    expect(Array.from(got['fc.weight'].data)).toEqual(Array.from(t['fc.weight'].data));
    const { 'conv1.bias': _gone, ...rest } = t;
    const bad = join(dir, 'bad_dict.safetensors');
    writeFileSync(
      bad,
      safetensorsBytes({
        ...rest,
        'fc.weight': { shape: [10, 9], data: new Float32Array(90) },
        'head.weight': { shape: [2], data: new Float32Array(2) },
      }),
    );
    const r = run(['train', '--model', NET, '--data', data, '--init', bad, '--out', join(dir, 'no2'), ...flags]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/bad_dict\.safetensors: the tensors do not match/);
    expect(r.stderr).toMatch(/missing \(1\): conv1\.bias/);
    expect(r.stderr).toMatch(/unexpected \(1\): head\.weight/);
    expect(r.stderr).toMatch(/shapes differ \(1\): fc\.weight \[10, 9\] where the model has \[10, 8\]/);
  });

  it('--weights: a state_dict in place of the initializers, in surface; refused beside a checkpoint of its own', () => {
    const m = importOnnx(NET);
    const specs = [...paramShapes(m.graph), ...stateShapes(m.graph)];
    const vals = [...m.params, ...m.states].map((t) => t.map((v, i) => v * 0.8 + 0.01 * Math.sin(i)));
    const t: Record<string, { shape: number[]; data: Float32Array }> = {};
    specs.forEach((s, i) => (t[s.name] = { shape: s.shape, data: vals[i] }));
    const sd = join(dir, 'weights.safetensors');
    writeFileSync(sd, safetensorsBytes(t));
    const out = join(dir, 'surface-weights');
    const grid = ['--x', '-1:1:3', '--y', '-1:1:3'];
    ok(run(['surface', '--model-file', NET, '--weights', sd, '--data', data, ...grid, '--out', out]));
    const ds = loadFashionMnist(data, 'train');
    const np = m.params.length;
    const y = graphRef(m.graph, vals.slice(0, np), ds.images, ds.n, m.input, 0, vals.slice(np)).y;
    const want = ref.crossEntropyRef(y, Array.from(ds.labels), ds.n, 10).loss;
    expect(Math.abs(readNpy(join(out, 'surface_loss.npy')).data[4] - want)).toBeLessThan(1e-4 * want);
    const own = join(dir, 'train', 'model.safetensors');
    const r = run([
      'surface',
      '--model-file',
      own,
      '--weights',
      sd,
      '--data',
      data,
      ...grid,
      '--out',
      join(dir, 'no3'),
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--weights .*weights\.safetensors: .*model\.safetensors holds its own weights/);
  });

  it('connect, swa, tunnels, trajectory and subspace take the graph or checkpoints trained from it', () => {
    const t = join(dir, 'cmds');
    const few = ['--batch', '16', '--images', '20'];
    const flags = ['--epochs', '3', '--batch', '50', '--lr', '0.01', '--eval-images', '20', '--snapshots'];
    ok(run(['train', '--model', NET, '--data', data, '--out', join(t, 'a'), ...flags]));
    // the graph itself beside a checkpoint trained from it: one model, though one path is relative
    const path = ['--points', '3', '--steps', '2', '--dense', '5'];
    const a = join(t, 'a', 'model.safetensors');
    ok(run(['connect', NET, a, ...path, ...few, '--data', data, '--out', join(t, 'connect')]));
    expect(JSON.parse(readFileSync(join(t, 'connect', 'metrics.json'), 'utf8')).endpoint_train_loss).toHaveLength(2);
    ok(
      run([
        'swa',
        '--model-file',
        NET,
        '--snapshots',
        '2',
        '--every',
        '1',
        ...few,
        '--data',
        data,
        '--out',
        join(t, 'swa'),
      ]),
    );
    expect(existsSync(join(t, 'swa', 'swa.png'))).toBe(true);
    // tunnels measures from the initializers: ||theta|| is theirs
    const rays = ['--rays', '2', '--points', '3', '--images', '20'];
    ok(run(['tunnels', '--model-file', NET, ...rays, '--data', data, '--out', join(t, 'tunnels')]));
    const norm = Math.hypot(...importOnnx(NET).params.flatMap((p) => Array.from(p)));
    const tm = JSON.parse(readFileSync(join(t, 'tunnels', 'metrics.json'), 'utf8'));
    expect(tm.theta_norm).toBeCloseTo(norm, 4);
    ok(run(['trajectory', '--run', join(t, 'a'), '--grid', '3', '--images', '20', '--out', join(t, 'trajectory')]));
    expect(existsSync(join(t, 'trajectory', 'trajectory.png'))).toBe(true);
    const sub = ['--ds', '5', '--steps', '2', '--batch', '16', '--eval-images', '20'];
    ok(run(['subspace', '--models', NET, ...sub, '--data', data, '--out', join(t, 'subspace')]));
    const sm = JSON.parse(readFileSync(join(t, 'subspace', 'metrics.json'), 'utf8'));
    const D = paramShapes(importOnnx(NET).graph).reduce((n, p) => n + p.shape.reduce((x, y) => x * y, 1), 0);
    expect(Object.values(sm).map((v) => (v as { D: number }).D)).toEqual([D]);
  }, 120_000);
});
