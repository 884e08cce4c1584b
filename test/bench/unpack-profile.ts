// Profiles the archive path of `release --archive` in-process, outside a test host: copy + sha256 of a cached archive, then one
// readArchive into a fresh tree that shares the identical files of a "live" tree unpacked (sealed) from another archive.
// Usage: tsx test/bench/unpack-profile.ts NEW.tar.(gz|zst) LIVE.tar.(gz|zst) WORKDIR [runs]   (as root; node --cpu-prof for a profile)
import fs from 'node:fs';
import path from 'node:path';
import { fileSha256 } from '../../scripts/lib/assemble/archive.ts';
import { readArchive } from '../../scripts/lib/assemble/archive-read.ts';
import { DEFAULT_LIMITS } from '../../scripts/lib/assemble/archive-rules.ts';
import { shareSource } from '../../scripts/lib/assemble/share-source.ts';
import { treeWriter } from '../../scripts/lib/assemble/tree-writer.ts';

const [archive, liveArchive, work, runsArg] = process.argv.slice(2);
const releaseDirOf = (r: { release: string }) => `/usr/local/src/app/releases/${r.release}`;
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const live = path.join(work, 'live');
if (!fs.existsSync(path.join(live, '.cutover-archive.json'))) {
  fs.rmSync(live, { recursive: true, force: true });
  const w = treeWriter(live, { seal: true });
  await readArchive(liveArchive, { releaseDirOf, limits: DEFAULT_LIMITS, sink: () => w });
}
for (let i = 0; i < Number(runsArg ?? 1); i++) {
  const dir = path.join(work, 'new');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  const c0 = cpu();
  const staged = path.join(dir, 'release.tar');
  fs.copyFileSync(archive, staged);
  const c1 = cpu();
  const sha = await fileSha256(staged);
  const c2 = cpu();
  const w = treeWriter(path.join(dir, 'tree'), { seal: true, share: shareSource(live, { uid: 0, gid: 0 }) });
  // UNPACK_PROFILE=check: read and check only (no tree written): the cost of the inflate and the parse alone.
  const read = await readArchive(staged, { releaseDirOf, limits: DEFAULT_LIMITS, sink: process.env.UNPACK_PROFILE === 'check' ? undefined : () => w });
  const c3 = cpu();
  console.log(`copy ${(c1 - c0).toFixed(2)} sha256 ${(c2 - c1).toFixed(2)} read+write ${(c3 - c2).toFixed(2)} total ${(c3 - c0).toFixed(2)} CPU s; ${read.entries} entries, ${(w.sharedBytes() / 1e6).toFixed(0)} MB shared, sha ${sha.slice(0, 12)}`);
}
