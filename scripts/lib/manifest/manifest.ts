// The app manifest: read the YAML, find every problem (its syntax, the schema, the rules) with its line, apply defaults.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { UsageError } from '../run/errors.ts';
import { cronProblems } from './cron.ts';
import { manifestValidator, type SchemaValidator } from './schema.ts';
import { describe, manifestSchema, validateAgainstSchema } from './messages.ts';
import { semanticProblems } from './rules.ts';
import type { Data, Locate, Manifest, ManifestCheck, ManifestProblem, ProxyConfig, Segment } from './types.ts';

export { cronProblems, manifestSchema };
export { relativePathProblems, rootProblems, userProblems } from './rules.ts';
export type * from './types.ts';

// ---------------------------------------------------------------------------------------------
// Entry points

/** Reads and validates a manifest file; a missing file or any problem throws UsageError (exit 2). */
export async function loadManifest(file: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw unreadable(file, e as NodeJS.ErrnoException);
  }
  return parseManifest(text, file);
}

/** Validates a manifest's text (named `file` in messages); throws UsageError listing every problem. */
export function parseManifest(text: string, file: string): Manifest {
  const { problems, manifest } = checkManifest(text, file);
  if (manifest) return manifest;
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  throw new UsageError(
    `The manifest ${file} has ${count}:\n${problems.map((p) => '  ' + formatProblem(file, p)).join('\n')}`,
    `Fix the fields above in ${file}; config/examples/ has working manifests and config/manifest.schema.json describes every field.`,
  );
}

/** Every problem in a manifest's text, each as "file:line: field: what is wrong"; [] when it is valid. */
export function manifestProblems(text: string, file: string): string[] {
  return checkManifest(text, file).problems.map((p) => formatProblem(file, p));
}

export function formatProblem(file: string, p: ManifestProblem): string {
  return `${file}:${p.line}: ${p.path}: ${p.message}`;
}

/**
 * Parses, validates and completes a manifest; never throws for bad input. `schema` is the schema's
 * validator: the one compiled at run time, or (in the compiled kit, and in the test that compares them)
 * the standalone code scripts/compile.mjs generated.
 */
export function checkManifest(text: string, file: string, schema: SchemaValidator = manifestValidator()): ManifestCheck {
  const lineCounter = new LineCounter();
  // logLevel 'error': yaml never prints a warning of its own (a collection as a key, say); the problems
  // below say what is wrong, the same through tsx and the compiled kit.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, logLevel: 'error' });
  const lineOf = (offset: number) => lineCounter.linePos(offset).line;
  const syntax = yamlProblems(doc, text, lineOf);
  if (syntax.length > 0) return { problems: syntax };
  const locate: Locate = (segments) => lineAt(doc, segments, lineOf);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { problems: [{ line: 1, path: 'YAML', message: `cannot be read: ${(e as Error).message}.` }] };
  }
  const shape = shapeProblem(data, locate);
  if (shape) return { problems: [shape] };
  const values = data as Data;
  const problems = validateAgainstSchema(schema, values, locate);
  problems.push(...semanticProblems(values, locate, problems));
  if (problems.length > 0) return { problems: sortProblems(problems) };
  return { problems, manifest: completeManifest(values, file) };
}

function unreadable(file: string, e: NodeJS.ErrnoException): UsageError {
  const hint = 'Pass --manifest FILE (or set CUTOVER_MANIFEST) to name the app\'s manifest; config/examples/ has working ones.';
  if (e.code === 'ENOENT') return new UsageError(`The manifest ${file} does not exist.`, hint);
  if (e.code === 'EISDIR') return new UsageError(`The manifest ${file} is a directory, not a YAML file.`, hint);
  return new UsageError(`The manifest ${file} cannot be read: ${e.message}.`, hint);
}

// ---------------------------------------------------------------------------------------------
// YAML: syntax, shape and lines

function yamlProblems(doc: Document, text: string, lineOf: (offset: number) => number): ManifestProblem[] {
  return [...doc.errors, ...doc.warnings].map((e) => {
    const line = lineOf(e.pos[0]);
    if (e.code === 'DUPLICATE_KEY') {
      const key = /^[^:\n]*/.exec(text.slice(e.pos[0]))![0].trim();
      return { line, path: key || 'YAML', message: 'is given more than once; keep one.' };
    }
    if (e.code === 'MULTIPLE_DOCS') {
      return { line, path: 'YAML', message: "starts a second document with '---'; a manifest is one document." };
    }
    return { line, path: 'YAML', message: `${e.message.replace(/\.?$/, '')}.` };
  });
}

function shapeProblem(data: unknown, locate: Locate): ManifestProblem | undefined {
  if (data === null || data === undefined) {
    return { line: 1, path: 'manifest', message: 'is empty; it needs at least app, repo and start (see config/examples/).' };
  }
  if (typeof data !== 'object' || Array.isArray(data)) {
    return { line: locate([]), path: 'manifest', message: `must be a mapping of keys to values, not ${describe(data)}.` };
  }
  return undefined;
}

/** The line of the key (in a mapping) or item (in a list) at `segments`, or of the nearest parent that exists. */
function lineAt(doc: Document, segments: Segment[], lineOf: (offset: number) => number): number {
  let node: unknown = doc.contents;
  let line = startLine(node, lineOf) ?? 1;
  for (const segment of segments) {
    if (isAlias(node)) node = node.resolve(doc);
    let next: { at: unknown; value: unknown } | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(segment));
      next = pair && { at: pair.key, value: pair.value };
    } else if (isSeq(node)) {
      const item = node.items[Number(segment)];
      next = item === undefined ? undefined : { at: item, value: item };
    }
    if (!next) break;
    line = startLine(next.at, lineOf) ?? line;
    node = next.value;
  }
  return line;
}

function startLine(node: unknown, lineOf: (offset: number) => number): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? lineOf(range[0]) : undefined;
}

function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

// ---------------------------------------------------------------------------------------------
// Defaults that depend on other fields

function sortProblems(problems: ManifestProblem[]): ManifestProblem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.path.localeCompare(b.path));
}

/** The validated values (schema defaults already filled in by ajv) plus root and user from app. */
function completeManifest(values: Data, file: string): Manifest {
  const m = values as unknown as Omit<Manifest, 'file' | 'root' | 'user'> & { root?: string; user?: string };
  return {
    ...m,
    file: path.resolve(file),
    root: m.root ?? `/usr/local/src/${m.app}`,
    user: m.user ?? m.app,
    hooks: m.hooks ?? {},
    ...(m.proxy ? { proxy: completeProxy(m.proxy as unknown as RawProxy) } : {}),
  };
}

/** The proxy key as the manifest writes it. */
type RawProxy = Pick<ProxyConfig, 'server'> & Partial<Pick<ProxyConfig, 'tls' | 'listen'>> & { server_name: string | string[] };

/** proxy with its defaults: tls auto (Caddy; nginx must say), listen 443 with TLS and 80 without; server_name as a list. */
function completeProxy(p: RawProxy): ProxyConfig {
  const tls = p.tls ?? 'auto';
  const server_names = typeof p.server_name === 'string' ? [p.server_name] : p.server_name;
  return { server: p.server, server_names, tls, listen: p.listen ?? (tls === 'off' ? 80 : 443) };
}
