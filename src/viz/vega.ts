// Plots through Vega-Lite: compiled to Vega, rendered to SVG headlessly, rasterized with sharp.
import * as vega from 'vega';
import * as vl from 'vega-lite';
import sharp from 'sharp';

export async function vegaLitePng(spec: vl.TopLevelSpec, path: string, scale = 2): Promise<void> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG(scale);
  view.finalize();
  await sharp(Buffer.from(svg)).png().toFile(path);
}
