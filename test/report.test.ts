import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeReport } from '../src/viz/report.ts';

describe('report', () => {
  it('lists each run directory with its pictures and results', () => {
    const root = mkdtempSync(join(tmpdir(), 'la-report-'));
    mkdirSync(join(root, 'quick-1', 'checkpoint'), { recursive: true });
    writeFileSync(join(root, 'quick-1', 'config.json'), '{"mask":"heart"}');
    writeFileSync(join(root, 'quick-1', 'metrics.json'), '{"test":{"agreement":0.958}}');
    writeFileSync(join(root, 'quick-1', 'summary.png'), 'png');
    mkdirSync(join(root, 'surface-1'));
    writeFileSync(join(root, 'surface-1', 'surface_meta.json'), '{}');
    writeFileSync(join(root, 'surface-1', 'surface_heatmap.png'), 'png');
    expect(writeReport(root)).toBe(2);
    const html = readFileSync(join(root, 'report.html'), 'utf8');
    expect(html).toContain('MPO pattern: <code>quick-1</code>');
    expect(html).toContain('<img src="quick-1/summary.png"');
    expect(html).toContain('&quot;agreement&quot;:0.958'.replace(/&quot;/g, '"'));
    expect(html).toContain('2-D surface: <code>surface-1</code>');
  });
});
