// The one app environment: the manifest's env, then the env file (as EnvironmentFile= overrides Environment=), then PORT; no preload outside the unit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { appEnvironment, APP_PATH, parseEnvFile } from '../../scripts/lib/assemble/appenv.ts';
import { parseManifest } from '../../scripts/lib/manifest/manifest.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-appenv-'));
const envFile = path.join(dir, '.env');
fs.writeFileSync(envFile, '# secrets\nSECRET_KEY="s3cret value"\nGREETING=from the file\nexport TOKEN=abc\n');
const m = parseManifest(
  'app: shop\nrepo: /srv/git/shop.git\nstart: node build\nport: 4100\nsocket: preload\nenv: { GREETING: from the manifest, NODE_OPTIONS: --max-old-space-size=256, NODE_ENV: production }\n',
  'test.yaml',
);

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('parseEnvFile reads KEY=VALUE lines, quotes, export and comments', () => {
  assert.equal(parseEnvFile(fs.readFileSync(envFile, 'utf8')), { SECRET_KEY: 's3cret value', GREETING: 'from the file', TOKEN: 'abc' });
});

test('install and build: HOME and the npm cache, the env file over the manifest, PORT last; no preload', () => {
  const env = appEnvironment(m, { home: '/srv/shop/cache', envFile });
  assert.equal(env, {
    PATH: APP_PATH,
    LANG: 'C.UTF-8',
    HOME: '/srv/shop/cache',
    npm_config_cache: '/srv/shop/cache/npm',
    npm_config_update_notifier: 'false',
    GREETING: 'from the file',
    NODE_OPTIONS: '--max-old-space-size=256',
    NODE_ENV: 'production',
    SECRET_KEY: 's3cret value',
    TOKEN: 'abc',
    PORT: '4100',
  });
});

test('the health command: the same variables on the port being checked, never the operator\'s PATH', () => {
  const saved = process.env.PATH;
  process.env.PATH = '/home/operator/bin:/usr/bin';
  try {
    const env = appEnvironment(m, { port: 41234, envFile });
    assert.is(env.PORT, '41234');
    assert.is(env.PATH, APP_PATH);
    assert.is(env.SECRET_KEY, 's3cret value');
    assert.not.ok('HOME' in env);
  } finally {
    process.env.PATH = saved;
  }
});

test('a missing env file (not written yet) gives the manifest\'s env', () => {
  assert.is(appEnvironment(m, { envFile: path.join(dir, 'nope') }).GREETING, 'from the manifest');
});

test.run();
