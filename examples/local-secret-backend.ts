/**
 * Example backend plugin: releases a secret kept on the host to guests whose
 * launch measurement is on an allow-list, without any attestation server.
 * For labs and CI, not production (nothing verifies the report signature).
 *
 *   aproxy --protocol ./dist/examples/local-secret-backend.js \
 *          --url file:///etc/aproxy/local-policy.json --unix /run/aproxy.sock
 *
 * local-policy.json: {"measurements": ["<96 hex digits>", …], "secret": "<hex>"}
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  AttestationRejectedError,
  KBS_NEGOTIATION_PARAMS,
  OutOfOrderError,
  defineBackend,
  jweEncrypt,
  jweToAttestationResponse,
  parseKbsJwe,
  parseSnpReport,
  reportDataDigest,
  serializeKbsJwe,
  type BackendSession,
} from 'aproxy';

interface Policy {
  measurements: string[];
  secret: string;
}

export default defineBackend({
  apiVersion: 1,
  name: 'local-secret',
  description: 'releases a host-side secret to allow-listed measurements (no server)',
  create(options) {
    const policy = JSON.parse(readFileSync(fileURLToPath(options.url), 'utf8')) as Policy;
    const allowed = new Set(policy.measurements.map((m) => m.toLowerCase()));
    const secret = Buffer.from(policy.secret, 'hex');
    options.log.info({ measurements: allowed.size }, 'local-secret policy loaded');
    return {
      openSession(): BackendSession {
        let challenge: Uint8Array | undefined;
        return {
          async negotiate() {
            challenge = randomBytes(32);
            return { challenge, params: [...KBS_NEGOTIATION_PARAMS] };
          },
          async attest(request) {
            if (challenge === undefined) throw new OutOfOrderError('attest before negotiate');
            const report = parseSnpReport(request.evidence.value.report);
            const measurement = Buffer.from(report.measurement).toString('hex');
            if (!allowed.has(measurement)) throw new AttestationRejectedError(`measurement ${measurement} is not allow-listed`);
            const binding = reportDataDigest(KBS_NEGOTIATION_PARAMS, challenge, request.key);
            if (!Buffer.from(report.reportData).equals(binding)) {
              throw new AttestationRejectedError('report_data does not bind the key and challenge');
            }
            // Same wire form a KBS would send, so the guest decrypts it the same way.
            const jwe = parseKbsJwe(JSON.parse(serializeKbsJwe(jweEncrypt(secret, request.key))));
            return jweToAttestationResponse(jwe, 'local-secret');
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
