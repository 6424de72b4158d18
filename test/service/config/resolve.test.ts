import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import yargs from 'yargs';
import { serveFlags } from '../../../src/cli/serve-flags.js';
import { ConfigError } from '../../../src/protocol/errors.js';
import { normalizeConfig } from '../../../src/service/config/normalize.js';
import { OPTION_NAMES, OPTIONS, type OptionName, type OptionSpec } from '../../../src/service/config/options.js';
import { needsRestart, resolveSettings, type SettingsInput } from '../../../src/service/config/resolve.js';
import { createLogger } from '../../../src/service/log.js';

const groups = (name: string) => (name === 'qemu' ? 64 : Number.NaN);
const resolve = (input: SettingsInput) =>
  resolveSettings(input, (g) => {
    const gid = groups(g);
    if (Number.isNaN(gid)) throw new ConfigError(`option socket-group ${g}: no such group`);
    return gid;
  });
const base = { protocol: 'kbs', unix: ['/run/a.sock'] };
const silent = createLogger({ level: 'silent' });
const file = (json: Record<string, unknown>) => ({ path: '/etc/aproxy.json', json });

/** One valid value per option, as a flag gives it and as the file gives it. */
function sample(name: OptionName, spec: OptionSpec): { flag: unknown; file: unknown } {
  switch (spec.type) {
    case 'integer':
      return { flag: (spec.min ?? 0) + 7, file: (spec.min ?? 0) + 7 };
    case 'boolean':
      return { flag: true, file: true };
    case 'choice':
      return { flag: spec.choices?.[1], file: spec.choices?.[1] };
    case 'strings':
      return name === 'backend-option'
        ? { flag: ['url=http://kbs:1'], file: ['url=http://kbs:1'] }
        : { flag: ['/a', '/b'], file: ['/a', '/b'] };
    case 'ports':
      return { flag: ['1996'], file: 1996 };
    case 'mode':
      return { flag: '0660', file: '0660' };
    case 'group':
      return { flag: 'qemu', file: 'qemu' };
    case 'address':
      return { flag: '127.0.0.1:9464', file: '127.0.0.1:9464' };
    default:
      if (name === 'url') return { flag: 'http://kbs:8080', file: 'http://kbs:8080' };
      // A path: written relative in the file (/etc/aproxy.json), it is the same file as the absolute flag.
      if (spec.path !== undefined) return { flag: '/etc/some-value.js', file: './some-value.js' };
      return { flag: 'some-value', file: 'some-value' };
  }
}

describe('the option table', () => {
  test('every option that is both a flag and a file key has the same meaning from either', () => {
    for (const name of OPTION_NAMES) {
      const spec: OptionSpec = OPTIONS[name];
      if ((spec.where ?? 'both') !== 'both') continue;
      const s = sample(name, spec);
      const { [name]: _, ...rest } = base as Record<string, unknown>;
      const fromFlag = resolve({ flags: { ...rest, [name]: s.flag } });
      const fromFile = resolve({ flags: rest, file: file({ [name]: s.file }) });
      assert.notEqual(fromFlag.values[name], undefined, name);
      assert.deepEqual(fromFile.values[name], fromFlag.values[name], `${name}: file and flag agree`);
      assert.deepEqual(fromFile.config, fromFlag.config, `${name}: same ProxyConfig`);
      assert.deepEqual(fromFile.process, fromFlag.process, `${name}: same process settings`);
    }
  });

  test('the yargs flags are exactly the options a flag may set', () => {
    const y = serveFlags(yargs([])) as unknown as { getOptions(): { key: Record<string, unknown> } };
    const declared = new Set(Object.keys(y.getOptions().key));
    const expected = OPTION_NAMES.filter((n) => (OPTIONS[n] as OptionSpec).where !== 'file');
    assert.deepEqual([...declared].filter((k) => k !== 'help' && k !== 'version').sort(), [...expected].sort());
  });

  test('only `config` is a flag without a file key, only `backend` and `listeners` are file keys without a flag', () => {
    const where = (n: OptionName) => (OPTIONS[n] as OptionSpec).where ?? 'both';
    assert.deepEqual(
      OPTION_NAMES.filter((n) => where(n) === 'flag'),
      ['config'],
    );
    assert.deepEqual(OPTION_NAMES.filter((n) => where(n) === 'file').sort(), ['backend', 'listeners']);
  });

  test('every file key a listener takes is a top-level key too', () => {
    for (const name of OPTION_NAMES)
      if ((OPTIONS[name] as OptionSpec).listener === true) assert.notEqual((OPTIONS[name] as OptionSpec).where, 'flag', name);
  });
});

describe('flags and the config file become one checked configuration', () => {
  test('the config file takes the vsock limits and the session budget (once refused as unknown keys)', () => {
    const s = resolve({
      flags: {},
      file: file({
        protocol: 'kbs',
        vsock: true,
        'vsock-max-per-cid': 8,
        'vsock-max-connections': 100,
        'sessions-per-minute': 12,
        'session-burst': 3,
      }),
    });
    assert.deepEqual(s.config.guestLimits, { maxPerCid: 8, maxTotal: 100, sessionsPerMinute: 12, sessionBurst: 3 });
    assert.deepEqual(s.config.vsock, [1995]);
  });

  test('a flag wins over the file, the file over the default', () => {
    const s = resolve({ flags: { ...base, 'max-frame-bytes': 100 }, file: file({ 'max-frame-bytes': 200, 'phase-timeout-ms': 5000 }) });
    assert.equal(s.config.maxFrameBytes, 100);
    assert.equal(s.config.phaseTimeoutMs, 5000);
    assert.equal(s.config.frameTimeoutMs, undefined, 'unset: the default is applied once, by normalizeConfig');
    const [listener] = normalizeConfig({ ...s.config, log: silent }).listeners;
    assert.equal(listener?.frameTimeoutMs, OPTIONS['frame-timeout-ms'].default);
    assert.equal(s.process.logLevel, 'info');
  });

  test("the backend's options: the file's object, then key=value pairs, then the shorthand options", () => {
    const s = resolve({
      flags: { ...base, url: 'http://flag:1', 'backend-option': ['resource=a/b/c', 'url=http://pair:1'] },
      file: file({ backend: { url: 'http://object:1', colour: 'blue', resource: 'x/y/z' }, 'request-timeout-ms': 900 }),
    });
    assert.deepEqual(s.config.backendOptions, { url: 'http://flag:1', colour: 'blue', resource: 'a/b/c', requestTimeoutMs: 900 });
  });

  test('a listeners entry: one address, its own options, backend options merged, a socket group resolved', () => {
    const s = resolve({
      flags: { protocol: 'kbs' },
      file: file({
        listeners: [
          { name: 'vm-a', unix: '/run/vm-a.sock', resource: 'vtpm/vm-a', 'socket-group': 'qemu', 'max-frame-bytes': 4096 },
          { vsock: 2000 },
        ],
      }),
    });
    assert.deepEqual(s.config.listeners, [
      { name: 'vm-a', unix: '/run/vm-a.sock', socketGid: 64, maxFrameBytes: 4096, backendOptions: { resource: 'vtpm/vm-a' } },
      { vsock: 2000 },
    ]);
  });

  test('a key that begins with // is a comment, at the top level and in a listener', () => {
    const s = resolve({
      flags: {},
      file: file({ '//': 'why', protocol: 'kbs', url: 'http://kbs:8080', listeners: [{ '// owner': 'team b', vsock: 1995 }] }),
    });
    assert.equal(s.values.url, 'http://kbs:8080');
    assert.deepEqual(s.config.listeners, [{ vsock: 1995 }]);
  });

  test('bad values name the option and where it was set', () => {
    const cases: Array<[SettingsInput, RegExp]> = [
      [{ flags: { ...base, 'max-frame-bytes': 0 } }, /^option max-frame-bytes must be a positive integer, got 0$/],
      [
        { flags: base, file: file({ 'shutdown-grace-ms': -1 }) },
        /^config file \/etc\/aproxy.json: option shutdown-grace-ms must be a non-negative integer, got -1$/,
      ],
      [
        { flags: base, file: file({ 'log-level': 'loud' }) },
        /option log-level must be one of trace, debug, info, warn, error, fatal, silent, got "loud"/,
      ],
      [{ flags: base, file: file({ colour: 'red' }) }, /unknown key "colour"/],
      // Node's timers fire a longer delay after 1 ms: a deadline that large would fail every guest at once.
      [
        { flags: { ...base, 'phase-timeout-ms': 2 ** 31 } },
        /option phase-timeout-ms must be at most 2147483647 ms \(about 24\.8 days\), got 2147483648/,
      ],
      [{ flags: { ...base, 'shutdown-grace-ms': 2 ** 32 } }, /option shutdown-grace-ms must be at most 2147483647 ms/],
      // Only `//` begins a comment: a key that looks like one otherwise is still a typo to name.
      [{ flags: base, file: file({ '/ note': 'x' }) }, /unknown key "\/ note"/],
      [{ flags: base, file: file({ config: 'other.json' }) }, /unknown key "config"/],
      [
        { flags: base, file: file({ listeners: [{ unix: '/a', vsock: 1 }] }) },
        /listeners\[0\]: each listener needs exactly one of "unix", "vsock" or "systemd"/,
      ],
      [{ flags: base, file: file({ listeners: [{ unix: ['/a', '/b'] }] }) }, /listeners\[0\]: unix takes one value in a listener/],
      [{ flags: base, file: file({ listeners: [{ vsock: 1, 'log-level': 'debug' }] }) }, /listeners\[0\]: unknown key "log-level"/],
      [{ flags: { ...base, 'socket-group': 'nobody-here' } }, /option socket-group nobody-here: no such group/],
      [{ flags: { ...base, metrics: 'localhost' } }, /option metrics must be ADDR:PORT/],
      [{ flags: { unix: ['/a'] } }, /option protocol is required/],
      [{ flags: base, file: file({ 'vsock-sessions-per-minute': 6 }) }, /unknown key "vsock-sessions-per-minute"/],
    ];
    for (const [input, re] of cases)
      assert.throws(
        () => resolve(input),
        (err: unknown) => err instanceof ConfigError && re.test(err.message),
        String(re),
      );
  });

  test('sockets from systemd are listeners enough', () => {
    assert.deepEqual(resolve({ flags: { protocol: 'kbs' }, listenFds: [{ fd: 3 }, { fd: 4, name: 'vsock' }] }).config.listenFds, [
      { fd: 3 },
      { fd: 4, name: 'vsock' },
    ]);
  });

  test('a reload names the changed options it does not apply', () => {
    const before = resolve({ flags: base, file: file({ 'log-level': 'info', 'phase-timeout-ms': 1000 }) });
    const after = resolve({ flags: base, file: file({ 'log-level': 'debug', 'phase-timeout-ms': 2000, 'session-burst': 2 }) });
    assert.deepEqual(needsRestart(before, after), ['session-burst', 'log-level']);
    assert.deepEqual(needsRestart(before, before), []);
  });
});
