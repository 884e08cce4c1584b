// Build step of the example app: writes dist/version.json and a content-hashed dist/app.<hash>.js.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const appDir = path.dirname(fileURLToPath(import.meta.url));
const distDir = path.join(appDir, 'dist');

function readVersion() {
  return readFileSync(path.join(appDir, 'VERSION'), 'utf8').trim();
}

/** The browser asset of this version; its name changes whenever its content does. */
function assetSource(version) {
  return `// example app asset\nwindow.APP_VERSION = ${JSON.stringify(version)};\n`;
}

function contentHash(text) {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/** BEHAVIOUR `build-fail` makes the build fail, so tests can make a release that never gets ready. */
function buildShouldFail() {
  try {
    return /(^|\s)build-fail(\s|$)/.test(readFileSync(path.join(appDir, 'BEHAVIOUR'), 'utf8'));
  } catch {
    return false;
  }
}

function build() {
  if (buildShouldFail()) {
    console.error('build failed on purpose (BEHAVIOUR says build-fail)');
    process.exitCode = 1;
    return;
  }
  const version = readVersion();
  const source = assetSource(version);
  const asset = `app.${contentHash(source)}.js`;
  rmSync(distDir, { recursive: true, force: true });
  mkdirSync(distDir, { recursive: true });
  writeFileSync(path.join(distDir, asset), source);
  const manifest = { version, asset, builtAt: new Date().toISOString() };
  writeFileSync(path.join(distDir, 'version.json'), JSON.stringify(manifest, null, 2) + '\n');
  console.log(`built version ${version}: dist/version.json, dist/${asset}`);
}

build();
