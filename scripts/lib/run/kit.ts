// Where the kit itself lives (its config, templates and scripts), found from this module's own place, under tsx or compiled.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The kit's own directory: the nearest parent of this module holding config/manifest.schema.json
 * (scripts/lib/run/ under tsx, dist/… when compiled for the `cutover` executable).
 */
export const kitDir = findKitDir(path.dirname(fileURLToPath(import.meta.url)));

function findKitDir(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'config', 'manifest.schema.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(start, '..', '..', '..');
  }
}
export const kitPaths = {
  dir: kitDir,
  schema: path.join(kitDir, 'config', 'manifest.schema.json'),
  defaultManifest: path.join(kitDir, 'config', 'app.yaml'),
  templates: path.join(kitDir, 'templates'),
  scripts: path.join(kitDir, 'scripts'),
};
