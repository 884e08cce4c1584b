// Renders the kit's text templates (templates/*): `{{name}}` values, repeated lines for lists, {{#name}} sections.
export type TemplateValue = string | string[] | boolean | undefined;

/**
 * Renders a template: `{{name}}` is replaced by a string value. A line whose placeholder holds a list is
 * repeated once per item (no items: the line is dropped). Lines between `{{#name}}` and `{{/name}}` (each
 * alone on its line) are kept only when the value is true, a non-empty string or a non-empty list.
 * Every placeholder must have a value and every value must be used, so a template and its caller
 * cannot drift apart silently.
 */
export function renderTemplate(template: string, vars: Record<string, TemplateValue>): string {
  const used = new Set<string>();
  const get = (name: string): TemplateValue => {
    if (!(name in vars)) throw new Error(`template placeholder {{${name}}} has no value`);
    used.add(name);
    return vars[name];
  };
  const truthy = (v: TemplateValue) => (Array.isArray(v) ? v.length > 0 : Boolean(v));
  const out: string[] = [];
  const sections: { name: string; keep: boolean }[] = [];
  for (const line of template.split('\n')) {
    const open = /^\{\{#(\w+)\}\}$/.exec(line.trim());
    const close = /^\{\{\/(\w+)\}\}$/.exec(line.trim());
    if (open) {
      sections.push({ name: open[1]!, keep: truthy(get(open[1]!)) });
      continue;
    }
    if (close) {
      if (sections.pop()?.name !== close[1]) throw new Error(`template section {{/${close[1]}}} closes nothing`);
      continue;
    }
    const names = [...line.matchAll(/\{\{(\w+)\}\}/g)].map((mm) => mm[1]!);
    if (sections.some((s) => !s.keep)) {
      names.forEach(get); // a value used only in a skipped section is still a used value
      continue;
    }
    const lists = names.filter((name) => Array.isArray(get(name)));
    if (lists.length > 1) throw new Error(`template line repeats over two lists: ${line}`);
    const items = lists.length ? (get(lists[0]!) as string[]) : [null];
    for (const item of items) {
      out.push(
        line.replace(/\{\{(\w+)\}\}/g, (_m, name: string) => {
          const v = name === lists[0] ? item : get(name);
          if (typeof v !== 'string') throw new Error(`template placeholder {{${name}}} needs a string`);
          if (/[\r\n]/.test(v)) throw new Error(`template value for {{${name}}} spans lines`);
          return v;
        }),
      );
    }
  }
  if (sections.length) throw new Error(`template section {{#${sections.at(-1)!.name}}} is not closed`);
  const unused = Object.keys(vars).filter((k) => !used.has(k));
  if (unused.length) throw new Error(`template values never used: ${unused.join(', ')}`);
  const text = out.join('\n');
  return text.endsWith('\n') ? text : `${text}\n`;
}

