// The health gate against real HTTP servers on loopback: 4xx/5xx answers in a row end the wait early; no answer yet keeps waiting.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import net from 'node:net';
import { DEFAULT_HEALTH_FAILURES, healthGate } from '../../scripts/lib/golive/health.ts';
import type { Manifest } from '../../scripts/lib/manifest/manifest.ts';

const servers: http.Server[] = [];

/** A server on a free loopback port whose nth answer (from 0) is status(n). */
async function serve(status: (n: number) => number): Promise<number> {
  let n = 0;
  const srv = http.createServer((_req, res) => {
    res.statusCode = status(n++);
    res.end('x');
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as net.AddressInfo).port;
}

function manifest(health: Record<string, unknown>): Manifest {
  return { health: { path: '/health', timeout: 20, ...health } } as unknown as Manifest;
}

test.after(() => servers.forEach((s) => s.close()));

test('an app answering 500 is refused after health.failures answers, not after the timeout', async () => {
  const port = await serve(() => 500);
  const t0 = Date.now();
  const r = await healthGate(manifest({ failures: 4 }), { port, cwd: '/' }, { intervalMs: 50 });
  assert.is(r.ok, false);
  assert.match(r.detail, /GET \/health answered 500, 4 times in a row: the app is up and says it is not healthy \(health\.failures: 4\)/);
  assert.ok(Date.now() - t0 < 10_000, `gave up early (${Date.now() - t0} ms of a 20 s timeout)`);
});

test('the default gives up after 10 answers in a row; a 404 counts too', async () => {
  assert.is(DEFAULT_HEALTH_FAILURES, 10);
  const port = await serve(() => 404);
  const r = await healthGate(manifest({}), { port, cwd: '/' }, { intervalMs: 20 });
  assert.match(r.detail, /answered 404, 10 times in a row/);
});

test('fewer failures in a row than the limit, then a 200: healthy (a brief 503 while warming up)', async () => {
  const port = await serve((n) => (n < 5 ? 503 : 200));
  const r = await healthGate(manifest({ failures: 6 }), { port, cwd: '/' }, { intervalMs: 20 });
  assert.is(r.ok, true, r.detail);
});

test('failures: 0 waits the whole timeout', async () => {
  const port = await serve(() => 500);
  const t0 = Date.now();
  const r = await healthGate(manifest({ failures: 0, timeout: 1 }), { port, cwd: '/' }, { intervalMs: 20 });
  assert.match(r.detail, /not healthy within 1 s \(last: GET \/health answered 500\)/);
  assert.ok(Date.now() - t0 >= 950);
});

test('no answer yet (connection refused) keeps waiting, whatever failures says', async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  setTimeout(() => {
    const srv = http.createServer((_q, res) => res.end('ok'));
    servers.push(srv);
    srv.listen(port, '127.0.0.1');
  }, 800);
  const r = await healthGate(manifest({ failures: 2, timeout: 10 }), { port, cwd: '/' }, { intervalMs: 20 });
  assert.is(r.ok, true, r.detail);
});

test.run();
