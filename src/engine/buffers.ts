// Buffer pool with byte accounting: free lists keyed by a rounded size, live and peak bytes queryable.
// Reuse is safe inside one command encoder because every write into a pooled buffer is either a
// dispatch (ordered after earlier dispatches) or a queue write issued after a submit (Gpu.write).

const USAGE = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08; /* COPY_DST */

/** Rounds a byte size up to a bucket (2^n or 1.5 * 2^n, at least 256 bytes) so freed buffers are reused. */
export function bucketSize(bytes: number): number {
  const b = Math.max(256, bytes);
  const p = 2 ** Math.floor(Math.log2(b));
  if (b === p) return p;
  if (b <= p * 1.5) return p * 1.5;
  return p * 2;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private sizeOf = new Map<GPUBuffer, number>();
  private used = new Map<GPUBuffer, number>();
  /** Bytes in buffers handed out and not yet released. */
  liveBytes = 0;
  /** Highest liveBytes seen since the last resetPeak(). */
  peakBytes = 0;
  /** Bytes held on the device, free lists included. */
  allocatedBytes = 0;

  /** Buckets are capped at the binding limit so a tensor that fits a binding stays bindable. */
  constructor(
    private device: GPUDevice,
    private maxBinding = Infinity,
  ) {}

  acquire(bytes: number, label: string): GPUBuffer {
    let size = bucketSize(bytes);
    if (size > this.maxBinding && bytes <= this.maxBinding) size = Math.ceil(bytes / 256) * 256;
    const list = this.free.get(size);
    let buf = list?.pop();
    if (!buf) {
      buf = this.device.createBuffer({ size, usage: USAGE, label });
      this.allocatedBytes += size;
    }
    this.sizeOf.set(buf, size);
    this.used.set(buf, Math.max(4, Math.ceil(bytes / 4) * 4));
    this.liveBytes += size;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    return buf;
  }

  release(buf: GPUBuffer): void {
    const size = this.sizeOf.get(buf);
    if (size === undefined) throw new Error(`buffer ${buf.label} released twice or not from this pool`);
    this.sizeOf.delete(buf);
    this.used.delete(buf);
    this.liveBytes -= size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buf);
  }

  /** Bytes the holder asked for (the bound range); the buffer itself may be a larger bucket. */
  usedBytes(buf: GPUBuffer): number {
    return this.used.get(buf) ?? buf.size;
  }

  resetPeak(): void {
    this.peakBytes = this.liveBytes;
  }

  /** Frees the idle buffers (the live ones stay). */
  trim(): void {
    for (const list of this.free.values())
      for (const b of list) {
        this.allocatedBytes -= b.size;
        b.destroy();
      }
    this.free.clear();
  }

  destroyAll(): void {
    this.trim();
    for (const b of this.sizeOf.keys()) b.destroy();
    this.sizeOf.clear();
    this.used.clear();
    this.liveBytes = 0;
  }
}
