// An archive received on a host, before anything changes: copied to a root-only staging directory, its sha256 and signature checked, the host matched, then every entry checked and unpacked there in one pass.
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { UsageError } from '../run/errors.ts';
import type { Context } from '../state/context.ts';
import { DEFAULT_LIMITS, hostProblems, SIGNATURE_NAMESPACE, type ArchiveRecord } from './archive-rules.ts';
import { archiveRefused, fileSha256 } from './archive.ts';
import { readArchive } from './archive-read.ts';
import { hostFacts } from './host-facts.ts';
import { clearDeadStaging } from './staging.ts';
import { neighbourOf, readReleaseState, type ReleaseState } from './plan.ts';
import { shareSource } from './share-source.ts';
import { treeWriter, type TreeWriter } from './tree-writer.ts';
import { formatDuration } from '../run/log.ts';

export interface Received {
  /** The staged copy, the one that is checked and unpacked. */
  staged: string;
  sha256: string;
  record: ArchiveRecord;
  /** Who signed it (the allowed_signers principal), when the manifest asks for signatures. */
  signer?: string;
  /** The checked tree, unpacked in the staging directory (sealed modes when root): absent in a dry run, or when this host has the release already. */
  tree?: string;
  /** The sealed release whose identical files the tree hard-links (then no seal-time sharing walk is needed). */
  sharedWith?: string;
}

/**
 * Whether to unpack an archive's tree now: not when this host already has its release (the same archive,
 * ready: reused; anything else at that id: refused under the lock). A state read without the lock: the
 * lock's own checks decide; this only saves the work.
 */
export function worthUnpacking(state: ReleaseState, r: ArchiveRecord): boolean {
  return !state.taken(r.release);
}

/** The sha256 the operator vouches for: --sha256, else FILE.sha256 (sha256sum's format). */
export function expectedSha256(file: string, given?: string): string {
  if (given !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(given)) throw new UsageError(`--sha256 ${JSON.stringify(given)} is not a sha256 (64 hex digits).`, 'Pass the digest `cutover build` printed, or leave --sha256 out and keep FILE.sha256 beside the archive.');
    return given.toLowerCase();
  }
  let text: string;
  try {
    text = fs.readFileSync(`${file}.sha256`, 'utf8');
  } catch {
    throw new UsageError(
      `No sha256 for ${file}: neither --sha256 nor ${file}.sha256.`,
      '`cutover build` writes FILE.sha256 beside the archive: copy it along, or pass --sha256 <hex>.',
    );
  }
  const m = text.match(/^([0-9a-fA-F]{64})\b/);
  if (!m) throw new UsageError(`${file}.sha256 does not start with a sha256 (64 hex digits).`, 'Copy the FILE.sha256 that `cutover build` wrote.');
  return m[1].toLowerCase();
}

/**
 * Stages the archive (and its signature) in a fresh root-only directory inside releases/, so the bytes that are
 * checked are the bytes that are unpacked, then checks its sha256 and signature, then reads it once: the record
 * matched against this host, every entry checked, and (unless a dry run) written into `tree` there, sealed modes and
 * all, sharing the neighbour release's identical files. Nothing outside the staging directory is touched. Throws a
 * UsageError (exit 2) for anything wrong, after removing the staging directory; on success the caller removes it
 * (`dispose`) once the tree has been moved into place.
 */
export async function receiveArchive(ctx: Context, file: string, givenSha?: string): Promise<Received & { dispose: () => void }> {
  const expected = expectedSha256(file, givenSha);
  if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile()) {
    throw new UsageError(`The archive ${file} is not a file.`, 'Name the file `cutover build --out` wrote.');
  }
  // A dry run changes nothing under the app's root (whose releases/ may not even exist yet): it checks the archive in /var/tmp.
  const dryPrefix = path.join('/var/tmp', `cutover-dry-run-${ctx.m.app}-`);
  const prefix = ctx.dryRun ? dryPrefix : ctx.paths.incomingPrefix;
  clearDeadStaging(dryPrefix);
  if (!ctx.dryRun) clearDeadStaging(ctx.paths.incomingPrefix);
  const dir = fs.mkdtempSync(`${prefix}${process.pid}-`);
  fs.chmodSync(dir, 0o700);
  const dispose = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const staged = path.join(dir, 'release.tar.gz');
    fs.copyFileSync(file, staged);
    const sha256 = await fileSha256(staged);
    if (sha256 !== expected) {
      throw archiveRefused(file, [`its sha256 is ${sha256}, not ${expected}: it changed (or was cut short) on its way here`], 'Copy the archive again, byte for byte, and check it against the sha256 `cutover build` printed.');
    }
    const signer = await checkSignature(ctx, file, staged, dir);
    const limits = { maxBytes: ctx.m.archive?.max_bytes ?? DEFAULT_LIMITS.maxBytes, maxEntries: ctx.m.archive?.max_entries ?? DEFAULT_LIMITS.maxEntries };
    const host = await hostFacts(ctx.m.runtime, ctx.m.app);
    const state = readReleaseState(ctx);
    const tree = path.join(dir, 'tree');
    let writer: TreeWriter | undefined;
    let sharedWith: string | undefined;
    const t0 = performance.now();
    const read = await readArchive(staged, {
      releaseDirOf: (r) => ctx.paths.release(r.release),
      limits,
      hostMismatch: (r) => hostProblems(r, host),
      sink: (r) => {
        if (ctx.dryRun || !worthUnpacking(state, r)) return undefined;
        ({ writer, sharedWith } = writerFor(ctx, state, r, tree));
        return writer;
      },
    });
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    const shared = writer && sharedWith ? `, ${mb(writer.sharedBytes())} of it shared with ${sharedWith} (hard links between sealed releases)` : '';
    ctx.log.info(`    ${read.entries} entries, ${mb(read.bytes)}: ${read.written ? 'checked and unpacked' : 'checked'} in ${formatDuration(Math.round(performance.now() - t0))}${shared}`);
    return { staged, sha256, record: read.record, signer, tree: read.written ? tree : undefined, sharedWith, dispose };
  } catch (e) {
    dispose();
    throw e;
  }
}

/**
 * The tree's writer. Root writes it sealed (root's, no group or other write), and, when nothing will run as
 * the app's user in it before the seal (no migrate), links the neighbour release's identical files.
 */
function writerFor(ctx: Context, state: ReleaseState, r: ArchiveRecord, tree: string): { writer: TreeWriter; sharedWith?: string } {
  const root = process.getuid?.() === 0;
  const neighbour = root && !ctx.m.migrate ? neighbourOf(state, r.release) : undefined;
  const share = neighbour
    ? shareSource(ctx.paths.release(neighbour), { uid: 0, gid: process.getgid?.() ?? 0 }, ctx.m.writable)
    : undefined;
  return { writer: treeWriter(tree, { seal: root, share }), sharedWith: neighbour };
}

/** With allowed_signers in the manifest: FILE.sig must be a valid ssh signature of the archive by one of them. */
async function checkSignature(ctx: Context, file: string, staged: string, dir: string): Promise<string | undefined> {
  const signers = ctx.m.archive?.allowed_signers;
  if (!signers) return undefined;
  const sigFile = `${file}.sig`;
  if (!fs.existsSync(sigFile)) {
    throw archiveRefused(file, [`it is not signed (no ${sigFile}), and the manifest requires a signature by a key in ${signers}`], `Sign it where it was built: ssh-keygen -Y sign -f <key> -n ${SIGNATURE_NAMESPACE} ${path.basename(file)}, and copy the .sig along.`);
  }
  if (!fs.existsSync(signers)) throw new UsageError(`archive.allowed_signers names ${signers}, which does not exist.`, 'Create it (one line per signer: "<name> <public key>"), or remove the key from the manifest.');
  const sig = path.join(dir, 'release.tar.gz.sig');
  fs.copyFileSync(sigFile, sig);
  const found = await run('ssh-keygen', ['-Y', 'find-principals', '-s', sig, '-f', signers]);
  const principal = found.code === 0 ? found.stdout.split('\n')[0].trim() : '';
  const verified = principal
    ? await run('ssh-keygen', ['-Y', 'verify', '-f', signers, '-I', principal, '-n', SIGNATURE_NAMESPACE, '-s', sig], staged)
    : { code: 1, stdout: '', stderr: found.stderr };
  if (verified.code !== 0) {
    const why = (verified.stderr || verified.stdout).trim().split('\n').slice(-2).join(' ');
    throw archiveRefused(file, [`its signature ${sigFile} is not a valid signature of this archive by a key in ${signers}${why ? ` (ssh-keygen: ${why})` : ''}`], `Sign the archive itself with a key listed in ${signers}: ssh-keygen -Y sign -f <key> -n ${SIGNATURE_NAMESPACE} ${path.basename(file)}.`);
  }
  return principal;
}

function run(program: string, args: string[], stdinFile?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(program, args, { encoding: 'utf8', maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: stdout ?? '', stderr: stderr ?? '' });
    });
    if (stdinFile) fs.createReadStream(stdinFile).pipe(child.stdin!);
    else child.stdin?.end();
  });
}
