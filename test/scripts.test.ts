// The shell scripts under scripts/: apt-mirror.sh on fake /etc/apt trees (both source formats), setup.sh's
// bookworm-backports step with such a tree, and gpu-check.sh / device-check.sh on what they do without a GPU
// (stage selection, skipped stages, failure, the packed results). Mirrors here are made-up .invalid URIs.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'scripts-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A fake apt configuration folder with the given files (paths relative to it). */
function aptTree(files: Record<string, string>): string {
  const dir = join(tmp, `apt-${n++}`);
  mkdirSync(join(dir, 'sources.list.d'), { recursive: true });
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  return dir;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}, cwd = root) {
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const aptMirror = (dir: string, ...args: string[]) =>
  run('bash', ['scripts/apt-mirror.sh', ...args], { LOSS_ATLAS_APT_DIR: dir });

const DEBIAN = 'http://mirror.invalid/debian';
const SECURITY = 'http://security.invalid/debian-security';
const OTHER = 'https://other.invalid/repo';

describe('apt-mirror.sh', () => {
  const oneLineFormat =
    'one-line format: takes the bookworm main source, skipping options, deb-src, comments, security and other repos';
  it(oneLineFormat, () => {
    const dir = aptTree({
      'sources.list': [
        '# deb http://commented.invalid/debian bookworm main',
        `deb [arch=amd64 signed-by=/usr/share/keyrings/other.gpg] ${OTHER} bookworm stable`,
        `deb ${SECURITY} bookworm-security main`,
        `deb-src ${DEBIAN}-src bookworm main`,
        `deb [ arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ]` +
          ` ${DEBIAN}/ bookworm main contrib  # trailing comment`,
        `deb ${DEBIAN}-later bookworm main`,
        '',
      ].join('\n'),
    });
    const r = aptMirror(dir);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${DEBIAN}\n`);
    expect(aptMirror(dir, '--line').stdout).toBe(
      `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${DEBIAN} bookworm-backports main\n`,
    );
  });

  const deb822Format =
    'deb822 format: several stanzas, a security one first, a disabled one, comments inside a stanza, several URIs';
  it(deb822Format, () => {
    const dir = aptTree({
      'sources.list.d/debian.sources': [
        'Types: deb',
        `URIs: ${SECURITY}`,
        'Suites: bookworm-security',
        'Components: main',
        '',
        '# switched off',
        'Types: deb',
        'URIs: http://disabled.invalid/debian',
        'Suites: bookworm',
        'Components: main',
        'Enabled: no',
        '',
        'types: deb-src deb',
        '# a comment inside the stanza',
        `uris: ${DEBIAN} http://second.invalid/debian`,
        'suites: bookworm bookworm-updates',
        'components: main non-free-firmware',
        'signed-by:',
        ' -----BEGIN PGP PUBLIC KEY BLOCK-----',
        ' .',
        ' AAAA',
        ' -----END PGP PUBLIC KEY BLOCK-----',
        '',
      ].join('\n'),
    });
    const r = aptMirror(dir);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${DEBIAN}\n`);
    // an inline key cannot go on a one-line source: no signed-by then
    expect(aptMirror(dir, '--line').stdout).toBe(`deb ${DEBIAN} bookworm-backports main\n`);
    const list = aptMirror(dir, '--list')
      .stdout.trim()
      .split('\n')
      .map((l) => l.split('\t').slice(1, 4).join(' '));
    expect(list).toEqual([
      `${SECURITY} bookworm-security main`,
      `${DEBIAN} bookworm main non-free-firmware`,
      `${DEBIAN} bookworm-updates main non-free-firmware`,
      'http://second.invalid/debian bookworm main non-free-firmware',
      'http://second.invalid/debian bookworm-updates main non-free-firmware',
    ]);
  });

  const bothFormats =
    'both formats: reads sources.list, then sources.list.d/*.list and *.sources in name order, ignoring other files';
  it(bothFormats, () => {
    const files = {
      'sources.list': `deb ${SECURITY} bookworm-security main\n`,
      'sources.list.d/b-debian.sources':
        `Types: deb\nURIs: ${DEBIAN}\nSuites: bookworm\nComponents: main\n` +
        `Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
      'sources.list.d/a-other.list': `deb ${OTHER} nodistro main\n`,
      'sources.list.d/c-later.list': `deb http://later.invalid/debian bookworm main\n`,
      'sources.list.d/0-old.list.disabled': `deb http://old.invalid/debian bookworm main\n`,
    };
    const dir = aptTree(files);
    expect(aptMirror(dir).stdout).toBe(`${DEBIAN}\n`);
    expect(aptMirror(dir, '--line').stdout).toBe(
      `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${DEBIAN} bookworm-backports main\n`,
    );
    // a bookworm source in sources.list comes first
    const first = aptTree({ ...files, 'sources.list': `deb http://first.invalid/debian bookworm main\n` });
    expect(aptMirror(first).stdout).toBe('http://first.invalid/debian\n');
  });

  it('--has SUITE sees an enabled source of the suite in either format, not a disabled one', () => {
    const base = {
      'sources.list.d/debian.sources': `Types: deb\nURIs: ${DEBIAN}\nSuites: bookworm\nComponents: main\n`,
    };
    expect(aptMirror(aptTree(base), '--has', 'bookworm-backports').status).toBe(1);
    expect(
      aptMirror(
        aptTree({ ...base, 'sources.list.d/bp.list': `deb ${DEBIAN} bookworm-backports main\n` }),
        '--has',
        'bookworm-backports',
      ).status,
    ).toBe(0);
    expect(
      aptMirror(
        aptTree({
          ...base,
          'sources.list.d/bp.sources': `Types: deb\nURIs: ${DEBIAN}\nSuites: bookworm-backports\nComponents: main\n`,
        }),
        '--has',
        'bookworm-backports',
      ).status,
    ).toBe(0);
    expect(
      aptMirror(
        aptTree({
          ...base,
          'sources.list.d/bp.sources':
            `Types: deb\n` +
            `URIs: ${DEBIAN}\n` +
            `Suites: bookworm-backports\n` +
            `Components: main\n` +
            `Enabled: no\n`,
        }),
        '--has',
        'bookworm-backports',
      ).status,
    ).toBe(1);
    expect(
      aptMirror(
        aptTree({ ...base, 'sources.list.d/bp.list.save': `deb ${DEBIAN} bookworm-backports main\n` }),
        '--has',
        'bookworm-backports',
      ).status,
    ).toBe(1);
    expect(
      aptMirror(
        aptTree({ ...base, 'sources.list': `# deb ${DEBIAN} bookworm-backports main\n` }),
        '--has',
        'bookworm-backports',
      ).status,
    ).toBe(1);
  });

  it('no usable source: a clear message naming the files it read, exit 1', () => {
    const dir = aptTree({
      'sources.list.d/debian.sources':
        `Types: deb\nURIs: ${SECURITY}\nSuites: bookworm-security\nComponents: main\n\n` +
        `Types: deb\nURIs: ${DEBIAN}\nSuites: trixie\nComponents: main\n\n` +
        `Types: deb-src\nURIs: ${DEBIAN}\nSuites: bookworm\nComponents: main\n`,
      'sources.list.d/other.list': `deb ${OTHER} bookworm stable\n`,
      'sources.list.d/off.list.disabled': `deb ${DEBIAN} bookworm main\n`,
    });
    for (const mode of ['--uri', '--line']) {
      const r = aptMirror(dir, mode);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/no apt source serves Debian's bookworm suite/);
      expect(r.stderr).toContain(`${join(dir, 'sources.list')} (not there)`);
      expect(r.stderr).toContain(join(dir, 'sources.list.d/debian.sources'));
      expect(r.stderr).toContain(join(dir, 'sources.list.d/other.list'));
      expect(r.stderr).not.toContain('off.list.disabled');
    }
    // nothing at all: the places apt reads are named
    const empty = aptTree({});
    const r = aptMirror(empty);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${join(empty, 'sources.list.d')}/*.sources (not there)`);
  });

  it('usage errors exit 2', () => {
    expect(aptMirror(aptTree({}), '--bogus').status).toBe(2);
    expect(aptMirror(aptTree({}), '--has').status).toBe(2);
  });
});

// setup.sh runs its adapter step only when Dawn finds no adapter: no Vulkan driver then. Skipped where node_modules
// is stale (setup.sh would run npm ci) or where an adapter is found anyway.
const noDriver = { VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '/nonexistent/icd.json' };
const stale =
  !existsSync(join(root, 'node_modules/.package-lock.json')) ||
  statSync(join(root, 'package-lock.json')).mtimeMs > statSync(join(root, 'node_modules/.package-lock.json')).mtimeMs;
const adapterAnyway = run('node', ['scripts/probe-adapter.mjs'], noDriver).status === 0;

describe.skipIf(stale || adapterAnyway)(
  'setup.sh with LOSS_ATLAS_APT_DIR (prints the commands, installs nothing)',
  () => {
    const setup = (dir: string) => run('bash', ['scripts/setup.sh'], { ...noDriver, LOSS_ATLAS_APT_DIR: dir });

    it('the bookworm-backports source takes the mirror of the bookworm source', () => {
      const dir = aptTree({
        'sources.list.d/debian.sources':
          `Types: deb\nURIs: ${SECURITY}\nSuites: bookworm-security\nComponents: main\n\n` +
          `Types: deb\nURIs: ${DEBIAN}\nSuites: bookworm bookworm-updates\nComponents: main\n`,
      });
      const r = setup(dir);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(
        `echo 'deb ${DEBIAN} bookworm-backports main' > ${dir}/sources.list.d/loss-atlas-bookworm-backports.list`,
      );
      expect(r.stderr).toContain('apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1');
      expect(existsSync(join(dir, 'sources.list.d/loss-atlas-bookworm-backports.list'))).toBe(false);
    });

    it('no source is added when bookworm-backports is there already', () => {
      const dir = aptTree({
        'sources.list.d/bp.sources': `Types: deb\nURIs: ${DEBIAN}\nSuites: bookworm-backports\nComponents: main\n`,
      });
      const r = setup(dir);
      expect(r.status).toBe(1);
      expect(r.stderr).not.toContain('echo ');
      expect(r.stderr).toContain('apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1');
    });

    it('no bookworm source: says which files it read and exits 1', () => {
      const dir = aptTree({ 'sources.list': `deb ${SECURITY} bookworm-security main\n` });
      const r = setup(dir);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/no apt source serves Debian's bookworm suite/);
      expect(r.stderr).toContain(join(dir, 'sources.list'));
      expect(r.stderr).not.toContain('echo ');
    });
  },
);

describe('gpu-check.sh and device-check.sh without a GPU', () => {
  const noTorch = { PYTHON: '/nonexistent/python3' };
  const noData = join(tmp, 'no-data');
  // a Fashion-MNIST folder that passes the stages' check (its file is never read in these tests)
  const fakeData = join(tmp, 'data', 'fashion-mnist');
  mkdirSync(fakeData, { recursive: true });
  writeFileSync(join(fakeData, 'train-images-idx3-ubyte.gz'), '');
  const gpuCheck = (args: string[], env: Record<string, string> = {}) =>
    run('bash', ['scripts/gpu-check.sh', ...args], { ...noTorch, ...env });

  it('rejects unknown stages and arguments', () => {
    const r = gpuCheck(['--stages', 'gradcheck,nope', '--out', join(tmp, 'gc-bad')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("unknown stage 'nope'");
    expect(gpuCheck([], { STAGES: 'bench,fast' }).stderr).toContain("unknown stage 'fast'");
    expect(gpuCheck(['--frobnicate']).status).toBe(2);
    expect(gpuCheck(['--list']).stdout.trim().split('\n')).toEqual([
      'gradcheck',
      'torch',
      'bench',
      'kernels',
      'cifar',
      'profile',
      'pattern',
    ]);
    const d = run('bash', ['scripts/device-check.sh'], { OUT: join(tmp, 'dc-bad'), STAGES: 'torch,nope' });
    expect(d.status).toBe(2);
    expect(d.stderr).toContain("unknown stage 'nope'");
  });

  it('skips what cannot run here and says why; skipped stages do not fail the run', () => {
    const out = join(tmp, 'gc-skip');
    const r = gpuCheck(['--stages', 'profile,torch', '--out', out, '--data', noData]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/== torch: skipped: no PyTorch/);
    expect(r.stdout).toMatch(/== profile: skipped: no Fashion-MNIST in/);
    const stages = readFileSync(join(out, 'stages.txt'), 'utf8');
    expect(stages).toMatch(/summary:\n {2}torch +skipped +no PyTorch .*\n {2}profile +skipped +no Fashion-MNIST/);
    // stages with under 20 s left of the deadline are skipped
    const d = gpuCheck(['--stages', 'gradcheck', '--out', join(tmp, 'gc-deadline'), '--deadline', '5']);
    expect(d.status).toBe(0);
    expect(d.stdout).toMatch(/== gradcheck: skipped: \d+ s left of the deadline/);
  });

  it('a failed stage makes the exit status 1 and is named in the summary', () => {
    const out = join(tmp, 'gc-fail');
    const r = gpuCheck([
      '--stages',
      'torch,pattern',
      '--out',
      out,
      '--data',
      fakeData,
      '--resume',
      join(tmp, 'no-such-run'),
    ]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(
      /summary:\n {2}torch +skipped .*\n {2}pattern +failed +rc 1 after \d+ s \(see pattern\.txt\)/,
    );
    expect(existsSync(join(out, 'pattern.txt'))).toBe(true);
  });

  const deviceCheckPacks =
    'device-check.sh packs the results after every stage into $OUT/device-check.tar.gz and exits 1 on a failure';
  it(deviceCheckPacks, () => {
    const OUT = join(tmp, 'dc');
    const r = run('bash', ['scripts/device-check.sh'], { ...noTorch, OUT, STAGES: 'torch,profile' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`results: ${OUT}/device-check.tar.gz`);
    const files = run('tar', ['-tzf', join(OUT, 'device-check.tar.gz')]).stdout.split('\n');
    expect(files).toEqual(expect.arrayContaining(['./stages.txt', './nvidia-smi.txt']));
    expect(readFileSync(join(OUT, 'stages.txt'), 'utf8')).toMatch(/deadline 480 s[\s\S]*== torch: skipped: no PyTorch/);

    const OUT2 = join(tmp, 'dc-fail');
    const f = run('bash', ['scripts/device-check.sh'], {
      ...noTorch,
      OUT: OUT2,
      STAGES: 'pattern',
      DEVICE_DATA_DIR: dirname(fakeData),
      PATTERN_RESUME: join(tmp, 'no-such-run'),
    });
    expect(f.status).toBe(1);
    expect(run('tar', ['-tzf', join(OUT2, 'device-check.tar.gz')]).stdout).toContain('./pattern.txt');
  });
});
