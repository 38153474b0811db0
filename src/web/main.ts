// The web page's entry: installs the browser platform, says so plainly when the browser has no WebGPU, loads the
// Fashion-MNIST subset that build:web packed beside the page, and starts the MPO playground.
import '../platform/browser.ts';
import { parsePack } from '../data/pack.ts';
import { startPlayground } from './playground.ts';

const NO_WEBGPU = `This browser has no WebGPU, which loss-atlas runs on. WebGPU is on by default in Chrome and Edge 113+
(Windows, macOS, ChromeOS; Android 121+) and in Safari 26 (macOS, iOS). In Chrome on Linux, start it with
--enable-unsafe-webgpu --enable-features=Vulkan (or set chrome://flags/#enable-unsafe-webgpu); in Firefox 141+ on
Windows it is on, elsewhere set dom.webgpu.enabled in about:config.`;

async function main(): Promise<void> {
  const err = document.getElementById('error')!;
  const gpu = (navigator as { gpu?: GPU }).gpu;
  if (!gpu || !(await gpu.requestAdapter())) {
    err.textContent = gpu ? 'WebGPU is there but gave no adapter (is hardware acceleration off?).' : NO_WEBGPU;
    err.hidden = false;
    document.getElementById('app')!.hidden = true;
    return;
  }
  const res = await fetch('fashion-mnist.pack');
  if (!res.ok) throw new Error(`fashion-mnist.pack: ${res.status} ${res.statusText} (run npm run build:web)`);
  const pack = parsePack(new Uint8Array(await res.arrayBuffer()), 'fashion-mnist.pack');
  document.getElementById('data-info')!.textContent =
    `Fashion-MNIST: ${pack.header.train} training and ${pack.header.test} test images`;
  await startPlayground(pack);
}

main().catch((e) => {
  const err = document.getElementById('error')!;
  err.textContent = (e as Error).message;
  err.hidden = false;
  (window as { __lossAtlas?: { error: string } }).__lossAtlas ??= { error: (e as Error).message };
});
