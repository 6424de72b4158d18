/**
 * Example backend plugin: releases a secret kept on the host to guests whose
 * launch measurement is on an allow-list, without any attestation server.
 * For labs and CI, not production (nothing verifies the report signature).
 *
 *   aproxy --protocol ./dist/examples/local-secret-backend.js \
 *          --backend-option policy=/etc/aproxy/local-policy.json --unix /run/aproxy.sock
 *
 * local-policy.json: {"measurements": ["<96 hex digits>", …], "secret": "<hex>"}
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { sealToGuest } from 'aproxy/jwe';
import {
  AttestationRejectedError,
  type BackendSession,
  ConfigError,
  defineBackend,
  NEGOTIATION_PARAMS,
  OutOfOrderError,
  parseSnpReport,
  reportDataDigest,
} from 'aproxy/plugin';

interface Options {
  /** Path of the policy file. */
  readonly policy: string;
}

interface Policy {
  measurements: string[];
  secret: string;
}

export default defineBackend<Options>({
  apiVersion: 2,
  name: 'local-secret',
  description: 'releases a host-side secret to allow-listed measurements (no server)',
  parseOptions(raw) {
    const { policy, ...rest } = raw;
    const unknown = Object.keys(rest);
    if (unknown.length > 0) throw new ConfigError(`local-secret takes only the option "policy", not ${unknown.join(', ')}`);
    if (typeof policy !== 'string' || policy === '')
      throw new ConfigError('local-secret needs --backend-option policy=/path/to/policy.json');
    return { policy };
  },
  create(options, { log }) {
    const policy = JSON.parse(readFileSync(options.policy, 'utf8')) as Policy;
    const allowed = new Set(policy.measurements.map((m) => m.toLowerCase()));
    const secret = Buffer.from(policy.secret, 'hex');
    log.info({ measurements: allowed.size }, 'local-secret policy loaded');
    return {
      openSession(): BackendSession {
        let challenge: Uint8Array | undefined;
        return {
          async negotiate() {
            challenge = randomBytes(32);
            return { challenge, params: [...NEGOTIATION_PARAMS] };
          },
          async attest(request) {
            if (challenge === undefined) throw new OutOfOrderError('attest before negotiate');
            const report = parseSnpReport(request.evidence.value.report);
            const measurement = Buffer.from(report.measurement).toString('hex');
            if (!allowed.has(measurement)) throw new AttestationRejectedError(`measurement ${measurement} is not allow-listed`);
            const binding = reportDataDigest(NEGOTIATION_PARAMS, challenge, request.key);
            if (!Buffer.from(report.reportData).equals(binding)) {
              throw new AttestationRejectedError('report_data does not bind the key and challenge');
            }
            // Sealed to the guest's key as a KBS would, so the guest decrypts it the same way.
            return sealToGuest(secret, request.key, 'local-secret');
          },
          close() {
            challenge = undefined;
          },
        };
      },
      async close() {},
    };
  },
});
