// Tests two promises of the README at the unit level: a health path answering 3xx passes (2xx/3xx), and the secret mask's format `[secret NAME]`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { httpCheck } from '../../scripts/lib/golive/health.ts';
import { maskSecrets, MIN_SECRET_LENGTH } from '../../scripts/lib/assemble/secrets.ts';

/** A loopback server answering GET /<status> with that status (a 3xx points at a port nobody listens on). */
async function statusServer(): Promise<{ port: number; close: () => void; hits: string[] }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    const status = Number((req.url ?? '/200').slice(1));
    res.writeHead(status, status >= 300 && status < 400 ? { Location: 'http://127.0.0.1:1/nowhere' } : {});
    res.end(`status ${status}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => server.close(), hits };
}

test('health path: 2xx and 3xx pass (a redirect is not followed), 4xx and 5xx fail, and the detail names the status', async () => {
  const s = await statusServer();
  try {
    for (const status of [200, 204, 301, 302, 304, 307, 308]) {
      const r = await httpCheck(s.port, `/${status}`, 2000);
      assert.ok(r.ok, `${status} passes: ${r.detail}`);
      assert.match(r.detail, `answered ${status}`);
    }
    for (const status of [400, 404, 500, 503]) {
      const r = await httpCheck(s.port, `/${status}`, 2000);
      assert.not.ok(r.ok, `${status} fails`);
      assert.match(r.detail, `answered ${status}`);
    }
    assert.equal(s.hits.filter((u) => u === '/302'), ['/302'], 'the redirect was not followed (its target does not exist)');
  } finally {
    s.close();
  }
});

test('secret mask: each env-file value becomes [secret NAME], the longest first; short values and names stay', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-mask-'));
  try {
    const envFile = path.join(dir, '.env');
    fs.writeFileSync(envFile, 'DB_PASSWORD=hunter22\nDATABASE_URL=postgres://app:hunter22@db/app\nDEBUG=1\nMODE=dev\n# comment=hunter22\n');
    const text = 'connect postgres://app:hunter22@db/app failed; password hunter22; DEBUG=1 MODE=dev';
    assert.is(
      maskSecrets(text, envFile),
      'connect [secret DATABASE_URL] failed; password [secret DB_PASSWORD]; DEBUG=1 MODE=dev',
    );
    assert.is(MIN_SECRET_LENGTH, 4, 'values shorter than 4 characters are not masked (README)');
    assert.is(maskSecrets(text, undefined), text, 'no env file: nothing to mask');
    assert.is(maskSecrets(text, path.join(dir, 'missing.env')), text, 'a missing env file: nothing to mask');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
