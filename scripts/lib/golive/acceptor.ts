// A health probe through the app's shared socket that knows which slot answered it (two slots accept from one queue).
import net from 'node:net';
import type { CheckResult } from './health.ts';
import { acceptedInode, unitHoldingSocket } from '../state/procfs.ts';

export interface SlotProbe extends CheckResult {
  /** The unit whose process accepted the connection; undefined when none did in time. */
  acceptedBy?: string;
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
 * Connects to 127.0.0.1:port and waits (up to acceptMs) until a process accepts the connection, then
 * names the unit of that process (from /proc). When it is `wantUnit` and a path is given, sends the
 * health GET and reports its answer; otherwise closes the connection unanswered (a request never sent
 * is never lost). Never throws.
 */
export async function probeSlot(opts: { port: number; app: string; wantUnit: string; path?: string; acceptMs?: number; answerMs?: number }): Promise<SlotProbe> {
  let socket: net.Socket;
  try {
    socket = await connect(opts.port, opts.acceptMs ?? 1000);
  } catch (e) {
    return { ok: false, detail: `connect to 127.0.0.1:${opts.port}: ${(e as Error).message}` };
  }
  const deadline = Date.now() + (opts.acceptMs ?? 1000);
  let acceptedBy: string | undefined;
  while (Date.now() < deadline && !socket.destroyed) {
    const inode = acceptedInode(opts.port, socket.localPort!);
    if (inode) acceptedBy = unitHoldingSocket(inode, `/${opts.app}@`);
    if (acceptedBy) break;
    await sleep(5);
  }
  if (acceptedBy !== opts.wantUnit || !opts.path) {
    socket.destroy();
    const ok = acceptedBy === opts.wantUnit;
    return { ok, acceptedBy, detail: acceptedBy ? `${acceptedBy} accepted the connection` : `no process of ${opts.app} accepted a connection within ${opts.acceptMs ?? 1000} ms` };
  }
  return { ...(await get(socket, opts.port, opts.path, opts.answerMs ?? 5000)), acceptedBy };
}
