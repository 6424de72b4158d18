import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../service/log.js';
import { startProxy } from '../service/proxy.js';
import { SimulatedGuest } from './guest-simulator.js';
import { TestKbs } from './test-kbs.js';

/**
 * The self-contained demo (`npm start`): the built-in test KBS on loopback,
 * the proxy on a temporary socket, one simulated SVSM guest through both.
 * Returns the process exit code.
 */
export async function runDemo(print: (line: string) => void = console.log): Promise<number> {
  const measurement = randomBytes(48);
  const secret = randomBytes(32);
  const dir = await mkdtemp(join(tmpdir(), 'aproxy-demo-'));
  const unix = join(dir, 'svsm-proxy.sock');
  const kbs = new TestKbs({ measurement, secret, log: (l) => print(`kbs:   ${l}`) });
  let proxy: Awaited<ReturnType<typeof startProxy>> | undefined;
  let guest: SimulatedGuest | undefined;
  try {
    const url = await kbs.start();
    print(`kbs:   test Key Broker Service (protocol 0.4.0) listening on ${url}`);
    print(`kbs:   it releases a 32-byte secret to a guest whose launch measurement is ${measurement.toString('hex').slice(0, 24)}…`);
    proxy = await startProxy({ protocol: 'kbs', backendOptions: { url }, unix, log: createLogger({ level: 'warn' }) });
    print(`proxy: aproxy --protocol kbs --url ${url} --unix ${unix}`);
    proxy.server.on('session', (o: { outcome: string; negotiateMs?: number; attestMs?: number }) => {
      print(`proxy: session ${o.outcome} (negotiate ${o.negotiateMs ?? '-'} ms, attest ${o.attestMs ?? '-'} ms)`);
    });
    guest = await SimulatedGuest.connect(unix);
    print('guest: connected to the proxy socket, as QEMU connects COM3');
    const r = await guest.boot({ measurement, expectSecret: secret, onStep: (l) => print(l) });
    if (r.ok) {
      print(`demo:  attestation succeeded in ${r.totalMs.toFixed(1)} ms; the guest holds the secret the KBS released.`);
      return 0;
    }
    print(`demo:  attestation FAILED: ${r.error ?? 'unknown error'}`);
    return 1;
  } finally {
    guest?.close();
    await proxy?.close();
    await kbs.close();
    await rm(dir, { recursive: true, force: true });
  }
}
