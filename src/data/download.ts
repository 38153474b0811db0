// Downloads an archive with a progress bar, verifies its size and MD5, and unpacks only the expected members of a
// .tar.gz. Used by `npm run data:cifar10`.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { DataError } from './idx.ts';

export interface ArchiveSpec {
  url: string;
  bytes: number;
  md5: string;
  /** Member paths inside the tar to extract (others are skipped). */
  members: string[];
}

function bar(done: number, total: number): string {
  const w = 30,
    f = Math.min(w, Math.round((done / total) * w));
  return `[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${(done / 2 ** 20).toFixed(1)} / ${(total / 2 ** 20).toFixed(1)} MiB`;
}

export async function md5File(path: string): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Fetches url into path (via a .part file), printing progress to stderr. */
export async function download(url: string, path: string, expectBytes: number, where: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new DataError(
      `cannot download ${url} (${(e as Error).cause ?? (e as Error).message}).` +
        ` Without network access, download the archive elsewhere and put it at ${path},` +
        ` or put the unpacked files into ${where}.`,
    );
  }
  if (!res.ok || !res.body)
    throw new DataError(
      `cannot download ${url}: HTTP ${res.status}. Put the archive at ${path}, or the unpacked files into ${where}.`,
    );
  mkdirSync(dirname(path), { recursive: true });
  const part = `${path}.part`;
  const out = createWriteStream(part);
  let done = 0,
    last = 0;
  const tty = process.stderr.isTTY;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    done += chunk.length;
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    const now = Date.now();
    if (now - last > 500) {
      last = now;
      process.stderr.write(tty ? `\r${bar(done, expectBytes)}` : `${bar(done, expectBytes)}\n`);
    }
  }
  await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
  process.stderr.write(`${tty ? '\r' : ''}${bar(done, expectBytes)}\n`);
  renameSync(part, path);
}

/** Size and MD5 must match; the error names the file and what was found. */
export async function verify(path: string, spec: ArchiveSpec): Promise<void> {
  const size = statSync(path).size;
  if (size !== spec.bytes)
    throw new DataError(
      `${path}: ${size} bytes, expected ${spec.bytes} (truncated or a different file); delete it and download again`,
    );
  const md5 = await md5File(path);
  if (md5 !== spec.md5)
    throw new DataError(`${path}: MD5 ${md5}, expected ${spec.md5} (corrupt download); delete it and download again`);
}

/** Streams a .tar.gz and writes only the listed members into dir (by base name). Returns the files written. */
export async function extractMembers(archive: string, members: string[], dir: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const want = new Set(members);
  const written: string[] = [];
  let buf = Buffer.alloc(0);
  let current: { name: string; left: number; pad: number; out: ReturnType<typeof createWriteStream> | null } | null =
    null;
  const gz = createReadStream(archive).pipe(createGunzip());
  for await (const chunk of gz) {
    buf = Buffer.concat([buf, chunk as Buffer]);
    for (;;) {
      if (current) {
        const take = Math.min(current.left, buf.length);
        if (take > 0) {
          if (current.out && !current.out.write(buf.subarray(0, take)))
            await new Promise<void>((r) => current!.out!.once('drain', () => r()));
          buf = buf.subarray(take);
          current.left -= take;
        }
        if (current.left > 0) break;
        if (buf.length < current.pad) break;
        buf = buf.subarray(current.pad);
        if (current.out) {
          const o = current.out;
          await new Promise<void>((r, j) => o.end((e?: Error | null) => (e ? j(e) : r())));
          renameSync(`${join(dir, current.name.split('/').pop()!)}.part`, join(dir, current.name.split('/').pop()!));
          written.push(current.name);
        }
        current = null;
      }
      if (buf.length < 512) break;
      const h = buf.subarray(0, 512);
      buf = buf.subarray(512);
      if (h.every((b) => b === 0)) continue; // end-of-archive blocks
      const field = (a: number, b: number) => h.toString('latin1', a, b).replace(/\0.*$/s, '');
      const prefix = h.toString('latin1', 257, 263) === 'ustar\0' ? field(345, 500) : '';
      const name = (prefix ? `${prefix}/` : '') + field(0, 100);
      const size = parseInt(field(124, 136).trim() || '0', 8);
      if (!Number.isFinite(size)) throw new DataError(`${archive}: corrupt tar header for ${name}`);
      const type = String.fromCharCode(h[156]);
      const keep = (type === '0' || type === '\0') && want.has(name);
      current = {
        name,
        left: size,
        pad: (512 - (size % 512)) % 512,
        out: keep ? createWriteStream(`${join(dir, name.split('/').pop()!)}.part`) : null,
      };
    }
  }
  const miss = members.filter((m) => !written.includes(m));
  if (miss.length) throw new DataError(`${archive}: members missing from the archive: ${miss.join(', ')}`);
  return written;
}

/** Download (unless the archive is already there), verify, unpack. */
export async function fetchArchive(spec: ArchiveSpec, archivePath: string, dir: string): Promise<string[]> {
  if (!existsSync(archivePath)) {
    console.error(`downloading ${spec.url} -> ${archivePath}`);
    await download(spec.url, archivePath, spec.bytes, dir);
  }
  try {
    await verify(archivePath, spec);
  } catch (e) {
    rmSync(archivePath, { force: true });
    throw e;
  }
  return extractMembers(archivePath, spec.members, dir);
}
