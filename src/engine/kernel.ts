// Helpers shared by the WGSL generators.

export type Binding = KernelSpec['bindings'][number];

/** A generator's kernel spec, built once per (generator, arguments) and reused. */
const specCache = new Map<string, KernelSpec>();
export function spec<A extends unknown[]>(make: (...a: A) => KernelSpec, ...args: A): KernelSpec {
  const id = `${make.name}${JSON.stringify(args)}`;
  let s = specCache.get(id);
  if (!s) specCache.set(id, (s = make(...args)));
  return s;
}

/** Storage binding declarations (binding 0 is the uniform block). */
export function storageDecls(bindings: Binding[], types: Record<string, string> = {}): string {
  return bindings
    .map(
      (b, i) =>
        `@group(0) @binding(${i + 1}) var<storage, ${b.write ? 'read_write' : 'read'}>` +
        ` ${b.name}: array<${types[b.name] ?? 'f32'}>;`,
    )
    .join('\n');
}

export function kernel(
  name: string,
  key: string,
  uniforms: KernelSpec['uniforms'],
  bindings: Binding[],
  body: string,
  workgroupSize: number,
  types: Record<string, string> = {},
): KernelSpec {
  const code = `${uniformStruct(uniforms)}${storageDecls(bindings, types)}\n${body}`;
  return { name, key, code, bindings, uniforms, workgroupSize };
}

export const r = (name: string): Binding => ({ name, write: false });
export const w = (name: string): Binding => ({ name, write: true });

/** Linear workgroup index for 1-D work folded into x and y (x <= 65535). */
export const FOLDED_ID = `let wg_lin = wid.y * nwg.x + wid.x;`;
export const MAIN_1D = (wg: number) =>
  `@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3<u32>,` +
  ` @builtin(num_workgroups) nwg: vec3<u32>,` +
  ` @builtin(local_invocation_index) lid: u32)`;

/** Splits a 1-D workgroup count into (x, y) with x <= max. */
export function fold(groups: number, max = 65535): [number, number] {
  if (groups <= max) return [groups, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}

/**
 * The body of a 1-D kernel over `limit` elements, `per` consecutive elements per invocation (1 on a GPU; more on a CPU
 * adapter, where each invocation costs about as much as a few dozen loads). `body` uses `idx`; it must not `return`
 * or `continue` (it runs inside a loop only when per > 1).
 */
export function perElement(wg: number, per: number, limit: string, body: string): string {
  if (per === 1)
    return `
  let idx = wg_lin * ${wg}u + lid;
  if (idx < ${limit}) {
    ${body}
  }`;
  return `
  let first = (wg_lin * ${wg}u + lid) * ${per}u;
  for (var e = 0u; e < ${per}u; e++) {
    let idx = first + e;
    if (idx >= ${limit}) { break; }
    ${body}
  }`;
}

export interface KernelSpec {
  /** Op family and variant, e.g. "conv2d.fwd": used in labels, errors, profiles and LOSS_ATLAS_PRINT_WGSL. */
  name: string;
  /** Compile-time key: only choices baked into the source (tile sizes, fused activation), never shapes. */
  key: string;
  /** WGSL source for that key. */
  code: string;
  /** Storage bindings in binding order (binding 0 is the uniform block when `uniforms` is non-empty). */
  bindings: { name: string; write: boolean }[];
  /** Uniform fields in declaration order. */
  uniforms: [string, 'u32' | 'f32' | 'i32'][];
  workgroupSize: number;
}

/** WGSL uniform struct declaration for a field list. */
export function uniformStruct(fields: KernelSpec['uniforms']): string {
  return (
    `struct Params {\n${fields.map(([n, t]) => `  ${n}: ${t},`).join('\n')}\n}\n` +
    `@group(0) @binding(0) var<uniform> u: Params;\n`
  );
}
