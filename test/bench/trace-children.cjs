// Bench-only preload (NODE_OPTIONS=--require): records, on the process's own clock, when Node was up, each child process (systemctl, systemd-run …) and each step the kit printed (with the process's own CPU time at its ends), and writes them as JSON to $CUTOVER_BENCH_TRACE at exit.
'use strict';
const fs = require('node:fs');
const cp = require('node:child_process');

const file = process.env.CUTOVER_BENCH_TRACE;
const now = () => Math.round(performance.now() * 10) / 10;
/** CPU ms of this process so far (every thread: the main one, libuv's pool, zlib), not its children's. */
const cpu = () => {
  const u = process.cpuUsage();
  return Math.round((u.user + u.system) / 100) / 10;
};
const trace = { bootMs: now(), children: [], steps: [], exitMs: 0 };

const spawn = cp.spawn;
cp.spawn = function tracedSpawn(command, args) {
  const child = spawn.apply(this, arguments);
  const entry = { startMs: now(), endMs: 0, argv: [command, ...(Array.isArray(args) ? args : [])].join(' ').slice(0, 160) };
  trace.children.push(entry);
  child.once('exit', () => (entry.endMs = now()));
  return child;
};
// execFile reaches Node's spawn without going through the module's export: wrap it too.
const execFile = cp.execFile;
cp.execFile = function tracedExecFile(command, args) {
  const child = execFile.apply(this, arguments);
  const entry = { startMs: now(), endMs: 0, argv: [command, ...(Array.isArray(args) ? args : [])].join(' ').slice(0, 160) };
  trace.children.push(entry);
  child.once('exit', () => (entry.endMs = now()));
  return child;
};
const spawnSync = cp.spawnSync;
cp.spawnSync = function tracedSpawnSync(command, args) {
  const entry = { startMs: now(), endMs: 0, argv: [command, ...(Array.isArray(args) ? args : [])].join(' ').slice(0, 160) };
  const r = spawnSync.apply(this, arguments);
  entry.endMs = now();
  trace.children.push(entry);
  return r;
};

// ES modules that import { spawn, execFile } from node:child_process see the wrapped functions too.
require('node:module').syncBuiltinESMExports();

// The kit prints "==> title" when a step starts and "    done in …" / "    failed after …" when it ends.
const write = process.stdout.write;
process.stdout.write = function tracedWrite(chunk) {
  const text = String(chunk);
  for (const line of text.split('\n')) {
    if (line.startsWith('==> ')) trace.steps.push({ title: line.slice(4), startMs: now(), endMs: 0, startCpuMs: cpu(), endCpuMs: 0 });
    else if (/^\s+(done in|failed after) /.test(line) && trace.steps.length) Object.assign(trace.steps[trace.steps.length - 1], { endMs: now(), endCpuMs: cpu() });
  }
  return write.apply(this, arguments);
};

process.once('exit', () => {
  trace.exitMs = now();
  trace.exitCpuMs = cpu();
  if (file) fs.writeFileSync(file, JSON.stringify(trace) + '\n');
});
