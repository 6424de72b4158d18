// Compile-time checks of the public surfaces: `npm test` type-checks this
// file, so a change that loosens the plugin contract, or exports an internal
// from a surface, fails the build. The runtime tests check the package's
// `exports` map and what each subpath really exports.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as root from 'aproxy';
import * as jwe from 'aproxy/jwe';
import * as plugin from 'aproxy/plugin';
import { type BackendSession, defineBackend, type NegotiationResponse } from 'aproxy/plugin';
import * as testing from 'aproxy/testing';

const session: BackendSession = {
  negotiate: async (): Promise<NegotiationResponse> => ({ challenge: new Uint8Array(32), params: ['EcPublicKeyBytes', 'Challenge'] }),
  attest: async () => ({ success: false }),
  close() {},
};

defineBackend({ apiVersion: 2, name: 'ok', create: () => ({ openSession: () => session, close: async () => undefined }) });

// Options are typed from parseOptions to create.
defineBackend<{ port: number }>({
  apiVersion: 2,
  name: 'typed',
  parseOptions: (raw) => ({ port: Number(raw.port) }),
  create: (options) => {
    const port: number = options.port;
    void port;
    return { openSession: () => session, close: async () => undefined };
  },
});

// @ts-expect-error API version 1 is gone: create() no longer receives { url, resource, … }
defineBackend({ apiVersion: 1, name: 'old', create: () => ({ openSession: () => session, close: async () => undefined }) });

// @ts-expect-error a backend must be able to close
defineBackend({ apiVersion: 2, name: 'leaky', create: () => ({ openSession: () => session }) });

const badParams: BackendSession = {
  // @ts-expect-error params are the protocol's names, nothing else
  negotiate: async () => ({ challenge: new Uint8Array(32), params: ['challenge'] }),
  attest: async () => ({ success: false }),
  close() {},
};

const badToken: BackendSession = {
  negotiate: session.negotiate,
  // @ts-expect-error a token is { tag: 'Jwt' | 'Cwt', value }, not a bare string
  attest: async () => ({ success: true, token: 'a.b.c' }),
  close() {},
};

// Internals stay internal.
// @ts-expect-error the session loop is not public
void root.GuestConnection;
// @ts-expect-error no zod schemas on the plugin surface
void plugin.attestationRequestSchema;
// @ts-expect-error the KBS HTTP client is the kbs backend's own
void plugin.KbsClient;
// @ts-expect-error the test kit is not on the package root
void root.TestKbs;

// The declarations above are checked by tsc when `npm test` compiles: a type
// that stops accepting the valid backend, or starts accepting an invalid one
// (its @ts-expect-error then unused), fails the build.
void badParams;
void badToken;

test('each public surface exports what its purpose needs, by name', () => {
  assert.deepEqual(Object.keys(root).sort(), [
    'AproxyError',
    'BUILTIN_BACKEND_NAMES',
    'DEFAULT_FRAME_TIMEOUT_MS',
    'DEFAULT_MAX_FRAME_BYTES',
    'DEFAULT_PHASE_TIMEOUT_MS',
    'DEFAULT_SHUTDOWN_GRACE_MS',
    'ERROR_CODES',
    'LOG_FORMATS',
    'LOG_LEVELS',
    'createLogger',
    'describeError',
    'isAproxyError',
    'redactUrl',
    'startProxy',
  ]);
  assert.deepEqual(Object.keys(plugin).sort(), [
    'ATTESTATION_FAILURE',
    'AproxyError',
    'AttestationRejectedError',
    'BACKEND_API_VERSION',
    'BackendHttpError',
    'BackendProtocolError',
    'BackendTimeoutError',
    'BackendUnreachableError',
    'ConfigError',
    'CryptoError',
    'ERROR_CODES',
    'InvalidReportError',
    'NEGOTIATION_PARAMS',
    'OutOfOrderError',
    'PROTOCOL_VERSION',
    'SNP_MEASUREMENT_BYTES',
    'SNP_REPORT_BYTES',
    'SNP_REPORT_DATA_BYTES',
    'TEE_NAMES',
    'UnsupportedTeeError',
    'defineBackend',
    'describeError',
    'isAproxyError',
    'parseSnpReport',
    'reportDataDigest',
  ]);
  assert.deepEqual(Object.keys(jwe).sort(), [
    'decryptSecret',
    'generateP521KeyPair',
    'jweEncrypt',
    'jweToAttestationResponse',
    'parseKbsJwe',
    'sealToGuest',
    'serializeKbsJwe',
  ]);
  assert.deepEqual(Object.keys(testing).sort(), ['SimulatedGuest', 'TestKbs', 'runConformance', 'runGuestFleet']);
  assert.equal(plugin.BACKEND_API_VERSION, 2);
});
