import { describe, expect, it } from 'vitest';
import { modelSpec } from '../src/models/zoo.ts';
import { parameterCount } from '../src/models/graph.ts';

describe('model zoo', () => {
  it('parameter counts match the MPO reference', () => {
    expect(parameterCount(modelSpec('icons').layers)).toBe(153_402);
    expect(parameterCount(modelSpec('squares').layers)).toBe(200_162);
    expect(parameterCount(modelSpec('squares', { bn: true }).layers)).toBe(200_578);
    expect(parameterCount(modelSpec('squares', { skip: true }).layers)).toBe(200_162);
    expect(parameterCount(modelSpec('cifar').layers)).toBe(156_074);
    expect(parameterCount(modelSpec('small').layers)).toBe(9_802);
  });
});

describe('ResNet', () => {
  const resnet20Count =
    "ResNet-20 has the parameter count of He et al.'s CIFAR net (0.27M), its noshort twin fewer (no projections)";
  it(resnet20Count, () => {
    const r20 = parameterCount(modelSpec('resnet20', { input: [3, 32, 32] }).layers);
    expect(r20).toBe(272_474);
    expect(parameterCount(modelSpec('resnet20-noshort', { input: [3, 32, 32] }).layers)).toBeLessThan(r20);
  });

  const deeperAndWider =
    "deeper and wider: ResNet-56 / 110 with He et al.'s 0.85M / 1.7M parameters, width 2 about 4x, bad depths named";
  it(deeperAndWider, () => {
    const count = (n: string, width = 1) => parameterCount(modelSpec(n, { input: [3, 32, 32], width }).layers);
    expect(count('resnet56')).toBe(855_770);
    expect(count('resnet110')).toBe(1_730_714);
    expect(count('resnet20', 2) / count('resnet20')).toBeCloseTo(3.98, 1);
    expect(() => modelSpec('resnet21')).toThrow(/resnet21.*6n\+2/);
    expect(() => modelSpec('small', { width: 2 })).toThrow(/only the ResNets have a width factor/);
  });
});
