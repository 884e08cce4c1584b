// Tests scripts/lib/golive/acceptor.ts on real loopback sockets: a probe taken by the other slot ends at the first look that sees it, its waiting connections closed.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { acceptorsOf } from '../../scripts/lib/golive/acceptor.ts';
import { commandMissing, requiring } from '../helpers/prereq.ts';

const it = requiring(commandMissing('python3', ['--version'], 'apt-get install python3; test/setup.sh installs gunicorn with it'));

/** A server that accepts ONE connection and then holds it (a sync worker waiting on a request), leaving the rest in the queue. */
async function oneAccepter(): Promise<{ child: ChildProcess; port: number }> {
  const py = "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(16)\nprint(s.getsockname()[1],flush=True)\nc=s.accept()\ntime.sleep(60)\n";
  const child = spawn('python3', ['-c', py], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`python3 exited ${code}`)));
  });
  return { child, port };
}

const connect = (port: number) => new Promise<net.Socket>((r) => { const c = net.connect(port, '127.0.0.1', () => r(c)); });

it('a probe the old slot took ends at the first look that sees it (not at the deadline), and its connections still in the queue are closed', async () => {
  const { child, port } = await oneAccepter();
  try {
    const sockets = await Promise.all([1, 2, 3, 4].map(() => connect(port)));
    // The "old slot" is the python process: the unit of a socket is old@a.service when that process holds it.
    const holderOf = (inode: string) =>
      fs.readdirSync(`/proc/${child.pid}/fd`).some((fd) => {
        try {
          return fs.readlinkSync(`/proc/${child.pid}/fd/${fd}`) === `socket:[${inode}]`;
        } catch {
          return false;
        }
      })
        ? 'old@a.service'
        : undefined;
    const t0 = Date.now();
    const { units } = await acceptorsOf(sockets, port, holderOf, 'new@b.service', t0 + 10_000);
    const took = Date.now() - t0;
    assert.is(units.filter((u) => u === 'old@a.service').length, 1, `the old slot took one: ${units}`);
    assert.is(units.filter((u) => u === undefined).length, 3, 'the other three were never accepted');
    assert.ok(took < 5_000, `it stopped looking once the old slot was seen (${took} ms), long before the deadline`);
    const waiting = sockets.filter((_, i) => units[i] === undefined);
    assert.ok(waiting.every((s) => s.destroyed), 'the connections still in the queue are closed, so no worker takes them next');
    assert.ok(sockets[units.indexOf('old@a.service')]!.destroyed, 'and the one the old slot holds is closed, which frees its worker');
  } finally {
    child.kill();
  }
});

test.run();
