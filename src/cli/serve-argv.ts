import { parseArgs } from 'node:util';
import { OPTION_NAMES, OPTIONS, type OptionName, type OptionSpec } from '../service/config/options.js';

type ParseOptions = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

const FLAGS = OPTION_NAMES.filter((name) => (OPTIONS[name] as OptionSpec).where !== 'file');
const MULTIPLE = new Set<string>(FLAGS.filter((name) => ['strings', 'ports'].includes((OPTIONS[name] as OptionSpec).type)));
const PARSE: ParseOptions = Object.fromEntries(
  FLAGS.map((name) => [
    name,
    { type: (OPTIONS[name] as OptionSpec).type === 'boolean' ? 'boolean' : 'string', multiple: MULTIPLE.has(name) },
  ]),
);

/**
 * The serve command's flags as yargs would give them, without loading yargs
 * (about 100 ms of every start), for the start a service manager runs:
 * `aproxy --config FILE` and plain `--flag value` pairs. Anything else (a
 * subcommand, --help, a flag it does not know, a bare or negated flag, a
 * value yargs would coerce or refuse, a single-valued flag given twice)
 * gives undefined, and yargs parses or explains it as before.
 */
export function plainServeFlags(args: readonly string[]): Record<string, unknown> | undefined {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...args], options: PARSE, strict: true, allowPositionals: false, tokens: true });
  } catch {
    return undefined;
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option') return undefined;
    if (seen.has(token.name) && !MULTIPLE.has(token.name)) return undefined;
    seen.add(token.name);
  }
  const flags: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(parsed.values)) {
    const spec: OptionSpec = OPTIONS[name as OptionName];
    if (spec.type === 'integer') {
      if (typeof value !== 'string' || !/^\d+$/.test(value)) return undefined;
      flags[name] = Number(value);
    } else if (spec.type === 'choice' && !(spec.choices ?? []).includes(value as string)) return undefined;
    else flags[name] = value;
  }
  return flags;
}
