// The alert rules and the dashboard in contrib/ use only what a real proxy
// exports, and the rules are valid Prometheus (checked by promtool).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { request } from 'undici';
import { REPO_ROOT } from '../../scripts/processes.js';
import { METRICS_LIMITS, metricCatalogue } from '../../src/service/metrics.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { startRig, startTestKbs, tempDir } from '../support/harness.js';
import { startProxyProcess } from '../support/proxy-process.js';

const contrib = join(REPO_ROOT, 'contrib');
const rulesFile = join(contrib, 'prometheus', 'aproxy-alerts.yml');
const rulesText = readFileSync(rulesFile, 'utf8');
const dashboard = JSON.parse(readFileSync(join(contrib, 'grafana', 'aproxy-dashboard.json'), 'utf8')) as {
  panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }>;
  templating: { list: Array<{ query: string }> };
};
const promtool = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).stdout.trim();

/** Every PromQL expression shipped: the rules' `expr`s and the dashboard's queries. */
function expressions(): Array<{ where: string; expr: string }> {
  const rules = [...rulesText.matchAll(/^\s+- alert: (\S+)\n\s+expr: (?:\|\n((?:\s{10}.*\n)+)|(.*)\n)/gm)].map((m) => ({
    where: `rule ${m[1]}`,
    expr: (m[2] ?? m[3] ?? '').trim(),
  }));
  const panels = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })));
  const variables = dashboard.templating.list.map((v) => ({ where: 'dashboard variable', expr: v.query }));
  return [...rules, ...panels, ...variables];
}

const metricNames = (text: string) => new Set([...text.matchAll(/\baproxy_[a-z0-9_]+/g)].map((m) => m[0]));
/** A histogram's series carry suffixes; its name in the exposition's # TYPE line does not. */
const baseName = (name: string) => name.replace(/_(bucket|sum|count)$/, '');

describe('monitoring that ships with aproxy', () => {
  test('the alert rules pass promtool check rules, and their own promtool unit tests', {
    skip: promtool === '' ? 'promtool not installed (apt-get install prometheus)' : false,
  }, () => {
    const check = spawnSync(promtool, ['check', 'rules', rulesFile], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /SUCCESS: 10 rules found/);
    const unit = spawnSync(promtool, ['test', 'rules', join(contrib, 'prometheus', 'aproxy-alerts.test.yml')], { encoding: 'utf8' });
    assert.equal(unit.status, 0, unit.stdout + unit.stderr);
  });

  test('every rule carries a severity, a summary and a runbook line', () => {
    const alerts = rulesText.split(/^\s+- alert: /m).slice(1);
    assert.equal(alerts.length, 10);
    for (const a of alerts) {
      const name = a.split('\n')[0];
      assert.match(a, /severity: (critical|warning|info)/, `${name}: severity`);
      assert.match(a, /summary: "/, `${name}: summary`);
      assert.match(a, /runbook: "/, `${name}: runbook`);
    }
  });

  test('every metric the rules and the dashboard name is in a real scrape of a proxy that served guests', async (t) => {
    const { url, measurement, secret } = await startTestKbs(t);
    const dir = await tempDir(t);
    const unix = join(dir, 'g.sock');
    const proxy = await startProxyProcess(t, ['--protocol', 'kbs', '--url', url, '--unix', unix, '--metrics', '127.0.0.1:0']);
    const g = await SimulatedGuest.connect(unix);
    t.after(() => g.close());
    assert.equal((await g.boot({ measurement, expectSecret: secret })).secretMatches, true);
    assert.equal((await g.boot({ measurement: Buffer.alloc(48, 0xee) })).attested, false, 'and one refused');
    const scrape = await proxy.scrape();
    const exported = new Set([...scrape.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1] as string));
    const used = new Set([...metricNames(rulesText), ...expressions().flatMap((e) => [...metricNames(e.expr)])]);
    const missing = [...used].filter((n) => !exported.has(baseName(n)) && !exported.has(n));
    assert.deepEqual(missing, [], `named in contrib/ but not exported: ${missing.join(', ')}`);
    assert.ok(used.size >= 10, `${used.size} metrics used`);
    // The sessions of this run are there with the labels the rules group by.
    assert.match(scrape, /^aproxy_sessions_total\{outcome="success",reason="none",transport="unix",listener="[^"]+"\} 1$/m);
    assert.match(scrape, /^aproxy_sessions_total\{outcome="failure",reason="ATTESTATION_REJECTED",transport="unix",listener="[^"]+"\} 1$/m);
    // Which build runs, across an upgrade.
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.match(
      scrape,
      new RegExp(
        `^aproxy_build_info\\{version="${version.replaceAll('.', '\\.')}",node="${process.version.replaceAll('.', '\\.')}"\\} 1$`,
        'm',
      ),
    );
  });

  test('every label the rules and the dashboard select or group by is one the metric has', async () => {
    const defined = new Map((await metricCatalogue()).map((m) => [m.name, new Set(m.labels)]));
    // Added by Prometheus (job, instance) or by a histogram (le), not by aproxy.
    const scrapeLabels = new Set(['job', 'instance', 'le']);
    for (const { where, expr } of expressions()) {
      const metrics = [...metricNames(expr)].map(baseName);
      if (metrics.length === 0) continue;
      const allowed = new Set([...scrapeLabels, ...metrics.flatMap((m) => [...(defined.get(m) ?? [])])]);
      const labels = [
        ...[...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) =>
          [...(m[1] ?? '').matchAll(/([a-z_]+)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1] as string),
        ),
        ...[...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => (m[1] ?? '').split(',').map((s) => s.trim())),
      ];
      const unknown = labels.filter((l) => !allowed.has(l));
      assert.deepEqual(unknown, [], `${where}: ${expr}`);
    }
  });
});

describe('the metrics endpoint is bounded', () => {
  test('connections over its cap are closed at once and logged once; idle ones close at the request deadline; guests are served meanwhile', async (t) => {
    const rig = await startRig(t, { proxy: { metrics: '127.0.0.1:0' } });
    const { port } = new URL(rig.proxy.metricsUrl as string);
    const idle: Socket[] = [];
    t.after(() => {
      for (const s of idle) s.destroy();
    });
    const closed: Array<Promise<unknown>> = [];
    for (let i = 0; i < METRICS_LIMITS.maxConnections + 8; i++) {
      const s = connect(Number(port), '127.0.0.1');
      s.on('error', () => undefined);
      await once(s, 'connect');
      // Half a request line, never finished: what a slowloris sends.
      s.write('GET /metr');
      idle.push(s);
      closed.push(once(s, 'close'));
    }
    // The ones over the cap are closed on accept, long before any deadline.
    await Promise.any(closed);
    assert.ok(rig.logs.records.some((r) => r.msg === 'metrics endpoint at its connection cap: connections over it are closed'));
    // A guest is not affected by any of it.
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    assert.equal((await g.boot({ measurement: rig.measurement, expectSecret: rig.secret })).secretMatches, true);
    // Every idle one is closed by the server (the request deadline), and a scrape gets through again.
    await Promise.all(closed);
    const res = await request(rig.proxy.metricsUrl as string);
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.equal(
      rig.logs.records.filter((r) => r.msg === 'metrics endpoint at its connection cap: connections over it are closed').length,
      1,
    );
  });
});
