// Exit 0 when Dawn finds a WebGPU adapter, 1 when it finds none. Used by scripts/setup.sh.
import { create } from 'webgpu';
process.env.XDG_RUNTIME_DIR ??= '/tmp';
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (adapter)
  console.log(`adapter: ${adapter.info?.description || adapter.info?.device || adapter.info?.vendor || 'unnamed'}`);
process.exit(adapter ? 0 : 1);
