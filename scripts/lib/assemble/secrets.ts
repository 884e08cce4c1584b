// Secrets: the values of the app's environment file, masked in whatever cutover prints or records.
import fs from 'node:fs';
import { parseEnvFile } from './appenv.ts';

/** Shorter values are not masked: they would blank common words (true, 1, dev) all over the output. */
export const MIN_SECRET_LENGTH = 4;

/** [value, name] for every value of the env file worth masking, longest first (a secret that contains another is masked whole). */
export function secretValues(envFile: string | undefined): [string, string][] {
  if (!envFile) return [];
  let text: string;
  try {
    text = fs.readFileSync(envFile, 'utf8');
  } catch {
    return [];
  }
  const byValue = new Map<string, string>();
  for (const [name, value] of Object.entries(parseEnvFile(text))) {
    if (value.length >= MIN_SECRET_LENGTH && !byValue.has(value)) byValue.set(value, name);
  }
  return [...byValue].sort((a, b) => b[0].length - a[0].length);
}

/**
 * Replaces each env-file value in text by `[secret NAME]`. For the app's journal lines and health-check
 * output that cutover prints and records: an app that fails at start often prints its database URL.
 */
export function maskSecrets(text: string, envFile: string | undefined): string {
  let out = text;
  for (const [value, name] of secretValues(envFile)) out = out.split(value).join(`[secret ${name}]`);
  return out;
}
