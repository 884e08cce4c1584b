// Test-only: systemd's own reading of unit-file values (unquoting, specifiers, ExecStart variables), to check escape.ts against.
const C_ESCAPES: Record<string, string> = {
  a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v',
  '\\': '\\', '"': '"', "'": "'", s: ' ',
};

/**
 * Splits a directive value into words the way systemd's extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)
 * does, then expands specifiers (only `%%` is accepted: cutover never writes another specifier).
 * Throws on unbalanced quotes or an unknown escape, which systemd would warn about.
 */
export function systemdUnquote(value: string): string[] {
  const words: string[] = [];
  let i = 0;
  const n = value.length;
  const unescape = (): string => {
    const c = value[i++];
    if (c === undefined) throw new Error('trailing backslash');
    if (c in C_ESCAPES) return C_ESCAPES[c]!;
    const hex = (len: number) => {
      const h = value.slice(i, i + len);
      if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(h)) throw new Error(`bad \\${c} escape`);
      i += len;
      return String.fromCodePoint(parseInt(h, 16));
    };
    if (c === 'x') return hex(2);
    if (c === 'u') return hex(4);
    if (c === 'U') return hex(8);
    if (/[0-7]/.test(c)) {
      const o = c + value.slice(i, i + 2);
      if (!/^[0-7]{3}$/.test(o)) throw new Error('bad octal escape');
      i += 2;
      return String.fromCodePoint(parseInt(o, 8));
    }
    throw new Error(`unknown escape \\${c}`);
  };
  while (i < n) {
    while (i < n && /[ \t\n\r]/.test(value[i]!)) i++;
    if (i >= n) break;
    let word = '';
    let quote: string | null = null;
    for (; i < n; ) {
      const c = value[i]!;
      if (quote) {
        i++;
        if (c === quote) quote = null;
        else if (c === '\\') word += unescape();
        else word += c;
      } else if (c === '"' || c === "'") {
        quote = c;
        i++;
      } else if (c === '\\') {
        i++;
        word += unescape();
      } else if (/[ \t\n\r]/.test(c)) {
        break;
      } else {
        word += c;
        i++;
      }
    }
    if (quote) throw new Error('unbalanced quotes');
    words.push(expandSpecifiers(word));
  }
  return words;
}

/** systemd's specifier expansion, limited to `%%` (any other specifier is an error here). */
export function expandSpecifiers(word: string): string {
  return word.replace(/%(.?)/gs, (_m, c: string) => {
    if (c === '%') return '%';
    throw new Error(`unexpected specifier %${c}`);
  });
}

/**
 * What the service manager does to each ExecStart= argument when it runs the command (replace_env_argv):
 * a word that is exactly `$NAME` becomes the variable's words; elsewhere `${NAME}` is replaced and `$$`
 * becomes `$`; a lone `$` followed by anything else stays.
 */
export function expandExecVariables(argv: string[], env: Record<string, string>): string[] {
  const out: string[] = [];
  for (const word of argv) {
    if (word.startsWith('$') && word[1] !== '{' && word[1] !== '$') {
      const v = env[word.slice(1)];
      if (v !== undefined) out.push(...systemdUnquote(v));
      continue;
    }
    out.push(
      word.replace(/\$(\$|\{([^}]*)\})/g, (_m, what: string, name?: string) =>
        what === '$' ? '$' : (env[name ?? ''] ?? ''),
      ),
    );
  }
  return out;
}
