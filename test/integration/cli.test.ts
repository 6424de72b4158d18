import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { finished, runCli, spawnCli, waitForOutput } from '../../scripts/processes.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { tempDir } from '../support/harness.js';

const INSTALLED_QEMU = '/usr/bin/qemu-system-x86_64';

describe('command line', () => {
  test('--help documents every proxy flag', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const flag of [
      '--protocol',
      '--url',
      '--unix',
      '--force',
      '--resource',
      '--log-level',
      '--max-frame-bytes',
      '--frame-timeout-ms',
      '--phase-timeout-ms',
      '--request-timeout-ms',
      '--socket-mode',
      '--ca-cert',
    ]) {
      assert.ok(r.stdout.includes(flag), `help mentions ${flag}`);
    }
  });

  test('a missing required flag is one line on stderr and exit code 2', async () => {
    const r = await runCli(['--protocol', 'kbs', '--url', 'http://127.0.0.1:1']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /no listener: give unix PATH, vsock \[PORT\]/);
  });

  test('--help documents vsock, its limits, and that a CID is not attested', async () => {
    const r = await runCli(['--help']);
    for (const flag of ['--vsock', '--vsock-max-per-cid', '--vsock-max-connections', '--sessions-per-minute'])
      assert.ok(r.stdout.includes(flag), flag);
    assert.match(r.stdout, /CID .* not attested/);
    const bad = await runCli(['--protocol', 'kbs', '--url', 'http://127.0.0.1:1', '--vsock', 'many']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /option vsock must be a port number/);
  });

  test("qemu-args --vsock prints what SVSM's QEMU needs with the device (as launch_guest.sh), or the PCI device alone", async () => {
    const mmio = await runCli(['qemu-args', '--vsock', '5']);
    assert.equal(
      mmio.stdout.trim(),
      '-machine x-svsm-virtio-mmio=on -global virtio-mmio.force-legacy=false -device vhost-vsock-device,guest-cid=5',
    );
    const pci = await runCli(['qemu-args', '--vsock', '7', '--vsock-device', 'pci']);
    assert.equal(pci.stdout.trim(), '-device vhost-vsock-pci,guest-cid=7');
    const reserved = await runCli(['qemu-args', '--vsock', '2']);
    assert.equal(reserved.code, 2);
    assert.match(reserved.stderr, /3 to 4294967294/);
  });

  test("qemu-args --qemu asks that QEMU: device planes put the device on SVSM's plane; its version picks the serial reconnect option", async (t) => {
    const dir = await tempDir(t);
    // A QEMU that answers as one with device planes (COCONUT-SVSM's 11.0) would: --version, -h, the q35 machine's properties.
    const fake = join(dir, 'qemu-system-x86_64');
    await writeFile(
      fake,
      '#!/bin/sh\ncase "$1" in --version) echo "QEMU emulator version 11.0.50";; -h) echo "-machine [type=]name[,prop[=value][,...]] device-plane=n";; -machine) echo "  x-svsm-virtio-mmio=<bool>";; esac\n',
      { mode: 0o755 },
    );
    const planes = await runCli(['qemu-args', '--vsock', '5', '--unix', '/run/aproxy/vm.sock', '--qemu', fake]);
    assert.equal(planes.code, 0, planes.stderr);
    assert.equal(planes.stderr, '');
    assert.equal(
      planes.stdout.trim(),
      '-machine x-svsm-virtio-mmio=on,kernel-irqchip=split,device-plane=2 -global virtio-mmio.force-legacy=false -device vhost-vsock-device,guest-cid=5,plane=0 -chardev socket,id=aproxy,path=/run/aproxy/vm.sock,reconnect-ms=1000 -device isa-serial,chardev=aproxy,index=2',
    );
    const missing = await runCli(['qemu-args', '--vsock', '5', '--qemu', join(dir, 'none')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--qemu \S+none: no such program/);
  });

  test('qemu-args --qemu with the installed QEMU: what it prints, that QEMU parses', {
    skip: existsSync(INSTALLED_QEMU) ? false : `${INSTALLED_QEMU} not installed`,
  }, async () => {
    const r = await runCli(['qemu-args', '--vsock', '5', '--unix', '/run/aproxy/vm.sock', '--qemu', INSTALLED_QEMU]);
    assert.equal(r.code, 0, r.stderr);
    const args = r.stdout.trim().split(' ');
    assert.ok(args.includes('-chardev'));
    const version = /version (\d+)\.(\d+)/.exec(spawnSync(INSTALLED_QEMU, ['--version'], { encoding: 'utf8' }).stdout);
    const modern = Number(version?.[1]) > 9 || (Number(version?.[1]) === 9 && Number(version?.[2]) >= 2);
    assert.match(r.stdout, modern ? /reconnect-ms=1000/ : /reconnect=1 /);
    // A stock QEMU lacks SVSM's machine property: said on stderr, the arguments still printed.
    const svsm = spawnSync(INSTALLED_QEMU, ['-machine', 'q35,help'], { encoding: 'utf8' }).stdout.includes('x-svsm-virtio-mmio');
    if (!svsm) assert.match(r.stderr, /has no machine property x-svsm-virtio-mmio: SVSM's vsock device needs COCONUT-SVSM's QEMU/);
    // The device and the global as QEMU parses them, without creating the device (that would open /dev/vhost-vsock).
    const device = args[args.indexOf('-device') + 1] as string;
    const help = spawnSync(
      INSTALLED_QEMU,
      ['-global', args[args.indexOf('-global') + 1] as string, '-device', `${device.split(',')[0]},help`],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(help.status, 0, help.stderr);
    for (const prop of device.split(',').slice(1)) assert.match(help.stdout, new RegExp(`\\b${prop.split('=')[0]}=`), prop);
    // The serial chardev and UART run in a real QEMU in test/qemu, printed by this command with --qemu.
  });

  test('an unknown flag exits 2', async (t) => {
    const dir = await tempDir(t);
    const r = await runCli(['--protocol', 'kbs', '--url', 'http://127.0.0.1:1', '--unix', join(dir, 's'), '--frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Unknown argument: frobnicate/);
  });

  test('bad values exit 2 with the flag named', async (t) => {
    const dir = await tempDir(t);
    const base = ['--protocol', 'kbs', '--url', 'http://127.0.0.1:1', '--unix', join(dir, 's')];
    for (const [extra, re] of [
      [['--max-frame-bytes', '-5'], /option max-frame-bytes must be a positive integer, got -5/],
      [['--socket-mode', 'rw'], /option socket-mode must be an octal mode/],
      [['--log-level', 'loud'], /Invalid values/],
    ] as const) {
      const r = await runCli([...base, ...extra]);
      assert.equal(r.code, 2, `${extra.join(' ')} exits 2`);
      assert.match(r.stderr, re);
    }
    const m = await runCli(['test-kbs', '--measurement', 'abcd', '--secret', '00']);
    assert.equal(m.code, 2);
    assert.match(m.stderr, /--measurement must be 48 bytes/);
    for (const delay of ['-5', 'soon', '1.5']) {
      const d = await runCli(['test-kbs', '--measurement', '00'.repeat(48), '--secret', '00', '--port', '0', '--delay-ms', delay]);
      assert.equal(d.code, 2, `--delay-ms ${delay} exits 2`);
      assert.match(d.stderr, /--delay-ms must be a whole number, 0 or more/);
    }
  });

  test('the backend takes its options from --backend-option and names one it does not know (exit 2)', async (t) => {
    const dir = await tempDir(t);
    const r = await runCli([
      '--protocol',
      'kbs',
      '--backend-option',
      'url=http://127.0.0.1:1',
      '--backend-option',
      'colour=blue',
      '--unix',
      join(dir, 's'),
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /the kbs backend has no option "colour"/);
    const missing = await runCli(['--protocol', 'kbs', '--unix', join(dir, 's2')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /needs the KBS URL: backend option url/);
  });

  test('bad usage is refused before anything is bound: an invalid --url, an unknown --protocol', async (t) => {
    const dir = await tempDir(t);
    const sock = join(dir, 's');
    for (const [args, re] of [
      [['--protocol', 'kbs', '--url', 'not a url'], /backend option url "not a url" is not a URL/],
      [['--protocol', 'kbs', '--url', 'ftp://kbs'], /backend option url must be http:\/\/ or https:\/\//],
      [['--protocol', 'nope', '--url', 'http://127.0.0.1:1'], /neither a built-in backend \(kbs, kbs-test\)/],
    ] as const) {
      const r = await runCli([...args, '--unix', sock, '--log-format', 'json']);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stdout, /listening/);
      await assert.rejects(stat(sock), { code: 'ENOENT' });
    }
  });

  test('an existing path without --force is a clear startup error', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'taken');
    await writeFile(path, 'not a socket');
    const r = await runCli(['--protocol', 'kbs', '--url', 'http://127.0.0.1:1', '--unix', path]);
    assert.equal(r.code, 2, 'a configuration or host problem');
    assert.match(r.stderr, /already exists and is not a socket; remove it, or choose another path \[SOCKET_IN_USE\]/);
    const forced = await runCli(['--protocol', 'kbs', '--url', 'http://127.0.0.1:1', '--unix', path, '--force']);
    assert.equal(forced.code, 2, 'a configuration or host problem');
    assert.match(forced.stderr, /force only replaces sockets \[SOCKET_PATH\]/);
    assert.ok((await stat(path)).isFile(), 'the regular file is untouched');
  });

  test('the real processes: test KBS, proxy and simulated guests, then SIGTERM removes the socket', async (t) => {
    const dir = await tempDir(t);
    const unix = join(dir, 'proxy.sock');
    const measurement = randomBytes(48).toString('hex');
    const secret = randomBytes(16).toString('hex');
    const kbs = spawnCli(['test-kbs', '--measurement', measurement, '--secret', secret, '--port', '0']);
    t.after(() => kbs.kill('SIGKILL'));
    const url = (await waitForOutput(kbs, /http:\/\/127\.0\.0\.1:\d+/))[0].trim();
    // The URL as a backend option: the same as --url.
    const proxy = spawnCli(['--protocol', 'kbs', '--backend-option', `url=${url}`, '--unix', unix]);
    t.after(() => proxy.kill('SIGKILL'));
    await waitForOutput(proxy, /"msg":"aproxy ready"/);
    assert.equal((await stat(unix)).mode & 0o777, 0o600);

    const guests = await runCli([
      'simulate-guest',
      '--unix',
      unix,
      '--measurement',
      measurement,
      '--expect-secret',
      secret,
      '--sessions',
      '6',
      '--concurrency',
      '3',
    ]);
    assert.equal(guests.code, 0, guests.stdout + guests.stderr);
    assert.match(guests.stdout, /6\/6 sessions succeeded/);

    const wrong = await runCli(['simulate-guest', '--unix', unix, '--measurement', 'ff'.repeat(48)]);
    assert.equal(wrong.code, 1);
    await waitForOutput(kbs, /refused POST \/kbs\/v0\/attest: measurement/);

    // The proxy still serves after the refusal.
    const g = await SimulatedGuest.connect(unix);
    const r = await g.boot({ measurement: Buffer.from(measurement, 'hex'), expectSecret: Buffer.from(secret, 'hex') });
    g.close();
    assert.equal(r.ok, true);

    proxy.kill('SIGTERM');
    const end = await finished(proxy);
    assert.equal(end.code, 0);
    await assert.rejects(stat(unix), { code: 'ENOENT' });
    kbs.kill('SIGTERM');
    await finished(kbs);
  });

  test('demo exits 0 and says the guest holds the secret', async () => {
    const r = await runCli(['demo']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /attestation succeeded/);
    assert.match(r.stdout, /decrypted a 32-byte secret — it matches/);
  });
});
