// Test helpers that make real git repositories of the example apps in temp dirs, and clean them up.
import { chmod, cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { $ } from 'zx';

export const examplesDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples');

/** An app of examples/<name>-app. */
export type ExampleApp = 'node' | 'python' | 'sveltekit' | 'nextjs' | 'flask' | 'django' | 'remix';

export interface AppRepo {
  dir: string;
  /** Writes (string) or deletes (null) files relative to the repo, commits them all; returns the full sha. */
  commit(changes: Record<string, string | null>, message: string): Promise<string>;
  /** Tags ref (default HEAD); with a message the tag is annotated. */
  tag(name: string, ref?: string, message?: string): Promise<void>;
  /** Switches to branch name, creating it at HEAD when new: later commits land on it. */
  branch(name: string): Promise<void>;
  /** The full sha of HEAD. */
  head(): Promise<string>;
  /** Runs `git <args>` in the repo and returns its trimmed stdout. */
  git(...args: string[]): Promise<string>;
}

/** The example app's source directory (examples/node-app or examples/python-app). */
export function exampleAppDir(app: ExampleApp = 'node'): string {
  return path.join(examplesDir, `${app}-app`);
}

const made = new Set<string>();

/** A fresh directory under os.tmpdir(), mode 0755 so an unprivileged user can traverse it. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix.endsWith('-') ? prefix : `${prefix}-`));
  await chmod(dir, 0o755);
  made.add(dir);
  return dir;
}

/** Removes a temp dir made by a test, even when it holds read-only (sealed) directories. */
export async function removeTempDir(dir: string): Promise<void> {
  const resolved = path.resolve(dir);
  if (path.dirname(resolved) !== path.resolve(os.tmpdir())) {
    throw new Error(`refusing to remove ${resolved}: not a directory directly under ${os.tmpdir()}`);
  }
  try {
    await rm(resolved, { recursive: true, force: true });
  } catch {
    await makeWritable(resolved);
    await rm(resolved, { recursive: true, force: true });
  }
  made.delete(resolved);
}

/** Removes every temp dir tempDir() made in this process (call it from test.after). */
export async function cleanupTempDirs(): Promise<void> {
  for (const dir of [...made]) await removeTempDir(dir);
}

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o755).catch(() => {});
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory()) await makeWritable(path.join(dir, entry.name));
  }
}

/** git in dir, isolated from the machine's global and system git configuration. */
function gitIn(dir: string) {
  const env = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };
  const $git = $({ cwd: dir, env, quiet: true });
  return async (...args: string[]): Promise<string> => (await $git`git ${args}`).stdout.trim();
}

const BUILD_OUTPUTS = new Set(['node_modules', 'dist', '__pycache__', '.venv', 'BEHAVIOUR', 'build', '.svelte-kit', '.next', 'staticfiles']);

async function copyExample(app: ExampleApp, dir: string): Promise<void> {
  await cp(exampleAppDir(app), dir, {
    recursive: true,
    filter: (src) => !BUILD_OUTPUTS.has(path.basename(src)),
  });
}

/** Resolves a repo-relative path, refusing one that would leave the repo. */
function inRepo(dir: string, rel: string): string {
  const full = path.resolve(dir, rel);
  if (path.isAbsolute(rel) || !full.startsWith(dir + path.sep)) {
    throw new Error(`"${rel}" is not a path inside the repository ${dir}`);
  }
  return full;
}

async function applyChanges(dir: string, changes: Record<string, string | null>): Promise<void> {
  for (const [rel, content] of Object.entries(changes)) {
    const full = inRepo(dir, rel);
    if (content === null) {
      await rm(full, { force: true, recursive: true });
    } else {
      await mkdir(path.dirname(full), { recursive: true });
      await writeFile(full, content);
    }
  }
}

function appRepo(dir: string): AppRepo {
  const git = gitIn(dir);
  return {
    dir,
    git,
    async commit(changes, message) {
      await applyChanges(dir, changes);
      await git('add', '--all');
      await git('commit', '--quiet', '--allow-empty', '-m', message);
      return git('rev-parse', 'HEAD');
    },
    async tag(name, ref = 'HEAD', message) {
      await git('tag', ...(message === undefined ? [] : ['-a', '-m', message]), name, ref);
    },
    async branch(name) {
      const exists = (await git('branch', '--list', name)) !== '';
      await git('switch', '--quiet', ...(exists ? [] : ['-c']), name);
    },
    head: () => git('rev-parse', 'HEAD'),
  };
}

/** Copies the example app into a fresh git repo at dir (created if missing) and commits "v1" with VERSION=1. */
export async function makeAppRepo(dir: string, opts: { app?: ExampleApp } = {}): Promise<AppRepo> {
  const root = path.resolve(dir);
  await mkdir(root, { recursive: true });
  await copyExample(opts.app ?? 'node', root);
  const git = gitIn(root);
  await git('init', '--quiet', '-b', 'main');
  await git('config', 'user.name', 'cutover tests');
  await git('config', 'user.email', 'tests@cutover.invalid');
  await git('config', 'commit.gpgsign', 'false');
  await git('config', 'tag.gpgsign', 'false');
  const repo = appRepo(root);
  await repo.commit({ VERSION: '1\n' }, 'v1');
  return repo;
}
