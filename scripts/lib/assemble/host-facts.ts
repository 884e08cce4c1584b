// What this machine is, as an archive's record says it and a host checks it: the runtime's exact version, CPU, C library, OS release.
import fs from 'node:fs';
import { execFile } from 'node:child_process';
import type { HostFacts } from './archive-rules.ts';

/** The runtime the app runs on here: Node (the kit runs on the host's own Node) or the host's python3. */
export async function hostFacts(runtime: 'node' | 'python', app = ''): Promise<HostFacts> {
  const runtimeVersion = runtime === 'node' ? process.version : await pythonVersion();
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return { app, runtime, runtimeVersion, arch: process.arch, libc: header?.glibcVersionRuntime };
}

function pythonVersion(): Promise<string> {
  return new Promise((resolve) => {
    execFile('python3', ['--version'], { encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve(error ? 'none' : `${stdout}${stderr}`.trim().replace(/^Python /, ''));
    });
  });
}

/** "debian 12", "ubuntu 24.04": /etc/os-release's ID and VERSION_ID. */
export function osRelease(file = '/etc/os-release'): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    const get = (k: string) => text.match(new RegExp(`^${k}="?([^"\\n]*)"?$`, 'm'))?.[1] ?? '';
    return `${get('ID')} ${get('VERSION_ID')}`.trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}
