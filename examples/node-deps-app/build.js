// Build step of the deps example app: writes dist/version.json (the version and when it was built).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import dayjs from 'dayjs';

const appDir = path.dirname(fileURLToPath(import.meta.url));
const version = readFileSync(path.join(appDir, 'VERSION'), 'utf8').trim();
mkdirSync(path.join(appDir, 'dist'), { recursive: true });
const info = { version, builtAt: dayjs().toISOString() };
writeFileSync(path.join(appDir, 'dist', 'version.json'), JSON.stringify(info, null, 2) + '\n');
console.log(`built version ${version}: dist/version.json`);
