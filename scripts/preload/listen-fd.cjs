// Preload (node --require) that makes a Node app's own listen(PORT) adopt the socket systemd passes as fd 3.
//
// cutover loads it through NODE_OPTIONS when the manifest says `socket: preload`. A socket unit owns
// the port, so connections wait in the kernel's queue across cutovers; apps that do not read
// LISTEN_FDS themselves (Next.js's `next start`, a plain `server.listen(process.env.PORT)`) keep
// working unchanged: their FIRST listen on PORT (or on fd 3 itself, for an app that reads LISTEN_FDS)
// listens on the inherited socket instead of binding the port (which the socket unit holds). Any
// other listen passes through untouched. Without LISTEN_FDS (or when the socket is meant for another
// process) this file changes nothing.
//
// The warm-up: with CUTOVER_WARMUP_PATH set (the manifest's health path), the app first listens on a
// private loopback port, and only once it has answered a GET of that path there (any status: the
// health gate judges it) does it take connections from the shared socket. At a handover the old
// release keeps the whole queue until then, so no request waits in a process that is still booting
// (Next.js's `next start` listens before its request handler is ready). CUTOVER_WARMUP_TIMEOUT_MS
// caps the wait; after it the socket is adopted anyway and the health gate decides.
// CommonJS, no dependencies, Node 18+.
'use strict';

const fs = require('node:fs');
const net = require('node:net');

/** sd_listen_fds(3): passed sockets start at fd 3. */
const SD_LISTEN_FDS_START = 3;

/**
 * listen() on the inherited socket calls listen(2) again, which sets the queue length anew: keep the
 * socket unit's Backlog= (the kernel caps it at net.core.somaxconn) unless the app asks for another.
 */
const DEFAULT_BACKLOG = 4096;

/** Whether `pid` is this process or one of its ancestors (npm start → sh → node keeps the socket). */
function isSelfOrAncestor(pid) {
  let current = process.pid;
  for (let depth = 0; depth < 16 && current > 1; depth++) {
    if (current === pid) return true;
    if (current === process.pid) {
      current = process.ppid;
      continue;
    }
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
      const stat = fs.readFileSync(`/proc/${current}/stat`, 'utf8');
      current = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return false;
    }
  }
  return false;
}

/** Whether systemd passed this process a socket on fd 3, per sd_listen_fds(3), tolerantly. */
function inheritedSocket(env) {
  const fds = Number(env.LISTEN_FDS);
  if (!Number.isInteger(fds) || fds < 1) return false;
  // LISTEN_PID names the process systemd started. With `sh -c 'exec node …'` that is node itself; with
  // `npm start` it is an ancestor whose fd 3 we inherited. Missing LISTEN_PID is accepted too.
  if (env.LISTEN_PID !== undefined && env.LISTEN_PID !== '') {
    const pid = Number(env.LISTEN_PID);
    if (!Number.isInteger(pid) || !isSelfOrAncestor(pid)) return false;
  }
  // A process forked by Node (child_process.fork, cluster) may have its IPC channel on fd 3: not ours.
  // Node removes NODE_CHANNEL_FD from the environment before preloads run; process.channel remains.
  const channel = process.channel;
  if (channel && (channel.fd === undefined || channel.fd === SD_LISTEN_FDS_START)) return false;
  if (env.NODE_CHANNEL_FD === String(SD_LISTEN_FDS_START)) return false;
  try {
    return fs.fstatSync(SD_LISTEN_FDS_START).isSocket();
  } catch {
    return false;
  }
}

/** Whether a listen() call asks for the inherited socket itself: listen({ fd: 3 }). */
function asksForInheritedFd(args) {
  const first = args[0];
  return first !== null && typeof first === 'object' && !('_handle' in first) && first.fd === SD_LISTEN_FDS_START;
}

/** The port a listen() call asks for, or null when it listens on a path, a handle or an fd. */
function requestedPort(args) {
  const first = args[0];
  if (typeof first === 'number') return first;
  if (typeof first === 'string') return /^[0-9]+$/.test(first) ? Number(first) : null;
  if (first !== null && typeof first === 'object' && !('_handle' in first) && !('fd' in first) && !('path' in first)) {
    if (first.port === undefined || first.port === null) return null;
    const port = Number(first.port);
    return Number.isInteger(port) ? port : null;
  }
  return null;
}

/** How long a drain waits for requests on connections accepted just before the listener closed. */
const DRAIN_QUIET_MS = 500;

/**
 * A graceful stop for the adopted server, whatever the app does on SIGTERM. At a handover the old and
 * the new process accept from one queue, so the old one may have accepted connections whose request
 * is still on its way; an app (or framework) that exits or drops idle connections at once on SIGTERM
 * would reset them. So the app's own SIGTERM handlers are held back: on SIGTERM the server stops
 * accepting, answers what it has accepted (with Connection: close), and only once no request has been
 * in flight for DRAIN_QUIET_MS do the app's handlers run (or, with none, the process exits 0).
 */
function drainOnSigterm(getServer) {
  const EventEmitter = require('node:events');
  const held = [];
  // The app's SIGTERM listeners are kept here instead of on process, to run once the drain is over.
  for (const name of ['on', 'addListener', 'prependListener', 'once', 'prependOnceListener']) {
    const original = process[name];
    process[name] = function (event, listener) {
      if (event !== 'SIGTERM') return original.call(this, event, listener);
      const once = name === 'once' || name === 'prependOnceListener';
      held.push(once ? { listener, once } : { listener, once: false });
      return this;
    };
  }
  let stopping = false;
  EventEmitter.prototype.on.call(process, 'SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    const finish = () => {
      if (held.length === 0) process.exit(0);
      for (const h of held.splice(0)) h.listener('SIGTERM');
    };
    const server = getServer();
    if (!server || !server.__cutoverDrain) return finish();
    server.__cutoverDrain.stopping = true;
    server.__cutoverDrain.lastActivity = Date.now();
    server.close();
    const timer = setInterval(() => {
      const d = server.__cutoverDrain;
      if (d.inFlight > 0 || Date.now() - d.lastActivity < DRAIN_QUIET_MS) return;
      clearInterval(timer);
      if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
      finish();
    }, 50);
  });
}

/**
 * The adopted server closes once, for everyone: the first close() stops it taking connections (the
 * warm-up's front on the inherited socket too); a later close(callback), such as the app's own
 * graceful stop after the drain closed the server, gets its callback once the server has closed, as
 * if it had closed it itself. Without this, Node answers a second close() with ERR_SERVER_NOT_RUNNING,
 * and an app that waits for its close callback (adapter-node does, with a SHUTDOWN_TIMEOUT timer
 * keeping the process alive) stays up until that timer ends.
 */
function closeOnce(server, adoption) {
  const close = server.close;
  let closed = false;
  server.once('close', () => {
    closed = true;
  });
  server.close = function closeAdopted(callback) {
    if (adoption.closing) {
      if (typeof callback === 'function') {
        if (closed) process.nextTick(callback);
        else server.once('close', () => callback());
      }
      return this;
    }
    adoption.closing = true;
    if (adoption.front) adoption.front.close();
    return close.call(this, callback);
  };
}

/** Counts the adopted server's requests in flight; while stopping, each answer closes its connection. */
function trackInFlight(server) {
  const d = { inFlight: 0, lastActivity: Date.now(), stopping: false };
  server.__cutoverDrain = d;
  server.on('request', (_req, res) => {
    d.inFlight++;
    d.lastActivity = Date.now();
    if (d.stopping && !res.headersSent) res.setHeader('Connection', 'close');
    res.on('close', () => {
      d.inFlight--;
      d.lastActivity = Date.now();
    });
  });
}

/** How long one warm-up GET may take before it is sent again. */
const WARMUP_REQUEST_MS = 5000;
/** Between two warm-up GETs that found nothing listening yet or failed. */
const WARMUP_RETRY_MS = 100;

/** GETs urlPath on 127.0.0.1:privatePort until an answer (any status) or the deadline; calls done once. */
function warmUp(privatePort, hostHeader, urlPath, deadline, done) {
  const http = require('node:http');
  const attempt = () => {
    if (Date.now() >= deadline) return done(`no answer within CUTOVER_WARMUP_TIMEOUT_MS`);
    const req = http.get(
      { host: '127.0.0.1', port: privatePort, path: urlPath, agent: false, timeout: Math.max(1, Math.min(WARMUP_REQUEST_MS, deadline - Date.now())), headers: { host: hostHeader, 'user-agent': 'cutover-warmup', connection: 'close' } },
      (res) => {
        res.resume();
        done(`answered ${res.statusCode}`);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => setTimeout(attempt, WARMUP_RETRY_MS));
  };
  attempt();
}

function install() {
  const port = Number(process.env.PORT);
  if (!Number.isInteger(port) || port <= 0) return;
  if (!inheritedSocket(process.env)) return;
  const warmupPath = process.env.CUTOVER_WARMUP_PATH;
  const warmupMs = Number(process.env.CUTOVER_WARMUP_TIMEOUT_MS) > 0 ? Number(process.env.CUTOVER_WARMUP_TIMEOUT_MS) : 60_000;

  const originalListen = net.Server.prototype.listen;
  let adopted = false;
  let adoptedServer;
  drainOnSigterm(() => adoptedServer);

  /** Listens on the inherited socket: the app's own server, or (after a warm-up) a front that hands it each connection. */
  function listenOnInherited(server, options, callback) {
    return callback ? originalListen.call(server, options, callback) : originalListen.call(server, options);
  }

  /**
   * The warm-up: the app's server listens on a private loopback port (its listen callback and
   * 'listening' event come from that); once it has answered warmupPath there, a front server takes
   * the inherited socket and hands every connection to the app's server. Closing the app's server
   * closes the front too (closeOnce), so a draining process stops taking connections from the queue.
   */
  function listenAfterWarmUp(server, adoption, options, callback) {
    // The app asked for PORT, and that is where its clients reach it: its address() says so (the
    // socket unit's 127.0.0.1:PORT, or the front's own address once it listens), not the private port.
    const privateAddress = server.address.bind(server);
    server.address = () => (adoption.front && adoption.front.listening ? adoption.front.address() : { address: '127.0.0.1', family: 'IPv4', port });
    server.once('listening', () => {
      const privatePort = privateAddress().port;
      warmUp(privatePort, `127.0.0.1:${port}`, warmupPath, Date.now() + warmupMs, () => {
        if (adoption.closing) return;
        const front = new net.Server({ pauseOnConnect: false });
        front.on('connection', (socket) => server.emit('connection', socket));
        front.on('error', (e) => server.emit('error', e));
        adoption.front = front;
        listenOnInherited(front, options);
      });
    });
    const priv = { host: '127.0.0.1', port: 0 };
    return callback ? originalListen.call(server, priv, callback) : originalListen.call(server, priv);
  }

  net.Server.prototype.listen = function listen(...args) {
    if (adopted || (requestedPort(args) !== port && !asksForInheritedFd(args))) return originalListen.apply(this, args);
    adopted = true;
    adoptedServer = this;
    /** The warm-up's front server on the inherited socket, once there is one; whether the server is closing. */
    const adoption = { front: undefined, closing: false };
    closeOnce(this, adoption);
    trackInFlight(this);
    // The socket belongs to this process now: children must not try to adopt it again.
    delete process.env.LISTEN_FDS;
    delete process.env.LISTEN_PID;
    delete process.env.LISTEN_FDNAMES;
    const callback = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
    const options = { fd: SD_LISTEN_FDS_START, backlog: DEFAULT_BACKLOG };
    const first = args[0];
    if (first !== null && typeof first === 'object') {
      // Keep what still applies to an already-bound socket; host and port are the socket unit's.
      if (first.backlog !== undefined) options.backlog = first.backlog;
      if (first.signal !== undefined) options.signal = first.signal;
    } else {
      // listen(port, backlog) or listen(port, host, backlog), read the way net.Server reads them.
      const backlog = [args[1], args[2]].map(Number).find((n) => Number.isInteger(n) && n > 0);
      if (backlog !== undefined) options.backlog = backlog;
    }
    return warmupPath ? listenAfterWarmUp(this, adoption, options, callback) : listenOnInherited(this, options, callback);
  };
}

install();
