// cutover build's last step: the built release written as one archive with its record (app, commit, runtime, arch, OS, tree digest, builder), its sha256 beside it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Context } from '../state/context.ts';
import { RECORD_NAME, type ArchiveRecord } from './archive-rules.ts';
import { packRelease, treeDigest } from './archive.ts';
import { depsKey } from './reuse.ts';
import type { ReleasePlan } from './plan.ts';
import { hostFacts, osRelease } from './host-facts.ts';

export interface PackResult {
  archive: string;
  sha256: string;
  record: ArchiveRecord;
}

/** What of a release is this host's own and stays out of an archive: the links to shared/ (each host links its own), the record. */
export function hostOwnPaths(ctx: Context): Set<string> {
  return new Set([RECORD_NAME, ...ctx.m.shared.map((rel) => rel.replace(/\/+$/, ''))]);
}

/**
 * Writes the plan's (built, ready) release into `out` with its record; returns the archive's sha256. `builtAt`: when
 * the release was built (default now). Packing one release twice with the same ref then gives the same bytes, so a
 * host that already took the first archive takes the second as "already built".
 */
export async function packBuiltRelease(ctx: Context, plan: ReleasePlan, out: string, opts: { builtAt?: string } = {}): Promise<PackResult> {
  const dir = ctx.paths.release(plan.id);
  const skip = hostOwnPaths(ctx);
  const { digest, native } = treeDigest(dir, skip);
  const facts = await hostFacts(ctx.m.runtime);
  const record: ArchiveRecord = {
    format: 1,
    app: ctx.m.app,
    commit: plan.commit,
    ref: plan.ref,
    release: plan.id,
    runtime: ctx.m.runtime,
    runtimeVersion: facts.runtimeVersion,
    arch: facts.arch,
    os: osRelease(),
    ...(native && facts.libc ? { libc: facts.libc } : {}),
    ...(ctx.m.install ? { depsKey: depsKey(dir, ctx.m.runtime, ctx.m.install) } : {}),
    builtAt: opts.builtAt ?? new Date().toISOString(),
    builtBy: os.hostname(),
    treeDigest: digest,
    native,
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const sha256 = await packRelease(dir, out, record, skip);
  return { archive: out, sha256, record };
}
