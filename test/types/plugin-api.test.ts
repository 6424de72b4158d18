// Compile-time checks of the plugin API: `npm test` type-checks this file, so
// a change that loosens the contract fails the build. The runtime test only
// keeps node:test aware of the file.
import { test } from 'node:test';
import { defineBackend, type BackendSession, type NegotiationResponse } from '../../src/index.js';

const session: BackendSession = {
  negotiate: async (): Promise<NegotiationResponse> => ({ challenge: new Uint8Array(32), params: ['EcPublicKeyBytes', 'Challenge'] }),
  attest: async () => ({ success: false }),
  close() {},
};

defineBackend({ apiVersion: 1, name: 'ok', create: () => ({ openSession: () => session, close: async () => undefined }) });

// @ts-expect-error only API version 1 exists
defineBackend({ apiVersion: 2, name: 'future', create: () => ({ openSession: () => session, close: async () => undefined }) });

// @ts-expect-error a backend must be able to close
defineBackend({ apiVersion: 1, name: 'leaky', create: () => ({ openSession: () => session }) });

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

test('the plugin API types accept a valid backend and reject invalid ones (checked by tsc)', () => {
  void badParams;
  void badToken;
});
