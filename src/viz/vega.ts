// Plots through Vega-Lite: compiled to Vega, rendered to SVG headlessly, rasterized with sharp (or kept as a panel,
// to sit beside the hand-drawn pictures of figure.ts).
import * as vega from 'vega';
import * as vl from 'vega-lite';
import sharp from 'sharp';
import type { Panel } from './figure.ts';

async function vegaLiteSvg(spec: vl.TopLevelSpec, scale = 1): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG(scale);
  } finally {
    view.finalize();
  }
}

export async function vegaLitePng(spec: vl.TopLevelSpec, path: string, scale = 2): Promise<void> {
  await sharp(Buffer.from(await vegaLiteSvg(spec, scale)))
    .png()
    .toFile(path);
}

/** A Vega-Lite chart as a panel for figure.ts's compose and writePng. */
export async function vegaLitePanel(spec: vl.TopLevelSpec): Promise<Panel> {
  const svg = await vegaLiteSvg(spec);
  const size = (k: string) => Number(svg.match(new RegExp(`<svg[^>]*\\s${k}="([\\d.]+)"`))?.[1] ?? NaN);
  const width = size('width'),
    height = size('height');
  if (!Number.isFinite(width) || !Number.isFinite(height)) throw new Error('vegaLitePanel: the chart has no size');
  return { svg, width, height };
}
