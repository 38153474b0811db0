// What the readers of data sets and run files share: DataError (a missing or bad input file; its message names the
// file, what was expected and what was found), reading a file's bytes, and reading a JSON object.
import { platform } from '../platform/index.ts';

export class DataError extends Error {}

/** The bytes of path; a missing file, a directory or an unreadable file is a DataError naming it and `what`. */
export function readBytes(path: string, what: string): Uint8Array {
  try {
    return platform().readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' || code === 'ENOTDIR'
        ? 'file not found'
        : code === 'EISDIR'
          ? 'a directory, not a file'
          : code === 'EACCES' || code === 'EPERM'
            ? 'not readable (permission denied)'
            : `cannot be read (${(e as Error).message})`;
    throw new DataError(`${path}: ${why} (${what} expected)`);
  }
}

/** path as a JSON object: a missing, truncated or non-JSON file, or JSON other than an object, names the file. */
export function readJsonObject(path: string, what: string): Record<string, unknown> {
  const text = new TextDecoder().decode(readBytes(path, what));
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message,
      at = /at position (\d+)/.exec(msg);
    // truncated: the parser ran out of text (an empty file, or the error at its end)
    const cut = /Unexpected end/.test(msg) || (at !== null && Number(at[1]) >= text.trimEnd().length);
    throw new DataError(
      `${path}: ${cut ? 'truncated JSON' : 'not valid JSON'} (${text.length} bytes; ${what} expected; ${msg})`,
    );
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new DataError(`${path}: a JSON object expected (${what}), found ${Array.isArray(raw) ? 'a list' : raw}`);
  return raw as Record<string, unknown>;
}

/** What a field of a JSON file must be: its test and how the error says it. */
export const FIELD = {
  count: { ok: (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0, want: 'an integer >= 0' },
  seconds: { ok: (v: unknown) => Number.isFinite(v) && (v as number) >= 0, want: 'a number >= 0' },
  number: { ok: (v: unknown) => Number.isFinite(v), want: 'a finite number' },
  numbers: { ok: (v: unknown) => Array.isArray(v) && v.every(Number.isFinite), want: 'a list of finite numbers' },
  boolean: { ok: (v: unknown) => typeof v === 'boolean', want: 'true or false' },
} as const;

/** Checks that each named field of a JSON object read from path is what `fields` says. */
export function checkFields(
  path: string,
  o: Record<string, unknown>,
  fields: Record<string, (typeof FIELD)[keyof typeof FIELD]>,
): void {
  for (const [k, f] of Object.entries(fields)) {
    if (!f.ok(o[k]))
      throw new DataError(`${path}: "${k}" should be ${f.want}, got ${JSON.stringify(o[k]) ?? 'nothing'}`);
  }
}
