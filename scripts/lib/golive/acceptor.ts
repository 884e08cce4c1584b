// A health probe through the app's shared socket that knows which slot answered it (two slots accept from one queue).
import net from 'node:net';
import type { CheckResult } from './health.ts';
import { acceptedInodes, acceptedInodesBySs, socketHolderFinder } from '../state/procfs.ts';

export interface SlotProbe extends CheckResult {
  /** The unit whose process accepted the connection; undefined when none did in time. */
  acceptedBy?: string;
  /** ms from the connection's establishment until a process had accepted it (when one did). */
  acceptedAfterMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function connect(port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => socket.destroy(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Sends one GET on an open connection and reads the status line. */
function get(socket: net.Socket, port: number, urlPath: string, timeoutMs: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    let head = '';
    const done = (r: CheckResult) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, detail: `GET ${urlPath}: no answer within ${timeoutMs} ms` }), timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      head += chunk;
      const m = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(head);
      if (m) done({ ok: Number(m[1]) >= 200 && Number(m[1]) < 400, detail: `GET ${urlPath} answered ${m[1]}`, status: Number(m[1]) });
      else if (head.includes('\n')) done({ ok: false, detail: `GET ${urlPath}: not an HTTP answer` });
    });
    socket.on('error', (e) => done({ ok: false, detail: `GET ${urlPath}: ${e.message}` }));
    socket.on('end', () => done({ ok: false, detail: `GET ${urlPath}: the connection closed without an answer` }));
    socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUser-Agent: cutover-health\r\nConnection: close\r\n\r\n`);
  });
}

/**
 * Which unit's process accepted each open connection, polled (one kernel query per look for all of them:
 * `ss` with a port filter, else one read of /proc/net/tcp) until `wantUnit` took one, another unit took
 * one (the rest are then closed unaccepted), every connection is placed, or `deadline`.
 */
export async function acceptorsOf(sockets: net.Socket[], port: number, unitHolding: (inode: string) => string | undefined, wantUnit: string, deadline: number): Promise<{ units: (string | undefined)[]; afterMs?: number }> {
  const began = Date.now();
  const units: (string | undefined)[] = sockets.map(() => undefined);
  let afterMs: number | undefined;
  // Often at first, then less often: each look costs a read of every connection of the namespace.
  for (let pause = 2; Date.now() < deadline; pause = Math.min(pause * 2, 50)) {
    const open = sockets.map((s, i) => (units[i] || s.destroyed ? undefined : s.localPort)).filter((p): p is number => p !== undefined);
    if (open.length === 0) break;
    const inodes = acceptedInodesBySs(port, open) ?? acceptedInodes(port, open);
    sockets.forEach((s, i) => {
      const inode = units[i] ? undefined : inodes.get(s.localPort!);
      if (inode) units[i] = unitHolding(inode);
      if (units[i]) afterMs = Date.now() - began;
      // Taken by another process (the old slot): close it now, not when the probe ends. A server with a
      // few single-threaded workers (gunicorn's sync workers) blocks a whole worker on a connection
      // that sends nothing: with 2 workers, 2 such probes froze the live slot until the new one booted.
      if (units[i] && units[i] !== wantUnit && !s.destroyed) s.destroy();
    });
    if (units.includes(wantUnit)) break;
    // The old slot took some and the new one none: this probe is lost. Its connections still in the queue
    // are closed too: left open, the old slot's workers accept them next and wait on them through another
    // look (measured with gunicorn: the live slot held for two looks in a row, 75–92 ms, instead of one).
    if (units.some(Boolean)) {
      sockets.forEach((s, i) => {
        if (!units[i]) s.destroy();
      });
      break;
    }
    await sleep(pause);
  }
  return { units, afterMs };
}

/**
 * Opens `connections` connections to 127.0.0.1:port at once and waits (up to acceptMs) until processes
 * accept them, naming the unit of each (from /proc). Several at once, because two slots accept from one
 * queue: the live slot, warm and idle, wins a single connection nearly every time, while with several
 * waiting each slot takes some. When one was accepted by `wantUnit` and a path is given, the health GET
 * goes on that one and its answer is reported; every other connection is closed unanswered (a request
 * never sent is never lost), one taken by another process as soon as it is seen. Never throws.
 */
export async function probeSlot(opts: { port: number; units: string[]; wantUnit: string; path?: string; acceptMs?: number; answerMs?: number; connections?: number }): Promise<SlotProbe> {
  const acceptMs = opts.acceptMs ?? 1000;
  // The units' processes are found before connecting: while a connection waits to be identified, a slot's
  // worker that took it waits too. Any of `units` other than wantUnit is "the old slot": a probe it took is
  // lost at once, not after acceptMs (a unit left out, such as the legacy <app>.service, cost a whole wait).
  const unitHolding = socketHolderFinder(opts.units);
  const opened = await Promise.allSettled(Array.from({ length: opts.connections ?? 4 }, () => connect(opts.port, acceptMs)));
  const sockets = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  if (sockets.length === 0) {
    const why = opened.find((o): o is PromiseRejectedResult => o.status === 'rejected')?.reason as Error | undefined;
    return { ok: false, detail: `connect to 127.0.0.1:${opts.port}: ${why?.message ?? 'failed'}` };
  }
  const deadline = Date.now() + acceptMs;
  const { units: acceptors, afterMs: acceptedAfterMs } = await acceptorsOf(sockets, opts.port, unitHolding, opts.wantUnit, deadline);
  const mine = acceptors.indexOf(opts.wantUnit);
  sockets.forEach((s, i) => {
    if (i !== mine || !opts.path) s.destroy();
  });
  const acceptedBy = mine >= 0 ? opts.wantUnit : acceptors.find(Boolean);
  if (mine < 0 || !opts.path) {
    return { ok: mine >= 0, acceptedBy, acceptedAfterMs, detail: acceptedBy ? `${acceptedBy} accepted the connection` : `no process of ${opts.units.join(', ')} accepted a connection within ${acceptMs} ms` };
  }
  return { ...(await get(sockets[mine], opts.port, opts.path, opts.answerMs ?? 5000)), acceptedBy, acceptedAfterMs };
}
