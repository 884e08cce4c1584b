// Tests scripts/lib/state/procfs.ts's handover readers on a made-up /proc, and the kernel's answer through ss against /proc/net/tcp: who accepted a loopback connection.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { acceptedInodes, acceptedInodesBySs, socketHolderFinder } from '../../scripts/lib/state/procfs.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-procfs-'));
/** The slot units of an app named shop. */
const SHOP = ['shop@a.service', 'shop@b.service'];
const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
// Port 4301 is 10CD in hex, 51000 is C738, 51001 is C739.
const row = (sl: number, local: string, remote: string, inode: string, st = '01') =>
  `   ${sl}: ${local} ${remote} ${st} 00000000:00000000 00:00000000 00000000   998        0 ${inode} 1 0000000000000000 20 4 30 10 -1`;

test('acceptedInodes: the server side of the connection once accepted; nothing while it waits in the queue', () => {
  const table = path.join(dir, 'tcp');
  fs.writeFileSync(table, [
    HEADER,
    '   0: 0100007F:10CD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0',
    row(1, '0100007F:10CD', '0100007F:C738', '0'), // still in the listen queue
    row(2, '0100007F:10CD', '0100007F:C739', '222'), // accepted
    row(3, '0100007F:C739', '0100007F:10CD', '333'), // the client's own side
  ].join('\n'));
  assert.is(acceptedInodes(4301, [51000], table).get(51000), undefined);
  assert.is(acceptedInodes(4301, [51001], table).get(51001), '222');
  assert.is(acceptedInodes(4301, [51002], table).get(51002), undefined);
});

test('acceptedInodes: a closed connection of another client with the same client port (TIME_WAIT, another address) does not hide the probe', () => {
  const table = path.join(dir, 'tcp-tw');
  fs.writeFileSync(table, [
    HEADER,
    row(1, '0A000002:10CD', '0A000001:C739', '0', '06'), // a proxy's or load balancer's closed connection, same client port
    row(2, '0100007F:10CD', '0100007F:C739', '0', '06'), // an earlier loopback connection on that port, closed
    row(3, '0A000002:10CD', '0A000001:C739', '444'), // another client's live connection on another address
    row(4, '0100007F:10CD', '0100007F:C739', '222'), // the probe, accepted
  ].join('\n'));
  assert.is(acceptedInodes(4301, [51001], table).get(51001), '222');
});

test('acceptedInodesBySs: on real sockets, the same inode as /proc/net/tcp for an accepted connection', async () => {
  const server = net.createServer();
  server.on('connection', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', 1, r));
  const port = (server.address() as net.AddressInfo).port;
  const connect = () => new Promise<net.Socket>((r) => { const c = net.connect(port, '127.0.0.1', () => r(c)); });
  const first = await connect();
  await new Promise((r) => setTimeout(r, 100)); // accepted by this process's server
  server.close();
  const ports = [first.localPort!];
  const fromSs = acceptedInodesBySs(port, ports);
  assert.ok(fromSs, 'ss is there and answered');
  const fromProc = acceptedInodes(port, ports);
  assert.ok(fromProc.get(first.localPort!), 'the connection is accepted');
  assert.is(fromSs!.get(first.localPort!), fromProc.get(first.localPort!), 'the same inode both ways');
  first.destroy();
});

test('acceptedInodesBySs: without ss it says so (undefined), so the prober reads /proc/net/tcp instead', () => {
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    assert.is(acceptedInodesBySs(4301, [51000]), undefined);
  } finally {
    process.env.PATH = saved;
  }
});

test("socketHolderFinder: the unit of the process that holds the socket, among the app's units only", () => {
  const proc = path.join(dir, 'proc');
  const pid = (n: number, cgroup: string, fds: Record<string, string>) => {
    fs.mkdirSync(path.join(proc, String(n), 'fd'), { recursive: true });
    fs.writeFileSync(path.join(proc, String(n), 'cgroup'), cgroup);
    for (const [fd, target] of Object.entries(fds)) fs.symlinkSync(target, path.join(proc, String(n), 'fd', fd));
  };
  pid(10, '0::/system.slice/system-shop.slice/shop@a.service\n', { 3: 'socket:[111]', 20: 'socket:[500]' });
  pid(11, '1:name=systemd:/system.slice/system-shop.slice/shop@b.service\n0::/system.slice/system-shop.slice/shop@b.service\n', { 3: 'socket:[111]', 21: 'socket:[222]' });
  pid(12, '0::/system.slice/other@a.service\n', { 5: 'socket:[333]' });
  fs.mkdirSync(path.join(proc, 'self'), { recursive: true });
  assert.is(socketHolderFinder(SHOP, proc)('222'), 'shop@b.service');
  assert.is(socketHolderFinder(SHOP, proc)('500'), 'shop@a.service');
  assert.is(socketHolderFinder(SHOP, proc)('333'), undefined, "another app's process is not looked at");
  assert.is(socketHolderFinder(SHOP, proc)('999'), undefined);
});

test("socketHolderFinder: finds the app's processes once, and again when a socket is held by none of them (a worker forked since)", () => {
  const proc = path.join(dir, 'proc2');
  const pid = (n: number, unit: string, fds: Record<string, string>) => {
    fs.mkdirSync(path.join(proc, String(n), 'fd'), { recursive: true });
    fs.writeFileSync(path.join(proc, String(n), 'cgroup'), `0::/system.slice/system-shop.slice/${unit}\n`);
    for (const [fd, target] of Object.entries(fds)) fs.symlinkSync(target, path.join(proc, String(n), 'fd', fd));
  };
  pid(20, 'shop@a.service', { 3: 'socket:[111]', 7: 'socket:[700]' });
  const unitHolding = socketHolderFinder(SHOP, proc);
  pid(21, 'shop@b.service', { 3: 'socket:[111]', 8: 'socket:[800]' });
  // A process that is not the app's, made after: its cgroup is read on the rescan, and it is still not looked at.
  pid(22, 'other@a.service', { 9: 'socket:[900]' });
  assert.is(unitHolding('700'), 'shop@a.service', 'a process found when the finder was made');
  assert.is(unitHolding('800'), 'shop@b.service', 'a process started after it: found by looking again');
  assert.is(unitHolding('900'), undefined);
  // An app of an older cutover runs as one <app>.service while provision moves it to the slots: one of its units too.
  pid(23, 'shop.service', { 4: 'socket:[400]' });
  assert.is(socketHolderFinder([...SHOP, 'shop.service'], proc)('400'), 'shop.service');
  assert.is(socketHolderFinder(SHOP, proc)('400'), undefined, 'a unit not named is not looked at');
  // Once known, a process is looked at even when its cgroup can no longer be read (no rescan needed).
  fs.rmSync(path.join(proc, '21', 'cgroup'));
  assert.is(unitHolding('800'), 'shop@b.service');
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test.run();
