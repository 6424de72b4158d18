import type { Argv, Options } from 'yargs';
import { OPTION_NAMES, OPTIONS, type OptionSpec } from '../service/config/options.js';
import { formatValue } from '../service/config/values.js';

/**
 * The serve command's flags, one per option of the table that a flag may
 * set. No yargs defaults: a flag is present only when given, so the config
 * file's value stands otherwise (normalize.ts applies the defaults).
 */
export function serveFlags<T>(y: Argv<T>): Argv<T> {
  for (const name of OPTION_NAMES) {
    const spec: OptionSpec = OPTIONS[name];
    if (spec.where === 'file') continue;
    y.option(name, flagOf(spec));
  }
  return y;
}

function flagOf(spec: OptionSpec): Options {
  const shown =
    spec.default !== undefined
      ? { defaultDescription: formatValue(spec, spec.default) }
      : spec.defaultText !== undefined
        ? { defaultDescription: spec.defaultText }
        : {};
  const describe = spec.listener === true ? `${spec.help} [listener]` : spec.help;
  switch (spec.type) {
    case 'integer':
      return { type: 'number', describe, ...shown };
    case 'boolean':
      return { type: 'boolean', describe, ...shown };
    case 'choice':
      return { type: 'string', choices: spec.choices, describe, ...shown };
    case 'strings':
    case 'ports':
      return { type: 'string', array: true, describe, ...shown };
    default:
      return { type: 'string', describe, ...shown };
  }
}
