// A plain start parses its flags without yargs (cli/serve-argv.ts). It must
// give exactly what yargs gives the serve command, or step aside for yargs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import yargs from 'yargs';
import { plainServeFlags } from '../../src/cli/serve-argv.js';
import { serveFlags } from '../../src/cli/serve-flags.js';
import { OPTION_NAMES } from '../../src/service/config/options.js';

/** What yargs gives the serve command for `args`, by option name. */
function viaYargs(args: string[]): Record<string, unknown> {
  const argv = serveFlags(yargs(args)).strict().parseSync() as Record<string, unknown>;
  return Object.fromEntries(OPTION_NAMES.filter((n) => argv[n] !== undefined).map((n) => [n, argv[n]]));
}

describe('a plain start without yargs', () => {
  test('what the units and the README run parses as yargs parses it', () => {
    for (const args of [
      ['--config', '/etc/aproxy/aproxy.json'],
      [],
      ['--protocol', 'kbs', '--url', 'http://127.0.0.1:8080', '--unix', '/run/a.sock', '--unix=/run/b.sock', '--force'],
      ['--protocol', 'kbs', '--url', 'http://kbs', '--vsock', '1995', '--max-frame-bytes', '4096', '--log-format', 'json'],
      [
        '--protocol',
        'kbs',
        '--url',
        'http://kbs',
        '--backend-option',
        'resource=vtpm/{cid}',
        '--socket-mode',
        '0660',
        '--socket-group',
        'kvm',
      ],
    ]) {
      const plain = plainServeFlags(args);
      assert.ok(plain !== undefined, `plain: ${args.join(' ')}`);
      assert.deepEqual(plain, viaYargs(args), args.join(' '));
    }
  });

  test('anything else is left to yargs, which parses or explains it', () => {
    for (const args of [
      ['--help'],
      ['-h'],
      ['--version'],
      ['check', '--config', 'x'],
      ['demo'],
      ['--colour', 'red'],
      ['--no-force'],
      ['--force=false'],
      ['--vsock'],
      ['--max-frame-bytes', '1e3'],
      ['--max-frame-bytes', 'many'],
      ['--log-format', 'xml'],
      ['--url', 'a', '--url', 'b'],
      ['--url', '--unix'],
      ['--', '--url'],
    ]) {
      assert.equal(plainServeFlags(args), undefined, args.join(' '));
    }
  });
});
