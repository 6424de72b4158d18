import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import type { RawBackendOptions } from '../../backends/contract.js';
import { MAX_TIMER_MS } from '../../backends/deadline.js';
import { BUILTIN_BACKEND_NAMES, isPluginSpecifier } from '../../backends/registry.js';
import { ConfigError } from '../../protocol/errors.js';
import type { PassedSocket } from '../systemd.js';
import { DEFAULT_VSOCK_PORT } from './defaults.js';
import { LISTENER_ONLY_KEYS, OPTION_NAMES, OPTIONS, type OptionName, type OptionSpec, optionNamed } from './options.js';
import type { ListenerConfig, ProcessOptions, Settings } from './types.js';
import { parseListenAddress, resolveGroup } from './values.js';

/**
 * Flags and the config file → checked settings, by the option table
 * (options.ts). Pure but for the group lookup, which is passed in: start,
 * reload and `aproxy check` call it (through load.ts), tests call it
 * directly. Only the process's own defaults are applied here; the proxy's
 * are applied once, by normalizeConfig (normalize.ts), for every config.
 */

export interface SettingsInput {
  /** Flags as parsed (yargs' object; only flags given are present). */
  readonly flags: Readonly<Record<string, unknown>>;
  /** The config file: its path, for messages, and its JSON. */
  readonly file?: { readonly path: string; readonly json: unknown };
  /** Listening sockets passed by a service manager. */
  readonly listenFds?: readonly PassedSocket[];
}

export type GroupLookup = (group: string) => number;
type Values = Partial<Record<OptionName, unknown>>;

/** The settings flags and file describe, every value checked; ConfigError names the option and where it was set. */
export function resolveSettings(input: SettingsInput, lookupGroup: GroupLookup = resolveGroup): Settings {
  const file = input.file === undefined ? {} : fileOptions(input.file.path, input.file.json);
  const filePrefix = input.file === undefined ? '' : `config file ${input.file.path}: `;
  const values: Values = {};
  for (const name of OPTION_NAMES) {
    const spec: OptionSpec = OPTIONS[name];
    const flag = spec.where === 'file' ? undefined : input.flags[name];
    const raw = flag ?? file[name];
    if (raw === undefined) continue;
    const fromFile = flag === undefined && input.file !== undefined ? input.file.path : undefined;
    values[name] = fileRelative(spec, parseValue(name, spec, raw, flag !== undefined ? '' : filePrefix, lookupGroup, fromFile), fromFile);
  }
  if (values.protocol === undefined) {
    throw new ConfigError(`option protocol is required: ${BUILTIN_BACKEND_NAMES.join(', ')}, or a path to a backend module`);
  }
  const config: Record<string, unknown> = { listenFds: input.listenFds ?? [], backendOptions: backendOptionsOf(values) };
  const limits: Record<string, unknown> = {};
  const process: Record<string, unknown> = {};
  for (const name of OPTION_NAMES) {
    const to: OptionSpec['to'] = OPTIONS[name].to;
    if (typeof to !== 'object' || 'backend' in to) continue;
    if ('process' in to) process[to.process] = values[name] ?? (OPTIONS[name] as OptionSpec).default;
    else if (values[name] === undefined) continue;
    else if ('proxy' in to) config[to.proxy] = values[name];
    else limits[to.limits] = values[name];
  }
  if (Object.keys(limits).length > 0) config.guestLimits = limits;
  return { config: config as unknown as Settings['config'], process: process as unknown as ProcessOptions, values };
}

/** The options that changed between two settings and that a reload does not apply (an unset option counts as its default). */
export function needsRestart(before: Settings, after: Settings): OptionName[] {
  const effective = (s: Settings, n: OptionName) => JSON.stringify(s.values[n] ?? (OPTIONS[n] as OptionSpec).default);
  return OPTION_NAMES.filter((n) => !OPTIONS[n].reload && n !== 'config' && effective(before, n) !== effective(after, n));
}

/** The file's top level by option name; unknown keys refused. */
function fileOptions(path: string, json: unknown): Values {
  if (!isPlainObject(json)) throw new ConfigError(`config file ${path}: must hold a JSON object whose keys are option names`);
  const out: Values = {};
  for (const [key, value] of Object.entries(json)) {
    if (isComment(key)) continue;
    const name = optionNamed(key);
    if (name === undefined || (OPTIONS[name] as OptionSpec).where === 'flag') {
      throw new ConfigError(
        `config file ${path}: unknown key ${JSON.stringify(key)} (keys are the option names, e.g. "max-frame-bytes"; docs/cli.md lists them)`,
      );
    }
    out[name] = value;
  }
  return out;
}

/** JSON has no comments: a key that begins with `//` is one, its value ignored; any other unknown key is still refused. */
const isComment = (key: string) => key.startsWith('//');

/** A path option's value written in the config file, taken from the file's directory when relative. */
function fileRelative(spec: OptionSpec, value: unknown, configFile: string | undefined): unknown {
  if (configFile === undefined || typeof value !== 'string' || spec.path === undefined || isAbsolute(value)) return value;
  if (spec.path === 'plugin' && !isPluginSpecifier(value)) return value;
  return resolvePath(dirname(configFile), value);
}

function parseListeners(raw: unknown, where: string, lookupGroup: GroupLookup, configFile: string | undefined): ListenerConfig[] {
  if (!Array.isArray(raw)) throw new ConfigError(`${where}listeners must be a list of objects`);
  return raw.map((entry: unknown, i) => parseListener(entry, `${where}listeners[${i}]: `, lookupGroup, configFile));
}

/** One `listeners` entry: a name, one address, and overrides of options marked `listener`, each a single value. */
function parseListener(entry: unknown, where: string, lookupGroup: GroupLookup, configFile: string | undefined): ListenerConfig {
  if (!isPlainObject(entry)) throw new ConfigError(`${where}must be an object`);
  const values: Values = {};
  const config: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(entry)) {
    if (isComment(key)) continue;
    if (Object.hasOwn(LISTENER_ONLY_KEYS, key)) {
      if (typeof raw !== 'string' || raw === '') throw new ConfigError(`${where}${key} must be a non-empty string`);
      config[key] = raw;
      continue;
    }
    const option = optionNamed(key);
    const spec: OptionSpec | undefined = option === undefined ? undefined : OPTIONS[option];
    if (option === undefined || spec === undefined || spec.listener !== true) {
      const allowed = [...Object.keys(LISTENER_ONLY_KEYS), ...OPTION_NAMES.filter((n) => (OPTIONS[n] as OptionSpec).listener === true)];
      throw new ConfigError(`${where}unknown key ${JSON.stringify(key)} (a listener takes ${allowed.join(', ')})`);
    }
    // One address per listener: `unix` and `vsock` take a single value here.
    if ((spec.type === 'strings' || spec.type === 'ports') && Array.isArray(raw))
      throw new ConfigError(`${where}${key} takes one value in a listener`);
    values[option] = fileRelative(spec, parseValue(option, spec, raw, where, lookupGroup), configFile);
  }
  if ([values.unix, values.vsock, config.systemd].filter((a) => a !== undefined).length !== 1)
    throw new ConfigError(`${where}each listener needs exactly one of "unix", "vsock" or "systemd"`);
  for (const [option, value] of Object.entries(values) as Array<[OptionName, unknown]>) {
    const to: OptionSpec['to'] = OPTIONS[option].to;
    if (typeof to === 'object' && 'proxy' in to)
      config[to.proxy] = option === 'unix' || option === 'vsock' ? (value as unknown[])[0] : value;
  }
  const backendOptions = backendOptionsOf(values);
  if (Object.keys(backendOptions).length > 0) config.backendOptions = backendOptions;
  return config as unknown as ListenerConfig;
}

/** The backend's options: the `backend` object, then `backend-option` pairs, then the shorthand options, later ones winning. */
function backendOptionsOf(values: Values): RawBackendOptions {
  const out: Record<string, unknown> = { ...(values.backend as RawBackendOptions | undefined) };
  // key=value pairs, split (and checked) by parseValue.
  for (const [k, v] of (values['backend-option'] as Array<[string, string]> | undefined) ?? []) out[k] = v;
  for (const name of OPTION_NAMES) {
    const to: OptionSpec['to'] = OPTIONS[name].to;
    if (typeof to === 'object' && 'backend' in to && values[name] !== undefined) out[to.backend] = values[name];
  }
  return out;
}

/** Checks one value of an option's type; the same rule whether it came from a flag or the file. */
export function parseValue(
  name: string,
  spec: OptionSpec,
  raw: unknown,
  where: string,
  lookupGroup: GroupLookup,
  configFile?: string,
): unknown {
  const bad = (expected: string): never => {
    throw new ConfigError(`${where}option ${name} must be ${expected}, got ${JSON.stringify(raw) ?? String(raw)}`);
  };
  const nonEmpty = (v: unknown): string => (typeof v === 'string' && v !== '' ? v : bad('a non-empty string'));
  switch (spec.type) {
    case 'string':
      return nonEmpty(raw);
    case 'integer': {
      const min = spec.min ?? 0;
      if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < min)
        bad(min > 0 ? 'a positive integer' : 'a non-negative integer');
      // Every `-ms` option becomes a timer, and Node's timers fire a longer delay after 1 ms.
      if (name.endsWith('-ms') && (raw as number) > MAX_TIMER_MS) bad(`at most ${MAX_TIMER_MS} ms (about 24.8 days)`);
      return raw;
    }
    case 'boolean':
      return typeof raw === 'boolean' ? raw : bad('true or false');
    case 'choice':
      return typeof raw === 'string' && (spec.choices ?? []).includes(raw) ? raw : bad(`one of ${(spec.choices ?? []).join(', ')}`);
    case 'strings': {
      const list = (Array.isArray(raw) ? raw : [raw]).map(nonEmpty);
      if (name !== 'backend-option') return list;
      return list.map((pair) => {
        const i = pair.indexOf('=');
        return i > 0 ? [pair.slice(0, i), pair.slice(i + 1)] : bad('key=value pairs');
      });
    }
    case 'ports': {
      // A bare flag (`--vsock`) parses as an empty list, `true` in the file: the default port.
      const list = Array.isArray(raw) ? (raw.length === 0 ? [true] : raw) : [raw];
      return list.map((p: unknown) => {
        if (p === true || p === '') return DEFAULT_VSOCK_PORT;
        const port = typeof p === 'number' ? p : typeof p === 'string' && /^\d+$/.test(p) ? Number(p) : Number.NaN;
        if (Number.isSafeInteger(port) && port >= 1 && port < 0xffffffff) return port;
        throw new ConfigError(
          `${where}option ${name} must be a port number, or true for ${DEFAULT_VSOCK_PORT}, got ${JSON.stringify(p) ?? String(p)}`,
        );
      });
    }
    case 'mode': {
      const text = nonEmpty(raw);
      return /^0?[0-7]{3}$/.test(text) ? Number.parseInt(text, 8) : bad('an octal mode such as "0600" or "0660"');
    }
    case 'group':
      if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0) return raw;
      return lookupGroup(nonEmpty(raw));
    case 'address':
      try {
        parseListenAddress(nonEmpty(raw));
      } catch {
        bad('ADDR:PORT, e.g. 127.0.0.1:9464');
      }
      return raw;
    case 'object':
      return isPlainObject(raw) ? raw : bad('a JSON object');
    case 'listeners':
      return parseListeners(raw, where, lookupGroup, configFile);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
