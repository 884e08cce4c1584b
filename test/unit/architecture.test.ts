// The code's shape holds: imports in scripts/lib only flow down its layers, every module says its purpose in its first line and stays under 400 lines, and docs/architecture.md's module map is current.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kitDir } from '../helpers/kit.ts';
// @ts-expect-error: a plain ES module without types
import { LAYERS, renderPage } from '../../tools/docs-architecture.mjs';

const lib = path.join(kitDir, 'scripts', 'lib');
const layers = LAYERS as string[];

function modules(): string[] {
  const out: string[] = [];
  for (const folder of fs.readdirSync(lib)) {
    const dir = path.join(lib, folder);
    if (!fs.statSync(dir).isDirectory()) continue;
    for (const name of fs.readdirSync(dir)) if (name.endsWith('.ts')) out.push(path.join(dir, name));
  }
  return out.sort();
}

/** The relative imports of a module (static, dynamic and type-only), resolved to absolute paths. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => path.resolve(path.dirname(file), m[1]));
}

const layerOf = (file: string) => layers.indexOf(path.relative(lib, file).split(path.sep)[0]);

test('every folder of scripts/lib has its place in the layers, and scripts/lib holds no loose module', () => {
  const entries = fs.readdirSync(lib);
  assert.equal(entries.filter((e) => !fs.statSync(path.join(lib, e)).isDirectory()), [], 'modules belong in a folder');
  assert.equal(entries.filter((e) => !layers.includes(e)), [], `folders missing from LAYERS in tools/docs-architecture.mjs (${layers.join(', ')})`);
});

test('imports only flow down the layers: no module imports from a folder after its own', () => {
  const upward: string[] = [];
  for (const file of modules()) {
    for (const target of importsOf(file)) {
      if (!target.startsWith(lib + path.sep)) continue;
      if (layerOf(target) > layerOf(file)) upward.push(`${path.relative(kitDir, file)} imports ${path.relative(kitDir, target)}`);
    }
  }
  assert.equal(upward, [], `imports that run back up (the order is ${layers.join(' → ')}):\n${upward.join('\n')}`);
});

test('every module starts with its one-line purpose and has at most 400 lines', () => {
  for (const file of [...modules(), ...fs.readdirSync(path.join(kitDir, 'scripts')).filter((n) => n.endsWith('.ts')).map((n) => path.join(kitDir, 'scripts', n))]) {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    assert.match(lines[0], /^\/\/ \S.{20,}/, `${path.relative(kitDir, file)} starts with a comment that says what it is for`);
    assert.ok(lines.length - 1 <= 400, `${path.relative(kitDir, file)} has ${lines.length - 1} lines: split it by concern`);
  }
});

test("docs/architecture.md's module map is current", () => {
  const page = path.join(kitDir, 'docs', 'architecture.md');
  const text = fs.readFileSync(page, 'utf8');
  assert.ok(renderPage(text) === text, 'docs/architecture.md is stale (a module was added, moved or changed its purpose line): run `npm run docs:architecture`');
});

test.run();
