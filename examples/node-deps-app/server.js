// The deps example app: the same endpoints as examples/node-app, served by express with real npm dependencies.
//
// Environment: PORT (default 3000), HOST (default 127.0.0.1), STARTUP_DELAY_MS (default 300),
// LISTEN_FDS=1 (socket activation: listen on the inherited fd 3), IGNORE_LISTEN_FDS=1 (bind PORT
// even then, like an app that needs cutover's preload), GREETING (echoed by GET /).
// A file BEHAVIOUR next to this file: `crash` (exit 1 at start) or `unhealthy` (/health answers 500).
import http from 'node:http';
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import compression from 'compression';
import dayjs from 'dayjs';
import express from 'express';

const appDir = path.dirname(fileURLToPath(import.meta.url));
const read = (name) => {
  try {
    return readFileSync(path.join(appDir, name), 'utf8');
  } catch {
    return null;
  }
};

const behaviour = new Set((read('BEHAVIOUR') ?? '').split(/\s+/).filter(Boolean));
if (behaviour.has('crash')) {
  console.error('crashing at start on purpose (BEHAVIOUR says crash)');
  process.exit(1);
}

const built = read(path.join('dist', 'version.json'));
const version = built ? JSON.parse(built).version : (read('VERSION') ?? 'unknown').trim();
const startedAt = dayjs();
const summary = {
  version,
  release: path.basename(realpathSync(process.cwd())),
  pid: process.pid,
  greeting: process.env.GREETING ?? null,
  builtAt: built ? JSON.parse(built).builtAt : null,
};

const app = express();
app.disable('x-powered-by');
app.use(compression());
app.get('/health', (_req, res) => (behaviour.has('unhealthy') ? res.status(500).type('text').send('unhealthy\n') : res.type('text').send('ok\n')));
app.get('/', (_req, res) => res.json({ ...summary, startedAt: startedAt.toISOString(), up: `${dayjs().diff(startedAt, 'second')} s` }));
app.get('/version', (_req, res) => res.type('text').send(`${version}\n`));

let stopping = false;
const server = http.createServer(app);
server.on('request', (_req, res) => stopping && res.setHeader('Connection', 'close'));

// On SIGTERM: stop accepting, finish the requests in flight, exit 0 (what cutover asks of every app).
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    if (!server.listening) process.exit(0);
    server.close(() => process.exit(0));
    server.closeIdleConnections?.();
  });
}

function target() {
  if (process.env.IGNORE_LISTEN_FDS !== '1' && Number(process.env.LISTEN_FDS) >= 1) return { fd: 3 };
  return { port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' };
}

const delay = Number(process.env.STARTUP_DELAY_MS ?? 300);
server.on('error', (err) => {
  console.error(`cannot listen: ${err.message}`);
  process.exit(1);
});
setTimeout(() => {
  if (stopping) return;
  const t = target();
  server.listen(t, () => console.log(`version ${version} (pid ${process.pid}) listening on ${t.fd !== undefined ? 'fd 3' : `${t.host}:${t.port}`}`));
}, Number.isFinite(delay) && delay >= 0 ? delay : 300);
