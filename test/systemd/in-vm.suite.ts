// A real host, end to end: runs only inside the QEMU guest that
// test/systemd/systemd.test.ts boots with this machine's systemd as PID 1.
// It does what README.md's "Installing on a host" says, literally (the
// packed tarball, the shipped config and units), then drives the host as an
// operator and its VMs would: socket activation, several VMs with their own
// secrets, reloads, journald, /metrics with the shipped alert rules in a real
// Prometheus, and a stop during a boot storm.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dieWithMe, REPO_ROOT } from '../../scripts/processes.js';
import { VMADDR_CID_LOCAL } from '../../src/frontend/vsock-native.js';
import { parseStrictJson } from '../../src/protocol/json.js';
import { type BootResult, type ProxyAddress, SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { TestKbs } from '../../src/testkit/test-kbs.js';

const CONFIG = '/etc/aproxy/aproxy.json';
const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

/** A command line README.md shows, as written there (without its trailing comment). */
function readmeLine(starts: RegExp): string {
  const line = README.split('\n').find((l) => starts.test(l));
  assert.ok(line, `README.md has a line matching ${starts}`);
  return line.replace(/\s+#.*$/, '');
}
const VSOCK = { cid: VMADDR_CID_LOCAL, port: 1995 };
const METRICS = 'http://127.0.0.1:9464/metrics';
const PROMETHEUS = 'http://127.0.0.1:9090';

/**
 * Runs a shell line as the README writes it; its output, or the failure
 * with both streams. Asynchronous: the test KBS and the guests live in this
 * process and must keep running while systemctl waits on the proxy.
 */
async function sh(line: string, o: { ok?: boolean } = {}): Promise<{ code: number; out: string }> {
  const child = spawn('sh', ['-c', line], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const [code] = (await once(child, 'close')) as [number | null];
  if (o.ok !== false && code !== 0) {
    // What systemd said about it, so that a failure here can be read from the host.
    const why = line.startsWith('systemctl') ? execFileSync('journalctl', ['--no-pager', '-n', '60'], { encoding: 'utf8' }) : '';
    assert.equal(code, 0, `${line}\n${out}\n${why}`);
  }
  return { code: code ?? -1, out };
}

const active = async (unit: string) => (await sh(`systemctl is-active ${unit}`, { ok: false })).out.trim();
const mainPid = async () => (await sh('systemctl show -p MainPID --value aproxy.service')).out.trim();
/**
 * What the proxy wrote to journald: the unit's lines but those of
 * `aproxy check`, which ExecReload runs in the unit too and which writes
 * text for a person.
 */
const journal = () =>
  execFileSync('journalctl', ['--no-pager', '-o', 'json', '_SYSTEMD_UNIT=aproxy.service'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { MESSAGE?: unknown; _CMDLINE?: string })
    .filter((e) => typeof e.MESSAGE === 'string' && !/ check( |$)/.test(e._CMDLINE ?? ''))
    .map((e) => e.MESSAGE as string);

/** Waits for a condition the system reaches by itself (a scrape, a rule evaluation), polling; bounded so a failure is reported, not hung. */
async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, limitMs = 60_000): Promise<T> {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) {
      // What the host did meanwhile, so that the failure can be read from outside the VM.
      const status = execFileSync(
        'sh',
        ['-c', 'systemctl status --no-pager aproxy.service; journalctl --no-pager -n 40 -u aproxy.service; true'],
        {
          encoding: 'utf8',
        },
      );
      throw new Error(`${what}: not within ${limitMs} ms\n${status}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The parts of Prometheus's HTTP API answers (query, rules, alerts) read here. */
interface PromData {
  readonly result?: ReadonlyArray<{ readonly value: [number, string] }>;
  readonly groups?: ReadonlyArray<{ readonly lastEvaluation: string }>;
  readonly alerts?: ReadonlyArray<{ readonly labels: { readonly alertname: string }; readonly state: string }>;
}

async function promQuery(path: string): Promise<PromData> {
  const res = await fetch(`${PROMETHEUS}${path}`);
  return ((await res.json()) as { data: PromData }).data;
}

describe('a real host under systemd (inside a QEMU guest)', {
  skip: process.env.APROXY_IN_VM === undefined ? 'runs only inside the systemd test VM' : false,
}, () => {
  const measurement = randomBytes(48);
  const hostData = { 'vm-b': randomBytes(32), 'vm-c': randomBytes(32), vsock: randomBytes(32) };
  const secrets: Record<string, Buffer> = {};
  for (const hd of Object.values(hostData)) secrets[`vtpm/keys/${hd.toString('hex')}`] = randomBytes(32);
  const secretOf = (vm: keyof typeof hostData) => secrets[`vtpm/keys/${hostData[vm].toString('hex')}`] as Buffer;
  const shipped = JSON.parse(readFileSync(join(REPO_ROOT, 'contrib', 'systemd', 'aproxy.json'), 'utf8')) as Record<string, unknown>;
  let kbs: TestKbs;
  let url = '';
  let prometheus: ReturnType<typeof spawn> | undefined;

  /** The shipped config, pointed at this VM's KBS (plain HTTP on loopback, so no CA bundle). */
  const config = (changes: Record<string, unknown> = {}) => {
    const c: Record<string, unknown> = { ...shipped, url, ...changes };
    delete c['ca-cert'];
    writeFileSync(CONFIG, `${JSON.stringify(c, null, 2)}\n`);
  };

  async function boot(address: ProxyAddress, vm: keyof typeof hostData): Promise<BootResult> {
    const g = await SimulatedGuest.connect(address);
    try {
      return await g.boot({ measurement, hostData: hostData[vm], expectSecret: secretOf(vm), answerTimeoutMs: 60_000 });
    } finally {
      g.close();
    }
  }

  before(async () => {
    kbs = new TestKbs({ measurement, secret: randomBytes(32), resources: secrets, requireHostDataTag: true });
    url = await kbs.start();
  });
  after(async () => {
    prometheus?.kill('SIGKILL');
    await kbs?.close();
  });

  test('installed as the README says: the tarball, the shipped config and units; aproxy check --probe passes', async () => {
    const tarball = readdirSync('/results').find((f) => /^aproxy-.*\.tgz$/.test(f));
    assert.ok(tarball, 'the host packed the tarball into /results');
    // Offline: the VM has no network; npm takes the dependencies from the host's cache.
    await sh(`npm install -g --offline --no-audit --no-fund /results/${tarball}`);
    await sh('install -d /etc/aproxy');
    config();
    // README: edit the aproxy path in aproxy.service to where npm put it.
    const units = readmeLine(/^install -m 644 contrib\/systemd\//).replace(
      ' && systemctl daemon-reload',
      ' && sed -i "s|/usr/local/bin/aproxy|$(npm prefix -g)/bin/aproxy|g" /etc/systemd/system/aproxy.service && systemctl daemon-reload',
    );
    await sh(units);
    // This suite's Node where an operator's newer Node goes (/usr/local/bin comes first in a unit's
    // PATH; the service cannot read it under /root, ProtectHome=yes): the machine's own may be an older line.
    await sh(`install -m 755 ${process.execPath} /usr/local/bin/node`);
    const check = await sh(readmeLine(/^aproxy check --config/));
    assert.match(check.out, /probe kbs .*reachable/);
    await sh(readmeLine(/^systemctl enable --now /));
    // Type=exec: active once aproxy is exec'd, a moment after the job that started it.
    await until('aproxy.service active', async () => ((await active('aproxy.service')) === 'active' ? true : undefined));
  });

  test("the serial sockets are systemd's: /run/aproxy/VM.sock, root:kvm, mode 0660, named after the VM", async () => {
    const st = (await sh(`stat -c '%U:%G %a %F' /run/aproxy/vm-b.sock`)).out.trim();
    assert.equal(st, 'root:kvm 660 socket');
    const ready = await until('the ready line in the journal', () => journal().find((l) => l.includes('"aproxy ready"')));
    assert.match(ready, /"version":"/);
    const listening = journal().filter((l) => l.includes('listening for guests'));
    for (const name of ['vm-b', 'vsock'])
      assert.ok(
        listening.some((l) => l.includes(`"listener":"${name}"`)),
        name,
      );
  });

  test('idle host: Prometheus scrapes /metrics and the shipped alert rules stay quiet', async () => {
    const dir = (await sh('mktemp -d')).out.trim();
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: [${JSON.stringify(join(REPO_ROOT, 'contrib', 'prometheus', 'aproxy-alerts.yml'))}]`,
        "scrape_configs: [{ job_name: aproxy, static_configs: [{ targets: ['127.0.0.1:9464'] }] }]",
      ].join('\n'),
    );
    prometheus = dieWithMe(
      spawn(
        '/usr/bin/prometheus',
        [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, '--web.listen-address=127.0.0.1:9090'],
        { stdio: 'ignore' },
      ),
    );
    const scraped = await until('up{job="aproxy"} == 1', async () => {
      const r = await promQuery('/api/v1/query?query=up%7Bjob%3D%22aproxy%22%7D').catch(() => undefined);
      return r?.result?.[0]?.value[1] === '1' ? Date.now() : undefined;
    });
    // Several evaluations of every rule after the first good scrape.
    await until('three rule evaluations after the scrape', async () => {
      const r = await promQuery('/api/v1/rules');
      const last = Date.parse(r.groups?.[0]?.lastEvaluation ?? '');
      return last > scraped + 3000 ? true : undefined;
    });
    const alerts = (await promQuery('/api/v1/alerts')).alerts ?? [];
    assert.deepEqual(
      alerts.map((a) => a.labels.alertname),
      [],
    );
    assert.match(await (await fetch(METRICS)).text(), /^aproxy_build_info\{/m);
  });

  test('socket activation: with the service stopped, a first guest on vsock port 1995 starts it and attests', async () => {
    await sh('systemctl stop aproxy.service');
    assert.equal(await active('aproxy.service'), 'inactive');
    const r = await boot(VSOCK, 'vsock');
    assert.equal(r.secretMatches, true, r.error);
    assert.equal(await active('aproxy.service'), 'active');
  });

  test("socket activation: with the service stopped, QEMU's connection on a serial socket starts it and the guest attests", async () => {
    await sh('systemctl stop aproxy.service');
    assert.equal(await active('aproxy.service'), 'inactive');
    const r = await boot('/run/aproxy/vm-b.sock', 'vm-b');
    assert.equal(r.secretMatches, true, r.error);
    assert.equal(await active('aproxy.service'), 'active');
  });

  test('a VM added as the README says: its socket enabled, the proxy restarted with it, its guest served under its name', async () => {
    await sh(readmeLine(/^systemctl enable aproxy-serial@vm-c\.socket/));
    assert.equal(await active('aproxy-serial@vm-c.socket'), 'active');
    const r = await boot('/run/aproxy/vm-c.sock', 'vm-c');
    assert.equal(r.secretMatches, true, r.error);
    await until('vm-c listening', () => journal().find((l) => l.includes('listening for guests') && l.includes('"listener":"vm-c"')));
  });

  test('several VMs, one proxy: each gets the secret of its own {host_data}, and the log names its listener', async () => {
    const results = await Promise.all([boot('/run/aproxy/vm-b.sock', 'vm-b'), boot('/run/aproxy/vm-c.sock', 'vm-c'), boot(VSOCK, 'vsock')]);
    assert.deepEqual(
      results.map((r) => r.error ?? r.secretMatches),
      [true, true, true],
    );
    // Another VM's secret is refused by the server's policy: the template filled from the report, not chosen by the guest.
    const g = await SimulatedGuest.connect('/run/aproxy/vm-b.sock');
    const wrong = await g.boot({ measurement, hostData: randomBytes(32) });
    g.close();
    assert.equal(wrong.attested, false);
    const lines = await until('three session lines', () => {
      const l = journal().filter((x) => x.includes('"session success"'));
      return l.length >= 5 ? l : undefined;
    });
    for (const name of ['vm-b', 'vm-c', 'vsock'])
      assert.ok(
        lines.some((l) => l.includes(`"listener":"${name}"`)),
        name,
      );
  });

  test("the compile cache: once it has served a guest, the service has written V8's compile cache into its CacheDirectory", async (t) => {
    const ready = journal().filter((l) => l.includes('"aproxy ready"'));
    const node = /"node":"v(\d+)/.exec(ready.at(-1) ?? '')?.[1];
    assert.equal(node, process.versions.node.split('.')[0], "the service runs this suite's Node (/usr/local/bin/node)");
    if (Number(node) < 22) {
      t.skip(`the service runs Node ${node}, which has no compile cache (22 and later)`);
      return;
    }
    const line = await until('the "compile cache written" line in the journal', () =>
      journal().find((l) => l.includes('compile cache written')),
    );
    assert.match(line, /"compileCache":"\/var\/cache\/aproxy/);
    const files = Number((await sh('find /var/cache/aproxy/ -type f | wc -l')).out.trim());
    assert.ok(files > 0, 'cache files under /var/cache/aproxy');
  });

  test('systemctl reload: a broken file is refused and the running proxy keeps serving; a good one is applied', async () => {
    const pid = await mainPid();
    writeFileSync(CONFIG, '{ "protocol": "kbs", "url": ');
    const refused = await sh('systemctl reload aproxy.service', { ok: false });
    assert.notEqual(refused.code, 0);
    assert.equal(await mainPid(), pid);
    assert.equal((await boot('/run/aproxy/vm-b.sock', 'vm-b')).secretMatches, true);
    config({ listeners: [{ systemd: 'vm-b', 'phase-timeout-ms': 45_000 }] });
    await sh('systemctl reload aproxy.service');
    await until('the reload line', () => journal().find((l) => l.includes('configuration reloaded')));
    assert.equal(await mainPid(), pid);
    assert.equal((await boot('/run/aproxy/vm-b.sock', 'vm-b')).secretMatches, true);
  });

  test('the attestation server down: guests fail with BACKEND_UNREACHABLE and the shipped rules raise the server alert', async () => {
    config({ url: 'http://127.0.0.1:1' });
    await sh('systemctl reload aproxy.service');
    await until('the second reload line', () => {
      const n = journal().filter((l) => l.includes('configuration reloaded')).length;
      return n >= 2 ? true : undefined;
    });
    const g = await SimulatedGuest.connect('/run/aproxy/vm-b.sock');
    const r = await g.boot({ measurement, hostData: hostData['vm-b'], answerTimeoutMs: 60_000 });
    g.close();
    assert.equal(r.attested, false);
    assert.ok(journal().some((l) => l.includes('"reason":"BACKEND_UNREACHABLE"')));
    // The rule's `for:` decides when it fires; that its expression holds on the real series shows it pending.
    const alert = await until('AproxyAttestationServerUnreachable pending or firing', async () => {
      const alerts = (await promQuery('/api/v1/alerts')).alerts ?? [];
      return alerts.find((a) => a.labels.alertname === 'AproxyAttestationServerUnreachable');
    });
    assert.match(alert.state, /^(pending|firing)$/);
    config();
    await sh('systemctl reload aproxy.service');
    await until('the third reload line', () => {
      const n = journal().filter((l) => l.includes('configuration reloaded')).length;
      return n >= 3 ? true : undefined;
    });
  });

  test('systemctl stop during a boot storm: every guest is answered or its connection closed, none left waiting', async () => {
    const addresses: Array<[ProxyAddress, keyof typeof hostData]> = [];
    for (let i = 0; i < 8; i++) addresses.push(['/run/aproxy/vm-b.sock', 'vm-b'], [VSOCK, 'vsock']);
    const storm = Promise.all(
      addresses.map(([a, vm]) => boot(a, vm).catch((err: Error) => ({ ok: false, error: err.message }) as BootResult)),
    );
    await sh('systemctl stop aproxy.service');
    const results = await storm;
    for (const r of results) assert.ok(r.ok || /closed|ECONNRESET|EPIPE|ECONNREFUSED/.test(r.error ?? ''), r.error);
    // A guest that connected after the stop started the service again: its sockets stay enabled.
    assert.ok(journal().some((l) => l.includes('"msg":"stopped"')));
  });

  test("without systemd, as docs/operations.md says: a user of its own in QEMU's group serves a socket it gives to that group", async () => {
    await sh("systemctl stop aproxy.service aproxy-vsock.socket 'aproxy-serial@*.socket'");
    const doc = readFileSync(join(REPO_ROOT, 'docs', 'operations.md'), 'utf8');
    const block = /## Running it without systemd[\s\S]*?```sh\n([\s\S]*?)```/.exec(doc)?.[1]?.trim().split('\n') ?? [];
    assert.equal(block.length, 3, block.join('\n'));
    await sh(block[0] as string);
    await sh(block[1] as string);
    const proxy = dieWithMe(spawn('sh', ['-c', `exec ${block[2] as string}`], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    proxy.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    proxy.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
    try {
      await until('the proxy ready', () => (out.includes('aproxy ready') ? true : proxy.exitCode !== null ? assert.fail(out) : undefined));
      assert.equal((await sh('stat -c "%U:%G %a" /run/aproxy/vm-b.sock')).out.trim(), 'aproxy:kvm 660');
      assert.equal((await boot('/run/aproxy/vm-b.sock', 'vm-b')).secretMatches, true, out);
    } finally {
      proxy.kill('SIGTERM');
      await once(proxy, 'close');
    }
  });

  test('journald holds strict JSON: every line aproxy wrote parses, with duplicate keys refused', () => {
    const lines = journal();
    assert.ok(lines.length > 20, `${lines.length} lines`);
    for (const l of lines) assert.doesNotThrow(() => parseStrictJson(l), l);
  });
});
