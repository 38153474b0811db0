// The CIFAR-10 downloader against a local HTTP server: progress, size and MD5 check, selective unpacking,
// and the errors for a corrupt archive and for no network.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchArchive } from '../src/data/download.ts';
import { CIFAR10, loadCifar10 } from '../src/data/cifar10.ts';

const dir = mkdtempSync(join(tmpdir(), 'la-dl-'));
let server: Server,
  base = '',
  archive: Buffer;
const members = [...CIFAR10.train, ...CIFAR10.test].map((f) => `${CIFAR10.folder}/${f}`);

// The archive's batches hold 3 records each (a real batch holds 10,000).
process.env.LOSS_ATLAS_CIFAR10_RECORDS = 'any';

beforeAll(async () => {
  const src = join(dir, 'src', CIFAR10.folder);
  mkdirSync(src, { recursive: true });
  for (const f of [...CIFAR10.train, ...CIFAR10.test]) {
    const b = Buffer.alloc(3 * 3073);
    for (let i = 0; i < b.length; i++) b[i] = i % 3073 === 0 ? (i / 3073) % 10 : (i * 7) % 256;
    writeFileSync(join(src, f), b);
  }
  writeFileSync(join(src, 'unwanted.txt'), 'not extracted');
  execFileSync('tar', ['-czf', join(dir, 'c.tar.gz'), '-C', join(dir, 'src'), CIFAR10.folder]);
  archive = readFileSync(join(dir, 'c.tar.gz'));
  server = createServer((req, res) => {
    if (req.url === '/c.tar.gz') {
      res.writeHead(200, { 'content-length': archive.length });
      res.end(archive);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address() as { port: number };
  base = `http://127.0.0.1:${addr.port}`;
});
afterAll(() => server?.close());

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe('CIFAR-10 download', () => {
  it('downloads, verifies and unpacks only the expected members', async () => {
    const out = join(dir, 'ok');
    const files = await fetchArchive(
      { url: `${base}/c.tar.gz`, bytes: archive.length, md5: md5(archive), members },
      join(dir, 'ok.tar.gz'),
      out,
    );
    expect(files.sort()).toEqual([...members].sort());
    expect(existsSync(join(out, 'unwanted.txt'))).toBe(false);
    const d = loadCifar10(out, 'train');
    expect(d.n).toBe(15);
    expect(Array.from(d.labels.subarray(0, 3))).toEqual([0, 1, 2]);
  });

  it('rejects a corrupt download by size or MD5, naming the file, and removes it', async () => {
    const p = join(dir, 'bad.tar.gz');
    await expect(
      fetchArchive(
        { url: `${base}/c.tar.gz`, bytes: archive.length, md5: '0'.repeat(32), members },
        p,
        join(dir, 'bad'),
      ),
    ).rejects.toThrow(/bad\.tar\.gz: MD5 [0-9a-f]{32}, expected 0{32}/);
    expect(existsSync(p)).toBe(false);
    await expect(
      fetchArchive(
        { url: `${base}/c.tar.gz`, bytes: archive.length + 1, md5: md5(archive), members },
        p,
        join(dir, 'bad'),
      ),
    ).rejects.toThrow(new RegExp(`bad\\.tar\\.gz: ${archive.length} bytes, expected ${archive.length + 1}`));
  });

  it('says where to put the files when there is no network', async () => {
    const closed = `http://127.0.0.1:1/c.tar.gz`;
    await expect(
      fetchArchive({ url: closed, bytes: 1, md5: '0', members }, join(dir, 'off.tar.gz'), join(dir, 'off')),
    ).rejects.toThrow(/cannot download .* put it at .*off\.tar\.gz, or put the unpacked files into .*off/);
  });
});
