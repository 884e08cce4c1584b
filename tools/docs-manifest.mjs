#!/usr/bin/env node
// Writes docs/manifest-reference.md from config/manifest.schema.json (the contract): every key, nested keys, type, default, allowed values and description. `npm run docs` runs it; test/unit/docs.test.ts fails when the page is stale.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SCHEMA = path.join(here, '..', 'config', 'manifest.schema.json');
export const PAGE = path.join(here, '..', 'docs', 'manifest-reference.md');

/** A value as it is written in a YAML manifest (flow style): strings bare when YAML reads them back as the same string. */
export function yamlValue(v) {
  if (Array.isArray(v)) return `[${v.map(yamlValue).join(', ')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v);
    return entries.length === 0 ? '{}' : `{ ${entries.map(([k, x]) => `${k}: ${yamlValue(x)}`).join(', ')} }`;
  }
  if (typeof v === 'string') {
    const plain = /^[A-Za-z0-9_./@+-][A-Za-z0-9_./@+ -]*$/.test(v) && !/^(true|false|null|yes|no|on|off|~|[-+]?[0-9.]+)$/i.test(v) && !v.endsWith(' ');
    return plain ? v : JSON.stringify(v);
  }
  return String(v);
}

/** The schema of a key with its $ref resolved (the key's own words win over the definition's). */
function resolve(schema, root) {
  if (!schema || !schema.$ref) return schema ?? {};
  const name = schema.$ref.replace(/^#\/definitions\//, '');
  const def = root.definitions?.[name];
  if (!def) throw new Error(`manifest schema: ${schema.$ref} names no definition`);
  const { $ref: _, ...own } = schema;
  return { ...resolve(def, root), ...own };
}

/** A short type, e.g. `string`, `integer (1–600)`, `list of string`, `one of: caddy, nginx`. */
function typeOf(s, root) {
  s = resolve(s, root);
  if (s.enum) return `one of: ${s.enum.map((v) => `\`${yamlValue(v)}\``).join(', ')}`;
  if (s.if && s.then && s.else) return `${typeOf({ ...s.if, ...s.then }, root)}, or ${typeOf(s.else, root)}`;
  const range = s.minimum !== undefined || s.maximum !== undefined ? ` (${s.minimum ?? '…'}–${s.maximum ?? '…'})` : '';
  if (s.type === 'array') {
    const count = s.minItems !== undefined || s.maxItems !== undefined ? ` (${s.minItems ?? 0}–${s.maxItems ?? '…'} items)` : '';
    return `list of ${typeOf(s.items ?? {}, root)}${count}`;
  }
  if (s.type === 'object') return s.additionalProperties && typeof s.additionalProperties === 'object' ? `map of name → ${typeOf(s.additionalProperties, root)}` : 'object';
  return `${s.type ?? 'any'}${range}`;
}

/** The rules a value must follow, in the words the validator uses (x-error), each once. */
function rules(s, root, seen = new Set()) {
  s = resolve(s, root);
  const out = [];
  const add = (text) => {
    if (text && !seen.has(text)) {
      seen.add(text);
      out.push(text);
    }
  };
  if (s.pattern && s['x-error']) add(`the value ${s['x-error']}`);
  else if (s['x-error'] && s.oneOf) add(`it ${s['x-error']}`);
  if (s['x-type-error']) add(`the value ${s['x-type-error']}`);
  for (const p of s.propertyNames?.allOf ?? (s.propertyNames ? [s.propertyNames] : [])) if (p['x-error']) add(`a variable name is refused when it ${p['x-error']}`);
  if (s.additionalProperties && typeof s.additionalProperties === 'object') out.push(...rules(s.additionalProperties, root, seen));
  if (s.type === 'array' && s.items) out.push(...rules(s.items, root, seen));
  if (s.if && s.then) out.push(...rules({ ...s.if, ...s.then }, root, seen));
  if (s.else && s.else.type !== 'object') out.push(...rules(s.else, root, seen));
  return out;
}

/** The keys of an object schema, for the nested sections: its properties, its `else` object's, or its array items' object's. */
function children(s, root) {
  s = resolve(s, root);
  if (s.properties) return { props: s.properties, required: s.required ?? [], suffix: '' };
  if (s.else?.properties) return { props: s.else.properties, required: s.else.required ?? [], suffix: '' };
  const items = s.type === 'array' && s.items ? resolve(s.items, root) : undefined;
  if (items?.properties) return { props: items.properties, required: items.required ?? [], suffix: '[]' };
  return undefined;
}

function section(key, s, required, root, depth, lines) {
  const r = resolve(s, root);
  lines.push(`${'#'.repeat(Math.min(depth + 2, 6))} \`${key}\``, '');
  if (r.description) lines.push(r.description, '');
  lines.push(`- type: ${typeOf(r, root)}`);
  lines.push(`- ${required ? '**required**' : 'optional'}${r.default !== undefined ? `; default \`${yamlValue(r.default)}\`` : ''}`);
  for (const rule of rules(r, root)) lines.push(`- ${rule}`);
  lines.push('');
  const kids = children(r, root);
  if (kids) {
    for (const [name, child] of Object.entries(kids.props)) {
      section(`${key}${kids.suffix}.${name}`, child, kids.required.includes(name), root, depth + 1, lines);
    }
  }
}

/** The whole page, from the schema's text: a table of the top-level keys, then one section a key, nested keys under their parent. */
export function renderReference(schemaText) {
  const root = JSON.parse(schemaText);
  const required = root.required ?? [];
  const lines = [
    '<!-- Generated from config/manifest.schema.json by `npm run docs` (tools/docs-manifest.mjs): do not edit by hand. Change the schema, then run `npm run docs`. -->',
    '# The manifest: every key',
    '',
    `${root.description} A YAML file, checked against \`config/manifest.schema.json\` (the contract) before anything changes; this page is generated from the schema's own descriptions. How the keys work together, with a full example: [manifest.md](manifest.md).`,
    '',
    'Unknown keys are refused (with a "did you mean" when one is close), and every problem is reported at once with its line.',
    '',
    '| key | type | required / default |',
    '| --- | --- | --- |',
  ];
  for (const [key, s] of Object.entries(root.properties)) {
    const r = resolve(s, root);
    const def = required.includes(key) ? '**required**' : r.default !== undefined ? `\`${yamlValue(r.default)}\``.replace(/\|/g, '\\|') : 'optional';
    lines.push(`| [\`${key}\`](#${key}) | ${typeOf(r, root).replace(/\|/g, '\\|')} | ${def} |`);
  }
  lines.push('');
  for (const [key, s] of Object.entries(root.properties)) section(key, s, required.includes(key), root, 0, lines);
  return lines.join('\n').replace(/\n+$/, '\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const page = renderReference(fs.readFileSync(SCHEMA, 'utf8'));
  const before = fs.existsSync(PAGE) ? fs.readFileSync(PAGE, 'utf8') : '';
  if (before === page) console.log(`docs: ${path.relative(process.cwd(), PAGE)} is up to date.`);
  else {
    fs.writeFileSync(PAGE, page);
    console.log(`docs: wrote ${path.relative(process.cwd(), PAGE)} from config/manifest.schema.json.`);
  }
}
