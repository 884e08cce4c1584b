// System-tier helpers: a test host with the kit bound at /opt/cutover, app repos from the test side, manifests inside.
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { bootHost, type ExecResult, type TestHost } from '../host/host.ts';
import { makeAppRepo, tempDir, type AppRepo, type ExampleApp } from './gitrepo.ts';
import { kitDir, verbArgv } from './kit.ts';

/** Where the kit is inside the test host, as an operator would copy it to a server. */
export const KIT = '/opt/cutover';
/** Where the tests' app repositories appear inside the test host. */
export const SRC = '/srv/src';

export interface KitHost {
  host: TestHost;
  /** The host-side directory bound at SRC. */
  srcDir: string;
  /** Runs `tsx scripts/<verb>.ts args` inside, as root, with the manifest given. */
  kit(verb: string, args?: string[], opts?: { manifest?: string; env?: Record<string, string>; timeoutMs?: number }): Promise<ExecResult>;
  /** Writes a manifest to /etc/cutover/<app>.yaml inside and returns that path. */
  manifest(obj: Record<string, unknown>): string;
  /** A real git repo of an example app, made on the test side, seen inside at SRC/<name>. */
  repo(name: string, app?: ExampleApp): Promise<{ repo: AppRepo; url: string }>;
  /** A file's content inside the host. */
  read(p: string): string;
  stop(): Promise<void>;
}

/** The argv that runs a kit verb inside the host, as an operator would on a server (compiled when dist/ is fresh: verbArgv). */
export function kitArgv(verb: string, args: string[], manifest?: string): string[] {
  return verbArgv(verb, [...args, ...(manifest ? ['--manifest', manifest] : [])], KIT);
}

/** The same through tsx on the TypeScript source, whatever dist/ holds (the benchmark of verb start-up compares the two). */
export function tsxKitArgv(verb: string, args: string[], manifest?: string): string[] {
  return [`${KIT}/node_modules/.bin/tsx`, `${KIT}/scripts/${verb}.ts`, ...args, ...(manifest ? ['--manifest', manifest] : [])];
}

/** Where provision links the `cutover` command (on root's PATH inside the host). */
export const COMMAND = '/usr/local/bin/cutover';

/**
 * The argv of `cutover <verb> args` inside the host, the way an operator types it: through the command
 * provision put on the PATH, or, before the first provision, through the kit's own bin/cutover.
 */
export function commandArgv(verb: string, args: string[], opts: { manifest?: string; beforeProvision?: boolean } = {}): string[] {
  return [opts.beforeProvision ? `${KIT}/bin/cutover` : 'cutover', verb, ...args, ...(opts.manifest ? ['--manifest', opts.manifest] : [])];
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Boots a test host with the kit bound in. `srcDir` reuses the repos of an earlier host (a second
 * boot over the same `stateDir` after a power cut); by default a fresh, empty repo dir is made.
 * `privateNetwork`: the host gets its own network namespace, reached at `host.address` (ports of its own).
 */
export async function bootKitHost(opts: { stateDir?: string; srcDir?: string; privateNetwork?: boolean } = {}): Promise<KitHost> {
  const srcDir = opts.srcDir ?? (await tempDir('cutover-src'));
  const host = await bootHost({
    binds: [
      { host: kitDir, container: KIT, readOnly: true },
      { host: srcDir, container: SRC, readOnly: true },
    ],
    stateDir: opts.stateDir,
    privateNetwork: opts.privateNetwork,
  });
  const inside = (p: string) => path.join(host.root, p);
  return {
    host,
    srcDir,
    kit: (verb, args = [], o = {}) =>
      host.exec(kitArgv(verb, args, o.manifest), {
        cwd: KIT,
        env: o.env,
        timeoutMs: o.timeoutMs ?? 180_000,
      }),
    manifest(obj) {
      const file = `/etc/cutover/${obj.app}.yaml`;
      fs.mkdirSync(inside('/etc/cutover'), { recursive: true });
      fs.writeFileSync(inside(file), stringify(obj));
      return file;
    },
    async repo(name, app = 'node') {
      const repo = await makeAppRepo(path.join(srcDir, name), { app });
      return { repo, url: `${SRC}/${name}` };
    },
    read: (p) => fs.readFileSync(inside(p), 'utf8'),
    stop: () => host.stop(),
  };
}

/** Fails a test with the command's output when it did not exit as expected. */
export function expectExit(r: ExecResult, code: number, what: string): void {
  if (r.code !== code) throw new Error(`${what}: expected exit ${code}, got ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
}
