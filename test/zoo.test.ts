import { describe, expect, it } from 'vitest';
import { modelSpec, parameterCount } from '../src/models/zoo.ts';

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
