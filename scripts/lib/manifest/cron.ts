// The cron schedule rule (5 fields, as Debian's cron(8) reads them): the one check of prune.schedule, used by the manifest and by the cron.d renderer.

/** A value as it would be quoted in a message (as manifest.ts shows values). */
function show(value: string): string {
  const quoted = JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
  return quoted.includes("'") ? quoted : `'${quoted.slice(1, -1).replace(/\\"/g, '"')}'`;
}

const CRON_FIELDS = [
  { name: 'minute', min: 0, max: 59, names: [] as string[] },
  { name: 'hour', min: 0, max: 23, names: [] },
  { name: 'day-of-month', min: 1, max: 31, names: [] },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day-of-week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

/** What is wrong with a 5-field cron schedule (as cron(8) on Debian reads it); [] when it is valid. */
export function cronProblems(schedule: string): string[] {
  const fields = schedule.trim().split(/[ \t]+/);
  if (fields.length !== 5 || /[^0-9A-Za-z*,/ \t-]/.test(schedule)) {
    return ['must be a cron schedule of 5 fields (minute hour day-of-month month day-of-week), such as "17 3 * * *".'];
  }
  return fields.flatMap((field, i) => cronFieldProblems(field, CRON_FIELDS[i]));
}

function cronFieldProblems(field: string, spec: (typeof CRON_FIELDS)[number]): string[] {
  const wrong = `the ${spec.name} field ${show(field)}`;
  const value = (token: string | undefined) => {
    if (token === undefined) return undefined;
    const named = spec.names.indexOf(token.toLowerCase());
    return named >= 0 ? named + spec.min : /^[0-9]+$/.test(token) ? Number(token) : NaN;
  };
  for (const item of field.split(',')) {
    const m = /^(?:\*|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:\/([0-9]+))?$/.exec(item);
    const [lo, hi, step] = m ? [value(m[1]), value(m[2]), value(m[3])] : [];
    if (!m || Number.isNaN(lo) || Number.isNaN(hi)) {
      const names = spec.names.length ? ` or a name like ${spec.names[1]}` : '';
      return [`${wrong} is not valid: use *, a number${names}, a range like 1-5, a list like 1,15 or a step like */10.`];
    }
    for (const v of [lo, hi]) {
      if (v !== undefined && (v < spec.min || v > spec.max)) return [`the ${spec.name} field has ${v}, outside ${spec.min}-${spec.max}.`];
    }
    if (lo !== undefined && hi !== undefined && hi < lo) return [`${wrong} has a range that runs backwards.`];
    if (step !== undefined && (step < 1 || step > spec.max)) return [`${wrong} has the step /${step}; use 1 to ${spec.max}.`];
  }
  return [];
}
