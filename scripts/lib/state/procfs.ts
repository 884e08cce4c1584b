// Readers of /proc: a process's start time, whether it waits for work, its working directory, the releases in use, who accepted a TCP connection.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RELEASE_ID } from '../manifest/paths.ts';

/** The fields of /proc/<pid>/stat from field 3 (the state) on, or undefined when the process is gone. */
function statFields(pid: number, proc = '/proc'): string[] | undefined {
  try {
    const stat = fs.readFileSync(path.join(proc, String(pid), 'stat'), 'utf8');
    // The command name (field 2) may hold spaces and parens; fields resume after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** A process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined when it is gone. */
export function processStartTicks(pid: number): number | undefined {
  const fields = statFields(pid);
  // A zombie (killed, not yet reaped by its parent or init) runs no more and holds no lock: not alive.
  if (!fields || fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return Number(fields[19]);
}

/**
 * Kernel functions a process sleeps in while it waits for work: an event loop (epoll), select or poll (gunicorn's
 * workers and arbiter), accept, a read on a socket, a supervisor's wait for its children, a timed sleep.
 * A booting app runs, or waits on its disk; a Node app's event loop may also wait while it boots (its file
 * reads run on other threads), so for Node this says little — there the warm-up holds connections back.
 */
const WAITING_FOR_WORK = /^(do_epoll_wait|ep_poll|poll_schedule_timeout|do_select|core_sys_select|do_sys_poll|do_poll|inet_csk_accept|sk_wait_data|wait_woken|do_wait|hrtimer_nanosleep|do_nanosleep)$/;

/** Whether a process sleeps waiting for work (state S, its wchan one of the above); undefined when it is gone. */
export function waitsForWork(pid: number, proc = '/proc'): boolean | undefined {
  const fields = statFields(pid, proc);
  if (!fields) return undefined;
  try {
    // The compiler's suffixes go (poll_schedule_timeout.constprop.0: select and poll on kernel 6.x).
    const wchan = fs.readFileSync(path.join(proc, String(pid), 'wchan'), 'utf8').trim().split('.')[0]!;
    return fields[0] === 'S' && WAITING_FOR_WORK.test(wchan);
  } catch {
    return undefined;
  }
}

/**
 * The release a process runs in: systemd resolves WorkingDirectory=<root>/active when it starts the
 * process, so its cwd names the release it really serves, whatever `active` says now.
 */
export function releaseOfProcess(releasesDir: string, pid: number | undefined): string | undefined {
  if (!pid) return undefined;
  try {
    const rel = path.relative(fs.realpathSync(releasesDir), fs.readlinkSync(`/proc/${pid}/cwd`));
    return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel.split(path.sep)[0] : undefined;
  } catch {
    return undefined;
  }
}

function pids(proc: string): string[] {
  return fs.readdirSync(proc).filter((p) => /^\d+$/.test(p));
}

/** Release ids that running processes use as their working directory (read from /proc/<pid>/cwd). */
export function releasesInUse(releasesDir: string, proc = '/proc'): Map<string, number> {
  const inUse = new Map<string, number>();
  let real: string;
  try {
    real = fs.realpathSync(releasesDir);
  } catch {
    return inUse;
  }
  for (const pid of pids(proc)) {
    let cwd: string;
    try {
      cwd = fs.readlinkSync(path.join(proc, pid, 'cwd'));
    } catch {
      continue;
    }
    if (!cwd.startsWith(real + '/')) continue;
    const id = cwd.slice(real.length + 1).split('/')[0];
    if (RELEASE_ID.test(id) && !inUse.has(id)) inUse.set(id, Number(pid));
  }
  return inUse;
}

/**
 * The inode of the server side of each loopback TCP connection 127.0.0.1:clientPort → 127.0.0.1:serverPort
 * that a process has accepted (a connection still in the listen queue has inode 0: absent from the map).
 * The whole four-tuple is matched and TIME_WAIT entries are skipped: the table also holds the closed
 * connections of the app's other clients (a proxy's, or a load balancer's on another address), and one
 * of them may have used the same client port; it has inode 0 and would hide the probe's own entry.
 * ONE read of the table for all the ports: under load it holds every TIME_WAIT connection of the
 * namespace (one read of 14 000 lines took 85 ms, measured), so a prober reads it once per look.
 */
export function acceptedInodes(serverPort: number, clientPorts: number[], tcpTable = '/proc/net/tcp'): Map<number, string> {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  const LOOPBACK = '0100007F';
  const local = `${LOOPBACK}:${hex(serverPort)}`;
  const wanted = new Map(clientPorts.map((p) => [`${LOOPBACK}:${hex(p)}`, p]));
  const TIME_WAIT = '06';
  const found = new Map<number, string>();
  for (const line of fs.readFileSync(tcpTable, 'utf8').split('\n')) {
    // Cheap test first: most lines are other connections.
    if (!line.includes(local)) continue;
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
    const f = line.trim().split(/\s+/);
    const port = f.length >= 10 && f[1] === local ? wanted.get(f[2]!) : undefined;
    if (port === undefined || f[3] === TIME_WAIT || found.has(port)) continue;
    if (f[9] !== '0') found.set(port, f[9]!);
  }
  return found;
}

/**
 * acceptedInodes asked of the kernel with a filter, through iproute2's `ss` (sock_diag): only the
 * connections to serverPort, however many TIME_WAIT entries the namespace holds. Under a load that
 * opens a connection per request, /proc/net/tcp grows to tens of thousands of lines, and one read took
 * 250–320 ms: a gunicorn sync worker that had accepted a probe waited that long, and so did the live
 * slot's queue. undefined when `ss` is missing or fails (the caller reads /proc/net/tcp then).
 */
export function acceptedInodesBySs(serverPort: number, clientPorts: number[]): Map<number, string> | undefined {
  const r = spawnSync('ss', ['-tnHe', 'state', 'established', '(', 'sport', '=', `:${serverPort}`, ')'], { encoding: 'utf8', timeout: 2000 });
  if (r.status !== 0 || typeof r.stdout !== 'string') return undefined;
  const wanted = new Set(clientPorts);
  const found = new Map<number, string>();
  for (const line of r.stdout.split('\n')) {
    // Recv-Q Send-Q 127.0.0.1:<server> 127.0.0.1:<client> … ino:<inode> … (no state column: one state asked)
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || f[2] !== `127.0.0.1:${serverPort}` || !f[3]!.startsWith('127.0.0.1:')) continue;
    const port = Number(f[3]!.slice('127.0.0.1:'.length));
    const inode = f.find((x) => x.startsWith('ino:'))?.slice(4);
    if (wanted.has(port) && inode && inode !== '0') found.set(port, inode);
  }
  return found;
}

/** The processes of the systemd units named in `units` (read from /proc/<pid>/cgroup), each with its unit. */
function processesOf(units: string[], proc: string): { pid: string; unit: string }[] {
  const found: { pid: string; unit: string }[] = [];
  for (const pid of pids(proc)) {
    let cgroup: string;
    try {
      cgroup = fs.readFileSync(path.join(proc, pid, 'cgroup'), 'utf8');
    } catch {
      continue;
    }
    const unit = cgroup.split('\n').map((l) => /\/([^/]+\.service)(\/|$)/.exec(l)?.[1]).find(Boolean);
    if (unit && units.includes(unit)) found.push({ pid, unit });
  }
  return found;
}

/** Whether process `pid` holds `socket:[inode]` among its open files. */
function holds(pid: string, target: string, proc: string): boolean {
  let fds: string[];
  try {
    fds = fs.readdirSync(path.join(proc, pid, 'fd'));
  } catch {
    return false;
  }
  return fds.some((fd) => {
    try {
      return fs.readlinkSync(path.join(proc, pid, 'fd', fd)) === target;
    } catch {
      return false;
    }
  });
}

/**
 * A finder of which of `units` (an app's units) has a process holding socket `inode`; undefined when none
 * has. The units' processes are found once, and again only when none of them holds the socket (a worker
 * forked since), so a prober makes it before it connects: a prober looks every few ms while the live slot
 * waits on its connection, and reading every process's cgroup took 7 ms a look (17 ms at worst) on a
 * saturated host.
 */
export function socketHolderFinder(units: string[], proc = '/proc'): (inode: string) => string | undefined {
  let known = processesOf(units, proc);
  return (inode) => {
    const target = `socket:[${inode}]`;
    const cached = known.find((p) => holds(p.pid, target, proc));
    if (cached) return cached.unit;
    known = processesOf(units, proc);
    return known.find((p) => holds(p.pid, target, proc))?.unit;
  };
}
