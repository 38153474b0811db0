// The GPU layer: adapter and device, requested limits, error reporting that names the kernel,
// one command encoder per step (many dispatches, one submit), pipeline and uniform caches, read-back.
import { platform } from '../platform/index.ts';
import { BufferPool } from './buffers.ts';
import type { KernelSpec } from './kernel.ts';
export interface Dispatch {
  kernel: KernelSpec;
  buffers: Record<string, GPUBuffer>;
  uniforms: Record<string, number>;
  /** Workgroup counts; x may exceed 65535 only through `foldX` (kernels written for folding). */
  groups: [number, number?, number?];
  /** Shapes of the op, for error messages. */
  what: string;
  /** Work estimate for the profiler. */
  flops?: number;
  bytes?: number;
}

export interface GpuOptions {
  verbose?: boolean;
  /** Record per-kernel GPU time with timestamp queries (when the adapter has them). */
  profile?: boolean;
}

export class GpuError extends Error {}

export type ConvKernels = 'tiled' | 'lanes';
function convKernelsFromEnv(): ConvKernels | null {
  const v = platform().env('LOSS_ATLAS_CONV');
  if (v === undefined || v === '') return null;
  if (v === 'tiled' || v === 'lanes') return v;
  throw new GpuError(`LOSS_ATLAS_CONV=${v}: expected 'tiled' or 'lanes'`);
}

export class Gpu {
  readonly pool: BufferPool;
  readonly adapterInfo: string;
  readonly maxBinding: number;
  /** Largest binding the engine lets a dispatch use: the device limit, lowered by tests to exercise block splitting. */
  bindingLimit: number;
  readonly maxGroups: number;
  readonly hasTimestamps: boolean;
  /** A CPU implementation of WebGPU (Mesa lavapipe / llvmpipe, SwiftShader). */
  readonly isCpu: boolean;
  /**
   * Which conv kernel family runs conv2d / linear: 'tiled' (both GEMM operands staged in workgroup-memory tiles, for
   * GPUs) or 'lanes' (one operand broadcast across the workgroup, the other per lane; only point k's weights are
   * staged in workgroup memory, once per reduction chunk: several times faster on llvmpipe (npm run bench:kernels),
   * whose invocations are SIMD lanes of one CPU thread). Default by adapter; LOSS_ATLAS_CONV=tiled|lanes overrides.
   */
  convKernels: ConvKernels;
  /** Elements per invocation of the 1-D kernels that take a count (elementwise, combine, max-pool, optimizers): 16 on a
   * CPU adapter. */
  elemsPerThread: number;
  /** Threads per partial sum of the reductions (gradient norm, plane dot products): a 256-thread tree on a GPU, 8 on a
   * CPU adapter. */
  readonly reduceThreads: number;
  private encoder: GPUCommandEncoder | null = null;
  private pipelines = new Map<string, GPUComputePipeline>();
  private uniformCache = new Map<string, GPUBuffer>();
  private pendingErrors: Promise<string | null>[] = [];
  private asyncErrors: string[] = [];
  private lastKernel = '(none)';
  private destroyed = false;
  /** Profiler hook: called for every dispatch in submission order. */
  onDispatch: ((d: Dispatch, pass: GPUComputePassDescriptor) => void) | null = null;
  dispatchCount = 0;

  private constructor(
    readonly gpu: GPU,
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    readonly options: GpuOptions,
  ) {
    const info = adapter.info;
    this.adapterInfo =
      [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' / ') || 'unknown adapter';
    this.maxBinding = device.limits.maxStorageBufferBindingSize;
    this.maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
    this.hasTimestamps = device.features.has('timestamp-query');
    this.isCpu = /llvmpipe|lavapipe|swiftshader/i.test(this.adapterInfo);
    this.convKernels = convKernelsFromEnv() ?? (this.isCpu ? 'lanes' : 'tiled');
    this.elemsPerThread = this.isCpu ? 16 : 1;
    this.reduceThreads = this.isCpu ? 8 : 256;
    this.pool = new BufferPool(device, this.maxBinding);
    this.bindingLimit = this.maxBinding;
    device.lost.then((l) => {
      if (!this.destroyed)
        this.asyncErrors.push(`GPU device lost (${l.reason}): ${l.message}; last kernel ${this.lastKernel}`);
    });
    device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.asyncErrors.push(`GPU error after kernel ${this.lastKernel}: ${e.message}`);
    });
  }

  static async create(options: GpuOptions = {}): Promise<Gpu> {
    const gpu = await platform().gpu();
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) {
      throw new GpuError(
        'No WebGPU adapter found. On a machine without a GPU, install Mesa lavapipe 25' +
          ' (run `npm run setup` as root, or see scripts/setup.sh).',
      );
    }
    const l = adapter.limits;
    const requiredLimits: Record<string, number> = {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    };
    const requiredFeatures: GPUFeatureName[] = [];
    if (options.profile && adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
    const device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'loss-atlas' });
    const g = new Gpu(gpu, adapter, device, options);
    if (options.verbose) {
      console.error(`[gpu] adapter: ${g.adapterInfo}`);
      console.error(
        `[gpu] maxStorageBufferBindingSize ${(g.maxBinding / 2 ** 20).toFixed(0)} MiB,` +
          ` workgroup storage ${l.maxComputeWorkgroupStorageSize} B, timestamps ${g.hasTimestamps}`,
      );
    }
    return g;
  }

  /** The pipeline for a kernel (compiled once per name+key; shapes travel as uniforms). */
  pipeline(k: KernelSpec, what: string): GPUComputePipeline {
    const id = `${k.name}|${k.key}`;
    let p = this.pipelines.get(id);
    if (p) return p;
    const print = platform().env('LOSS_ATLAS_PRINT_WGSL');
    if (print && (print === 'all' || k.name.startsWith(print))) console.error(`// ---- ${id}\n${k.code}`);
    const d = this.device;
    d.pushErrorScope('validation');
    const module = d.createShaderModule({ code: k.code, label: id });
    p = d.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: id });
    this.pendingErrors.push(
      d.popErrorScope().then(async (e) => {
        if (!e) return null;
        const info = await module.getCompilationInfo();
        const msgs = info.messages.map((m) => `  line ${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`).join('\n');
        return `kernel ${id} failed to compile for ${what}: ${e.message}\n${msgs}`;
      }),
    );
    this.pipelines.set(id, p);
    return p;
  }

  private uniformBuffer(k: KernelSpec, values: Record<string, number>): GPUBuffer | null {
    if (k.uniforms.length === 0) return null;
    const n = Math.max(4, Math.ceil(k.uniforms.length / 4) * 4);
    const data = new ArrayBuffer(n * 4);
    const u32 = new Uint32Array(data),
      f32 = new Float32Array(data),
      i32 = new Int32Array(data);
    k.uniforms.forEach(([name, type], i) => {
      const v = values[name];
      if (v === undefined) throw new GpuError(`kernel ${k.name}: uniform ${name} missing`);
      if (Number.isNaN(v)) throw new GpuError(`kernel ${k.name}: uniform ${name} is NaN`);
      if (type === 'f32') f32[i] = v;
      else if (type === 'i32') i32[i] = v;
      else {
        if (v < 0 || v > 0xffffffff || !Number.isInteger(v))
          throw new GpuError(`kernel ${k.name}: uniform ${name}=${v} is not a u32`);
        u32[i] = v;
      }
    });
    // Content-keyed: identical uniforms share one buffer, so a cached buffer is never rewritten
    // while an unsubmitted encoder still refers to it.
    const key = `${k.name}|${k.key}|${Array.from(u32).join(',')}`;
    let b = this.uniformCache.get(key);
    if (!b) {
      b = this.device.createBuffer({
        size: data.byteLength,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: `${k.name}.uniforms`,
      });
      this.device.queue.writeBuffer(b, 0, data);
      this.uniformCache.set(key, b);
    }
    return b;
  }

  /** Records one dispatch into the current step's command encoder. */
  dispatch(d: Dispatch): void {
    if (this.destroyed) throw new GpuError(`kernel ${d.kernel.name}: device already destroyed`);
    const [gx, gy = 1, gz = 1] = d.groups;
    for (const g of [gx, gy, gz]) {
      if (g > this.maxGroups)
        throw new GpuError(
          `kernel ${d.kernel.name} (${d.what}): ${g} workgroups in one dimension exceeds the limit ${this.maxGroups}`,
        );
    }
    if (gx === 0 || gy === 0 || gz === 0) return;
    const pipe = this.pipeline(d.kernel, d.what);
    const entries: GPUBindGroupEntry[] = [];
    const ub = this.uniformBuffer(d.kernel, d.uniforms);
    if (ub) entries.push({ binding: 0, resource: { buffer: ub } });
    d.kernel.bindings.forEach((b, i) => {
      const buf = d.buffers[b.name];
      if (!buf) throw new GpuError(`kernel ${d.kernel.name} (${d.what}): buffer ${b.name} not bound`);
      const size = this.pool.usedBytes(buf);
      if (size > this.bindingLimit) {
        throw new GpuError(
          `kernel ${d.kernel.name} (${d.what}): binding ${b.name} is ${size} bytes,` +
            ` over the binding limit ${this.bindingLimit} (maxStorageBufferBindingSize ${this.maxBinding});` +
            ` run fewer points per block (see pointsPerBlock)`,
        );
      }
      entries.push({ binding: i + 1, resource: { buffer: buf, size } });
    });
    const bg = this.device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries, label: d.kernel.name });
    const enc = this.commandEncoder();
    const desc: GPUComputePassDescriptor = { label: d.kernel.name };
    this.onDispatch?.(d, desc);
    const pass = enc.beginComputePass(desc);
    pass.setPipeline(pipe);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(gx, gy, gz);
    pass.end();
    this.lastKernel = `${d.kernel.name} (${d.what})`;
    this.dispatchCount++;
  }

  commandEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'step' });
    return this.encoder;
  }

  /** Submits the recorded work. */
  submit(): void {
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
    }
    if (this.uniformCache.size > 4096) {
      for (const b of this.uniformCache.values()) b.destroy();
      this.uniformCache.clear();
    }
  }

  /** Submits, waits for the GPU, and throws any compile, validation or device-lost error, naming the kernel. */
  async sync(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    await this.checkErrors();
  }

  async checkErrors(): Promise<void> {
    const pending = this.pendingErrors.splice(0);
    const msgs = (await Promise.all(pending)).filter((m): m is string => m !== null);
    msgs.push(...this.asyncErrors.splice(0));
    if (msgs.length) throw new GpuError(msgs.join('\n'));
  }

  /** Writes host data into a buffer before any later-recorded dispatch reads it. */
  write(buf: GPUBuffer, data: Float32Array | Uint32Array | Int32Array, offsetBytes = 0): void {
    // queue.writeBuffer runs before the not-yet-submitted encoder: submit first so ordering holds.
    if (this.encoder) this.submit();
    this.device.queue.writeBuffer(buf, offsetBytes, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Copies a buffer's first `bytes` back to the host. */
  async read(buf: GPUBuffer, bytes: number, offsetBytes = 0): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({
      size: Math.max(4, Math.ceil(bytes / 4) * 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: 'readback',
    });
    this.commandEncoder().copyBufferToBuffer(buf, offsetBytes, staging, 0, staging.size);
    this.submit();
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      await this.checkErrors();
      throw e;
    }
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    await this.checkErrors();
    return out;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of this.uniformCache.values()) b.destroy();
    this.uniformCache.clear();
    this.pool.destroyAll();
    this.device.destroy();
  }
}
