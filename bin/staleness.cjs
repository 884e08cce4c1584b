// Whether the kit's compiled verbs (dist/) are older than what they are compiled from: bin/cutover and the tests ask.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

/**
 * What dist/ is compiled from: the verbs and the kit under scripts/, the compile scripts, the manifest's
 * schema (its validator is generated code in dist/) and the installed packages (bundled in).
 */
function sources(kit) {
  const files = [];
  const walk = (rel) => {
    for (const entry of fs.readdirSync(path.join(kit, rel), { withFileTypes: true })) {
      if (entry.isDirectory()) walk(`${rel}/${entry.name}`);
      else if (entry.name.endsWith('.ts') || entry.name.endsWith('.mjs')) files.push(`${rel}/${entry.name}`);
    }
  };
  walk('scripts');
  return [...files, 'config/manifest.schema.json', 'node_modules/.package-lock.json'];
}

/** Why the compiled output of the kit at `kit` cannot be used, or '' when it can. */
function staleness(kit) {
  const stamp = fs.statSync(path.join(kit, 'dist', 'compiled.json'), { throwIfNoEntry: false });
  if (!stamp) return 'the compiled kit (dist/) is missing';
  const newer = sources(kit).filter((rel) => (fs.statSync(path.join(kit, rel), { throwIfNoEntry: false })?.mtimeMs ?? 0) > stamp.mtimeMs);
  if (newer.length > 0) return `the compiled kit (dist/) is older than ${newer.slice(0, 3).join(', ')}${newer.length > 3 ? ` and ${newer.length - 3} more` : ''}`;
  return '';
}

module.exports = { staleness };
