// The schema's verdicts as sentences: each ajv error turned into one problem about its field, with its line.
import type { ErrorObject } from 'ajv';
import type { SchemaValidator } from './schema.ts';
import { manifestValidator } from './schema.ts';
import type { Data, Locate, ManifestProblem, Segment } from './types.ts';

/** The manifest's schema (config/manifest.schema.json) as an object. */
export function manifestSchema(): Data {
  return manifestValidator().schema;
}

export function validateAgainstSchema({ validate }: SchemaValidator, values: Data, locate: Locate): ManifestProblem[] {
  if (validate(values)) return [];
  const errors = validate.errors ?? [];
  // A value of the wrong type makes every other complaint about it noise.
  const mistyped = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  const seen = new Set<string>();
  const problems: ManifestProblem[] = [];
  for (const error of errors) {
    if (error.keyword !== 'type' && mistyped.has(error.instancePath)) continue;
    const p = schemaProblem(error, locate);
    if (!p || seen.has(`${p.path}\0${p.message}`)) continue;
    seen.add(`${p.path}\0${p.message}`);
    problems.push(p);
  }
  return problems;
}

/** Turns one ajv error into a sentence about the field it concerns, or undefined for a duplicate. */
function schemaProblem(e: ErrorObject, locate: Locate): ManifestProblem | undefined {
  const at = pointerSegments(e.instancePath);
  const problem = (segments: Segment[], message: string, line = locate(segments)): ManifestProblem => ({
    line,
    path: displayPath(segments),
    message,
  });
  const parent = (e.parentSchema ?? {}) as Data;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(e.params.additionalProperty);
      return problem([...at, key], unknownKeyMessage(key, Object.keys((parent.properties ?? {}) as Data)));
    }
    case 'required': {
      if (e.schemaPath.includes('/oneOf/')) return undefined; // the oneOf error says it better
      const key = String(e.params.missingProperty);
      const about = ((parent.properties as Record<string, Data> | undefined)?.[key]?.description ?? '') as string;
      return problem([...at, key], `is required${about ? ` (${describeField(about)})` : ''}.`, locate(at));
    }
    case 'propertyNames':
      return undefined; // the pattern/not error under it names the key
    case 'if':
      return undefined; // the then/else error under it says what is wrong
    case 'type':
      // A field that takes more than one shape says which in its x-type-error (server_name: a name or a list).
      if (typeof parent['x-type-error'] === 'string') return problem(at, `${parent['x-type-error']}; found ${describe(e.data)}.`);
      return problem(at, typeMessage(String(e.params.type), e.data));
    case 'minItems':
      return problem(at, `must list at least ${e.params.limit} (it lists ${(e.data as unknown[]).length}).`);
    case 'maxItems':
      return problem(at, `must list at most ${e.params.limit}.`);
    case 'enum':
      return problem(at, `must be ${orList((e.params.allowedValues as unknown[]).map(show))}, not ${describe(e.data)}.`);
    case 'minimum':
      return problem(at, `must be at least ${e.params.limit}, not ${describe(e.data)}.`);
    case 'maximum':
      return problem(at, `must be at most ${e.params.limit}, not ${describe(e.data)}.`);
    case 'pattern':
    case 'not':
    case 'oneOf': {
      const why = (parent['x-error'] as string | undefined) ?? e.message ?? 'is not valid';
      if (e.propertyName !== undefined) {
        return problem([...at, e.propertyName], `the name ${show(e.propertyName)} ${why}.`);
      }
      return problem(at, `${why}${e.keyword === 'oneOf' ? '' : `; found ${describe(e.data)}${stringDetail(e.data)}`}.`);
    }
    default:
      return problem(at, `${e.message ?? 'is not valid'}.`);
  }
}

function pointerSegments(pointer: string): Segment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

/** "health.timeout", "shared[1]", "env.NODE_ENV"; the whole file is "manifest". */
export function displayPath(segments: Segment[]): string {
  if (segments.length === 0) return 'manifest';
  return segments
    .map((s, i) => {
      if (typeof s === 'number') return `[${s}]`;
      if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(s)) return i === 0 ? s : `.${s}`;
      return `[${JSON.stringify(s)}]`;
    })
    .join('');
}

function unknownKeyMessage(key: string, known: string[]): string {
  const guess = closest(key, known);
  if (guess) return `unknown key ${show(key)} (did you mean ${show(guess)}?).`;
  return `unknown key ${show(key)}; the keys here are ${known.join(', ')}.`;
}

/** The known key nearest to a typo, if one is near enough to be a likely meaning. */
function closest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key.toLowerCase(), k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(1, Math.min(3, Math.floor(key.length / 3))) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

function typeMessage(type: string, data: unknown): string {
  const want = { string: 'a string', integer: 'a whole number', number: 'a number', boolean: 'true or false', object: 'a mapping', array: 'a list' }[type] ?? type;
  let message = `must be ${want}, not ${describe(data)}`;
  if (type === 'string' && (typeof data === 'number' || typeof data === 'boolean')) message += `; quote it: "${data}"`;
  if (type === 'string' && data === null) message += '; write "" for an empty string';
  return message + '.';
}

/** A schema description, shortened to the part that says what the field is. */
function describeField(description: string): string {
  return description.replace(/;[^;]*$/, '').replace(/\.$/, '').replace(/^The /, 'the ');
}

export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (typeof value === 'string') return show(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Uint8Array) return 'binary data';
  return 'a mapping';
}

/** A value as it would be quoted in a message, with control characters made visible. */
export function show(value: unknown): string {
  if (typeof value !== 'string') return String(value);
  const quoted = JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
  return quoted.includes("'") ? quoted : `'${quoted.slice(1, -1).replace(/\\"/g, '"')}'`;
}

/** What is wrong with a one-line string, when that is not obvious from the value itself. */
function stringDetail(value: unknown): string {
  if (typeof value !== 'string') return '';
  if (value.includes('\n')) return ', which contains a newline';
  if (value.includes('\r')) return ', which contains a carriage return';
  if (value.includes('\0')) return ', which contains a NUL byte';
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(value)) return ', which contains a control character';
  if (value.trim() === '') return ', which is empty';
  if (value.startsWith('-')) return ", which starts with '-'";
  return '';
}

function orList(items: string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}
