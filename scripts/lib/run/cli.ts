// Argv parsing, --help, and the ONE place that maps errors to exit codes.
import { parseArgs } from 'node:util';
import path from 'node:path';
import { CutoverError, ExitCode, UsageError } from './errors.ts';
import { kitPaths } from './kit.ts';

export interface OptionSpec {
  type: 'boolean' | 'string';
  help: string;
  /** Shown in --help after the option name, e.g. "N" or "FILE". */
  arg?: string;
}

export interface CommandSpec {
  /** The script's verb, e.g. "release". */
  name: string;
  /** One line: what the verb does. */
  summary: string;
  /** The positional part of the usage line, e.g. "<ref>". */
  positionals?: string;
  /** How many positionals are accepted: [min, max]. */
  arity?: [number, number];
  options: Record<string, OptionSpec>;
  /** Extra paragraphs printed after the options. */
  details?: string;
}

export interface ParsedArgs {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  manifestFile: string;
  /** The verb as the operator gave it, flags and all ("release v1 --rebuild"): what the lock says its holder does. */
  operation: string;
}

/** The verb and its arguments as typed, without --manifest (the lock is the manifest's own); odd words JSON-quoted. */
export function describeOperation(name: string, argv: string[]): string {
  const words: string[] = [name];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--manifest') {
      i++;
      continue;
    }
    if (a.startsWith('--manifest=')) continue;
    words.push(/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a));
  }
  return words.join(' ');
}

/** --dry-run as the verbs that change something describe it. */
export const dryRunOption: OptionSpec = { type: 'boolean', help: 'print every step it would do, and change nothing' };

const common: Record<string, OptionSpec> = {
  manifest: { type: 'string', arg: 'FILE', help: 'the app manifest (default: $CUTOVER_MANIFEST, else config/app.yaml beside the scripts)' },
  help: { type: 'boolean', help: 'show this help and exit' },
};

export function helpText(spec: CommandSpec): string {
  const opts = { ...spec.options, ...common };
  const lines = [
    `Usage: cutover ${spec.name}${spec.positionals ? ' ' + spec.positionals : ''} [options]`,
    `   or: npx tsx scripts/${spec.name}.ts${spec.positionals ? ' ' + spec.positionals : ''} [options]   (the same, from the TypeScript source, in the kit's directory)`,
    '',
    spec.summary,
    '',
    'Options:',
  ];
  for (const [name, o] of Object.entries(opts)) {
    const flag = `  --${name}${o.arg ? ' ' + o.arg : ''}`;
    lines.push(flag.padEnd(24) + o.help);
  }
  if (spec.details) lines.push('', spec.details.trim());
  lines.push(
    '',
    'Exit codes: 0 done; 1 failed (the live release is unchanged or was restored);',
    '2 bad usage or bad manifest (nothing done); 3 another cutover operation holds the lock, or deploys are frozen.',
  );
  return lines.join('\n') + '\n';
}

export function parseCommandLine(spec: CommandSpec, argv: string[], env = process.env): ParsedArgs | 'help' {
  const options = Object.fromEntries(
    Object.entries({ ...spec.options, ...common }).map(([k, o]) => [k, { type: o.type }]),
  ) as Record<string, { type: 'boolean' | 'string' }>;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(String((e as Error).message), `Run \`cutover ${spec.name} --help\` for the options.`);
  }
  if (parsed.values.help) return 'help';
  const [min, max] = spec.arity ?? [0, 0];
  const n = parsed.positionals.length;
  if (n < min || n > max) {
    const want = min === max ? `${min}` : `${min} to ${max}`;
    throw new UsageError(
      `${spec.name} takes ${want} argument${max === 1 ? '' : 's'}${spec.positionals ? ` (${spec.positionals})` : ''}, got ${n}.`,
      `Run \`cutover ${spec.name} --help\` for the usage.`,
    );
  }
  const manifestFile = path.resolve(
    (parsed.values.manifest as string | undefined) ?? env.CUTOVER_MANIFEST ?? kitPaths.defaultManifest,
  );
  return { positionals: parsed.positionals, values: parsed.values, manifestFile, operation: describeOperation(spec.name, argv) };
}

/** Formats an error for the operator: the message, then the hint that says the fix. */
export function formatError(e: unknown): { text: string; code: ExitCode } {
  if (e instanceof CutoverError) {
    return { text: `cutover: ${e.message}${e.hint ? `\n  ${e.hint.replace(/\n/g, '\n  ')}` : ''}`, code: e.exitCode };
  }
  const err = e as Error;
  return {
    text: `cutover: unexpected error: ${err?.stack ?? String(e)}\n  This is a bug in cutover; the live release was not changed by the step that failed.`,
    code: ExitCode.failed,
  };
}

/**
 * Runs an entry script: parse argv, call main, set process.exitCode.
 * main returns an exit code when success is not simply 0 (e.g. nothing to do from cron is still 0).
 */
export async function runCommand(
  spec: CommandSpec,
  // A number other than the ExitCodes: `exec` passes on its command's own exit code.
  main: (args: ParsedArgs) => Promise<ExitCode | number | void>,
  argv = process.argv.slice(2),
): Promise<void> {
  try {
    const args = parseCommandLine(spec, argv);
    if (args === 'help') {
      process.stdout.write(helpText(spec));
      process.exitCode = ExitCode.ok;
      return;
    }
    process.exitCode = (await main(args)) ?? ExitCode.ok;
  } catch (e) {
    const { text, code } = formatError(e);
    process.stderr.write(text + '\n');
    process.exitCode = code;
  }
}
