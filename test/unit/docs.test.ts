// unit: the docs are whole: the manifest reference is what the schema says now, and every relative link in README.md and docs/*.md reaches a file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PAGE, renderReference, SCHEMA, yamlValue } from '../../tools/docs-manifest.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Pages other engineers are adding now (build once, its fleet form, the handover, the everyday verbs), linked from
 * the README and the docs index before they land. The lead engineer removes this list at the merge,
 * once the four files exist; it lets nothing else through.
 */
const COMING = new Set<string>();

test('docs/manifest-reference.md is what config/manifest.schema.json says now', () => {
  const fresh = renderReference(fs.readFileSync(SCHEMA, 'utf8'));
  const onDisk = fs.existsSync(PAGE) ? fs.readFileSync(PAGE, 'utf8') : '';
  if (onDisk !== fresh) {
    const a = onDisk.split('\n');
    const b = fresh.split('\n');
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    assert.unreachable(
      `docs/manifest-reference.md is stale: it is generated from config/manifest.schema.json, which changed (a key added, ` +
        `a description or default changed). Run \`npm run docs\` and commit docs/manifest-reference.md with the schema.\n` +
        `  first difference, line ${i + 1}:\n  on disk:   ${a[i] ?? '(end of file)'}\n  generated: ${b[i] ?? '(end of file)'}`,
    );
  }
});

test('the reference names every key of the schema, nested keys too, with its description', () => {
  const schema = JSON.parse(fs.readFileSync(SCHEMA, 'utf8'));
  const page = renderReference(JSON.stringify(schema));
  for (const [key, s] of Object.entries<any>(schema.properties)) {
    assert.ok(page.includes(`## \`${key}\``), `a section for ${key}`);
    assert.ok(page.includes(s.description), `${key}'s description`);
    for (const [sub, ss] of Object.entries<any>(s.properties ?? {})) {
      assert.ok(page.includes(`### \`${key}.${sub}\``), `a section for ${key}.${sub}`);
      assert.ok(page.includes(ss.description), `${key}.${sub}'s description`);
    }
  }
  assert.ok(page.includes('#### `hooks.after_build[].timeout`'), 'the items of a list of objects (a hook) under the list');
  assert.ok(page.includes('#### `proxy.tls.cert`'), "the keys of a value's object form (tls: { cert, key })");
  assert.match(page, /## `socket`[\s\S]*?- type: one of: `false`, `true`, `preload`\n- optional; default `false`/);
  assert.match(page, /## `health`[\s\S]*?- it needs exactly one of 'path'/);
});

test('a key added to the schema shows up in the page, and a missing description is no crash', () => {
  const schema = JSON.parse(fs.readFileSync(SCHEMA, 'utf8'));
  schema.properties.archive = { description: 'A verified build archive to release.', type: 'string', pattern: '^/', 'x-error': 'must be absolute' };
  schema.properties.bare = { type: 'integer', minimum: 1 };
  const page = renderReference(JSON.stringify(schema));
  assert.match(page, '## `archive`\n\nA verified build archive to release.\n\n- type: string\n- optional\n- the value must be absolute\n');
  assert.match(page, '| [`bare`](#bare) | integer (1–…) | optional |');
});

test('values are written as YAML reads them back', () => {
  assert.is(yamlValue({ path: '/', timeout: 30 }), '{ path: /, timeout: 30 }');
  assert.is(yamlValue('17 3 * * *'), '"17 3 * * *"');
  assert.is(yamlValue(['a', 'b c']), '[a, b c]');
  assert.is(yamlValue('true'), '"true"');
  assert.is(yamlValue(false), 'false');
});

/** The relative links of a Markdown text: [text](file#anchor) outside code; `file` is '' for an anchor on the same page. */
function relativeLinks(markdown: string): { file: string; anchor: string }[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  const out: { file: string; anchor: string }[] = [];
  for (const m of prose.matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(m[1])) continue; // a URL
    const [file, anchor = ''] = m[1].split('#');
    out.push({ file, anchor });
  }
  return out;
}

/** The anchors of a Markdown page's headings, as GitHub makes them (lower case, punctuation dropped, spaces to '-'). */
function anchors(markdown: string): Set<string> {
  const prose = markdown.replace(/```[\s\S]*?```/g, '');
  return new Set([...prose.matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1].trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')));
}

test('the link finder reads Markdown links, not code', () => {
  assert.equal(relativeLinks('see [a](docs/a.md#x), [b](https://e.org/b), [c](#here)\n`[d](d.md)`\n```\n[e](e.md)\n```\n[f](../f.md "t")'), [
    { file: 'docs/a.md', anchor: 'x' },
    { file: '', anchor: 'here' },
    { file: '../f.md', anchor: '' },
  ]);
  assert.equal([...anchors('# The manifest: every key\n## `proxy.tls`\n```\n# not a heading\n```\n### Zero-downtime cutovers: the handover')], [
    'the-manifest-every-key',
    'proxytls',
    'zero-downtime-cutovers-the-handover',
  ]);
});

test('every relative link in README.md and docs/*.md reaches a file or directory of the repository, and its #anchor a heading there', () => {
  const pages = ['README.md', ...fs.readdirSync(path.join(repo, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages) {
    for (const { file: target, anchor } of relativeLinks(fs.readFileSync(path.join(repo, page), 'utf8'))) {
      const file = target ? path.relative(repo, path.resolve(repo, path.dirname(page), decodeURIComponent(target))) : page;
      const shown = `${target}${anchor ? `#${anchor}` : ''}`;
      checked++;
      if (file.startsWith('..')) broken.push(`${page}: ${shown} points outside the repository`);
      else if (!fs.existsSync(path.join(repo, file))) {
        if (!COMING.has(file)) broken.push(`${page}: ${shown} (${file} does not exist)`);
      } else if (anchor && file.endsWith('.md') && !anchors(fs.readFileSync(path.join(repo, file), 'utf8')).has(anchor)) {
        broken.push(`${page}: ${shown} (${file} has no heading with that anchor)`);
      }
    }
  }
  assert.ok(checked > 20, `links were found (${checked})`);
  assert.equal(broken, [], `broken links: fix the link or the file's name:\n  ${broken.join('\n  ')}`);
});

test.run();
