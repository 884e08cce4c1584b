// The example web app cutover deploys: health, version, forwarded-header and asset endpoints, a long-lived upgraded connection, graceful SIGTERM, test switches.
//
// Environment: PORT (default 3000), HOST (default 127.0.0.1), STARTUP_DELAY_MS (default 300),
// LISTEN_FDS=1 (socket activation: listen on the inherited fd 3; LISTEN_PID is not checked, so
// `npm start` works too), IGNORE_LISTEN_FDS=1 (listen on PORT even then, like an app that cannot
// take fd 3: what cutover's preload is for), GREETING (echoed by GET /).
// A file BEHAVIOUR next to this file switches test behaviours (words separated by whitespace):
//   crash            exit 1 at start, before listening
//   unhealthy        listen, but GET /health answers 500
//   slow-start=<ms>  wait <ms> before listening (overrides STARTUP_DELAY_MS)
//   hang             never listen (the process stays up)
//   no-fd3           same as IGNORE_LISTEN_FDS=1
//   exit-on-sigterm  exit at once on SIGTERM, whatever is in flight (as some frameworks do; the preload holds it back)
//   build-fail       (read by build.js) the build exits 1
import http from 'node:http';
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const appDir = path.dirname(fileURLToPath(import.meta.url));
const MAX_SLOW_MS = 60_000;

function readAppFile(name) {
  try {
    return readFileSync(path.join(appDir, name), 'utf8');
  } catch {
    return null;
  }
}

function parseBehaviour(text) {
  const behaviour = { crash: false, unhealthy: false, hang: false, noFd3: false, exitOnSigterm: false, slowStartMs: undefined };
  for (const word of (text ?? '').split(/\s+/).filter(Boolean)) {
    const slow = /^slow-start=(\d+)$/.exec(word);
    if (slow) behaviour.slowStartMs = Number(slow[1]);
    else if (word === 'crash' || word === 'unhealthy' || word === 'hang') behaviour[word] = true;
    else if (word === 'no-fd3') behaviour.noFd3 = true;
    else if (word === 'exit-on-sigterm') behaviour.exitOnSigterm = true;
    else if (word !== 'build-fail') console.error(`BEHAVIOUR: ignoring unknown switch "${word}"`);
  }
  return behaviour;
}

/** What this build says about itself: dist/version.json when built, else the VERSION file. */
function readBuildInfo() {
  const built = readAppFile(path.join('dist', 'version.json'));
  if (built) return { built: true, ...JSON.parse(built) };
  return { built: false, version: (readAppFile('VERSION') ?? 'unknown').trim(), asset: null };
}

/** The release directory's name: the service's WorkingDirectory is the `active` symlink. */
function releaseName() {
  return path.basename(realpathSync(process.cwd()));
}

function startupDelayMs(behaviour) {
  if (behaviour.slowStartMs !== undefined) return behaviour.slowStartMs;
  const fromEnv = Number(process.env.STARTUP_DELAY_MS ?? 300);
  return Number.isFinite(fromEnv) && fromEnv >= 0 ? fromEnv : 300;
}

function listenTarget(behaviour) {
  const ignoreFds = behaviour.noFd3 || process.env.IGNORE_LISTEN_FDS === '1';
  if (!ignoreFds && Number(process.env.LISTEN_FDS) >= 1) return { fd: 3 };
  const port = Number(process.env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PORT must be a port number, not "${process.env.PORT}"`);
  }
  return { port, host: process.env.HOST ?? '127.0.0.1' };
}

const state = { shuttingDown: false, inFlight: 0, upgraded: new Set() };

function send(res, status, type, body) {
  // While stopping, close each connection after its response so the process can exit promptly.
  if (state.shuttingDown) res.setHeader('Connection', 'close');
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function makeHandler({ info, release, behaviour }) {
  const assetPath = info.asset ? `/assets/${info.asset}` : null;
  const summary = {
    version: info.version,
    release,
    pid: process.pid,
    greeting: process.env.GREETING ?? null,
    asset: assetPath,
    builtAt: info.builtAt ?? null,
  };
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://app.invalid');
    if (req.method === 'POST' && url.pathname === '/echo') return echo(req, res, info);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'GET only (and POST /echo)\n');
    if (url.pathname === '/health') {
      return behaviour.unhealthy ? send(res, 500, 'text/plain', 'unhealthy\n') : send(res, 200, 'text/plain', 'ok\n');
    }
    if (url.pathname === '/') return send(res, 200, 'application/json', JSON.stringify(summary) + '\n');
    if (url.pathname === '/version') return send(res, 200, 'text/plain', `${info.version}\n`);
    if (url.pathname === '/slow') return slow(res, url, release);
    if (url.pathname === '/headers') return send(res, 200, 'application/json', JSON.stringify(forwarded(req, info)) + '\n');
    if (assetPath && url.pathname === assetPath) {
      return send(res, 200, 'text/javascript', readAppFile(path.join('dist', info.asset)) ?? '');
    }
    return send(res, 404, 'text/plain', 'not found\n');
  };
}

/** POST /echo: reads the body (at most 64 KiB) and says how long it was, so a test can send requests a proxy must not retry. */
function echo(req, res, info) {
  let bytes = 0;
  req.on('data', (chunk) => {
    bytes += chunk.length;
    if (bytes > 65536) req.destroy();
  });
  req.on('end', () => send(res, 200, 'application/json', JSON.stringify({ version: info.version, bytes }) + '\n'));
}

/** GET /headers: what a reverse proxy in front told the app (the tests of the public entrance read it). */
function forwarded(req, info) {
  const h = req.headers;
  return {
    version: info.version,
    host: h.host ?? null,
    forwardedFor: h['x-forwarded-for'] ?? null,
    forwardedProto: h['x-forwarded-proto'] ?? null,
    forwardedHost: h['x-forwarded-host'] ?? null,
    remoteAddress: req.socket.remoteAddress ?? null,
  };
}

/** GET /slow?ms=N answers after N ms: an in-flight request for the graceful-stop tests. */
function slow(res, url, release) {
  const ms = Math.min(Math.max(Number(url.searchParams.get('ms')) || 0, 0), MAX_SLOW_MS);
  setTimeout(() => send(res, 200, 'text/plain', `slept ${ms} ms in ${release}\n`), ms);
}

/**
 * GET /lines with `Upgrade: line-echo`: a long-lived connection, as a WebSocket is (without its framing):
 * after the 101 answer, every line the client sends comes back as "<release> <line>". On SIGTERM the
 * app says "bye: reconnect" on each and closes it, so clients move to the new release.
 */
function acceptUpgrades(server, release) {
  server.on('upgrade', (req, socket) => {
    const url = new URL(req.url ?? '/', 'http://app.invalid');
    if (url.pathname !== '/lines' || String(req.headers.upgrade).toLowerCase() !== 'line-echo' || state.shuttingDown) {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: line-echo\r\nConnection: Upgrade\r\n\r\n');
    state.upgraded.add(socket);
    socket.on('close', () => state.upgraded.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    // Bytes, not setEncoding: Node refuses a new encoding on a socket the HTTP server handed over.
    socket.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
        socket.write(`${release} ${buffered.slice(0, i)}\n`);
        buffered = buffered.slice(i + 1);
      }
    });
  });
}

function countInFlight(server) {
  server.on('request', (_req, res) => {
    state.inFlight++;
    res.on('close', () => state.inFlight--);
  });
}

// What cutover asks of every app on SIGTERM: stop accepting new connections, finish the requests
// already in flight, then exit 0. systemd sends SIGTERM on stop/restart and waits TimeoutStopSec
// before SIGKILL; with socket activation, connections arriving meanwhile wait in the kernel's
// queue for the next process instead of being refused.
function stopGracefully(server, signal) {
  if (state.shuttingDown) return;
  state.shuttingDown = true;
  console.log(`${signal}: not accepting new connections; finishing ${state.inFlight} request(s) in flight, closing ${state.upgraded.size} upgraded connection(s)`);
  for (const socket of state.upgraded) socket.end('bye: reconnect\n');
  if (!server.listening) process.exit(0);
  server.close(() => {
    console.log('all requests finished; exiting');
    process.exit(0);
  });
  // Not at once: during a handover this process may have accepted connections from the shared socket
  // whose request has not arrived yet, and Node counts those as idle. Give them a moment to send it.
  setTimeout(() => server.closeIdleConnections?.(), 1000);
}

function start() {
  const behaviour = parseBehaviour(readAppFile('BEHAVIOUR'));
  if (behaviour.crash) {
    console.error('crashing at start on purpose (BEHAVIOUR says crash)');
    process.exit(1);
  }
  const info = readBuildInfo();
  const release = releaseName();
  const server = http.createServer(makeHandler({ info, release, behaviour }));
  countInFlight(server);
  acceptUpgrades(server, release);
  if (behaviour.exitOnSigterm) {
    // Like some frameworks' own handler: exit at once, whatever is in flight.
    process.on('SIGTERM', () => process.exit(0));
  } else {
    for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => stopGracefully(server, signal));
  }
  if (behaviour.hang) {
    console.error('never listening on purpose (BEHAVIOUR says hang)');
    setInterval(() => {}, 60_000);
    return;
  }
  const target = listenTarget(behaviour);
  server.on('error', (err) => {
    console.error(`cannot listen: ${err.message}`);
    process.exit(1);
  });
  setTimeout(() => {
    if (state.shuttingDown) return;
    server.listen(target, () => {
      const where = target.fd !== undefined ? 'inherited socket fd 3' : `${target.host}:${server.address().port}`;
      console.log(`version ${info.version} (release ${release}, pid ${process.pid}) listening on ${where}`);
    });
  }, startupDelayMs(behaviour));
}

start();
