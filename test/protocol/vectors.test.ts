import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ATTESTATION_FAILURE,
  decodeStd,
  encodeFrame,
  jweToAttestationResponse,
  KBS_NEGOTIATION_PARAMS,
  parseAttestationRequest,
  parseAttestationResponse,
  parseKbsChallenge,
  parseKbsJwe,
  parseKbsTokenResponse,
  parseNegotiationRequest,
  parseNegotiationResponse,
  serializeAttestationRequest,
  serializeAttestationResponse,
  serializeKbsAttestation,
  serializeKbsChallenge,
  serializeKbsRequest,
  serializeNegotiationRequest,
  serializeNegotiationResponse,
} from '../../src/protocol/index.js';
import { vectorHex, vectorJson, vectorText } from '../support/vectors.js';

const pattern = (n: number, f: (i: number) => number) => Uint8Array.from({ length: n }, (_, i) => f(i) & 0xff);

describe('golden frontend messages round-trip byte for byte', () => {
  const cases: Array<[string, (s: string) => string]> = [
    ['negotiation-request.json', (s) => serializeNegotiationRequest(parseNegotiationRequest(s))],
    ['negotiation-response.json', (s) => serializeNegotiationResponse(parseNegotiationResponse(s))],
    ['attestation-request.json', (s) => serializeAttestationRequest(parseAttestationRequest(s))],
    ['attestation-request-certs.json', (s) => serializeAttestationRequest(parseAttestationRequest(s))],
    ['attestation-response-success.json', (s) => serializeAttestationResponse(parseAttestationResponse(s))],
    ['attestation-response-failure.json', (s) => serializeAttestationResponse(parseAttestationResponse(s))],
  ];
  for (const [file, roundTrip] of cases) {
    test(file, () => {
      const text = vectorText(file);
      assert.equal(roundTrip(text), text);
    });
  }
});

describe('golden values decode to the documented fixed inputs', () => {
  test('attestation request carries the fixed report, challenge and key', () => {
    const req = parseAttestationRequest(vectorText('attestation-request-certs.json'));
    assert.equal(req.tee, 'snp');
    assert.equal(req.evidence.tag, 'Snp');
    assert.deepEqual(
      req.evidence.value.report,
      pattern(1184, (i) => i),
    );
    assert.deepEqual(
      req.evidence.value.certs_buf,
      pattern(1000, (i) => 7 * i),
    );
    assert.deepEqual(
      req.challenge,
      pattern(32, (i) => i),
    );
    assert.deepEqual(
      req.key.x,
      pattern(66, (i) => 0x01 + i),
    );
    assert.deepEqual(
      req.key.y,
      pattern(66, (i) => 0x81 + i),
    );
  });

  test('the failure constant serializes as the reference failure object', () => {
    assert.equal(serializeAttestationResponse(ATTESTATION_FAILURE), vectorText('attestation-response-failure.json'));
  });
});

describe('golden frames', () => {
  for (const name of ['negotiation-request', 'negotiation-response', 'attestation-response-failure']) {
    test(`${name} frame is header plus payload`, () => {
      assert.deepEqual(encodeFrame(vectorText(`${name}.json`)), vectorHex(`${name}.frame.hex`));
    });
  }
  test('success response frame header announces 944 bytes', () => {
    const frame = encodeFrame(vectorText('attestation-response-success.json'));
    assert.deepEqual(frame.subarray(0, 8), vectorHex('attestation-response-success.frame-header.hex'));
  });
});

describe('golden KBS messages', () => {
  test('/auth request body', () => {
    assert.equal(serializeKbsRequest('snp'), vectorText('kbs-request.json'));
  });

  test('/auth challenge decodes to the guest challenge and the negotiation response matches', () => {
    const challenge = parseKbsChallenge(vectorJson('kbs-challenge.json'));
    assert.equal(serializeKbsChallenge(challenge), vectorText('kbs-challenge.json'));
    assert.equal(serializeNegotiationResponse({ challenge, params: [...KBS_NEGOTIATION_PARAMS] }), vectorText('negotiation-response.json'));
  });

  test('/attest body without certs', () => {
    const req = parseAttestationRequest(vectorText('attestation-request.json'));
    assert.equal(serializeKbsAttestation(req), vectorText('kbs-attestation.json'));
  });

  test('/attest body with certs', () => {
    const req = parseAttestationRequest(vectorText('attestation-request-certs.json'));
    assert.equal(serializeKbsAttestation(req), vectorText('kbs-attestation-certs.json'));
  });

  test('/resource JWE maps to the golden success response', () => {
    const token = parseKbsTokenResponse(vectorJson('kbs-attest-response.json'));
    const jwe = parseKbsJwe(vectorJson('kbs-resource-response.json'));
    const resp = jweToAttestationResponse(jwe, token);
    assert.equal(serializeAttestationResponse(resp), vectorText('attestation-response-success.json'));
    const derived = vectorJson<{ aad_ascii: string; aes_gcm_data: unknown }>('kbs-resource-response-derived.json');
    assert.equal(Buffer.from(resp.decryption!.aad).toString('ascii'), derived.aad_ascii);
    assert.deepEqual(JSON.parse(serializeAttestationResponse(resp)).decryption, derived.aes_gcm_data);
  });

  test('a non-canonical protected header is passed through as the AAD (deliberate difference from the reference)', () => {
    const derived = vectorJson<{ protected_wire: string; aad_ascii: string }>('kbs-resource-response-noncanonical-derived.json');
    const jwe = parseKbsJwe(vectorJson('kbs-resource-response-noncanonical.json'));
    const resp = jweToAttestationResponse(jwe, 't');
    const aad = Buffer.from(resp.decryption!.aad).toString('ascii');
    assert.equal(aad, derived.protected_wire);
    assert.notEqual(aad, derived.aad_ascii);
  });

  test('session transcript: the three KBS bodies are what the proxy builds', () => {
    const t = vectorJson<{
      svsm_to_aproxy: string[];
      aproxy_to_svsm: Array<{ hdr: string; json: string }>;
      kbs_requests: Array<{ body: string; path: string }>;
    }>('session-transcript.json');
    const [negReq, attReq] = t.svsm_to_aproxy as [string, string];
    const neg = parseNegotiationRequest(negReq);
    assert.equal(t.kbs_requests[0]!.body, serializeKbsRequest(neg.tee));
    assert.equal(t.kbs_requests[1]!.body, serializeKbsAttestation(parseAttestationRequest(attReq)));
    assert.equal(t.kbs_requests[2]!.path, '/kbs/v0/resource/default/sample/test');
    for (const [i, file] of ['negotiation-response.json', 'attestation-response-success.json'].entries()) {
      const frame = encodeFrame(vectorText(file));
      assert.equal(t.aproxy_to_svsm[i]!.json, vectorText(file));
      assert.equal(t.aproxy_to_svsm[i]!.hdr, frame.subarray(0, 8).toString('hex'));
    }
  });
});

describe('decode matrix: accept what the reference accepts, reject what it rejects', () => {
  interface Row {
    type: string;
    case: string;
    accepted: boolean;
    input: string;
  }
  const parsers: Record<string, (input: string) => unknown> = {
    NegotiationRequest: parseNegotiationRequest,
    NegotiationResponse: parseNegotiationResponse,
    AttestationRequest: parseAttestationRequest,
    AttestationResponse: parseAttestationResponse,
    'kbs_types::Challenge': (s) => parseKbsChallenge(JSON.parse(s)),
    'kbs TokenResponse': (s) => parseKbsTokenResponse(JSON.parse(s)),
    'kbs_types::Response': (s) => parseKbsJwe(JSON.parse(s)),
  };
  // Deliberate leniency documented in PROTOCOL.md §4.
  const lenient = new Set(['AttestationRequest/certs_buf null']);
  for (const row of vectorJson<Row[]>('decode-matrix.json')) {
    const parse = parsers[row.type];
    const key = `${row.type}/${row.case}`;
    const expectAccept = row.accepted || lenient.has(key);
    test(`${key} is ${expectAccept ? 'accepted' : 'rejected'}`, () => {
      assert.ok(parse, `no parser for ${row.type}`);
      if (expectAccept) {
        parse(row.input);
      } else {
        assert.throws(
          () => parse(row.input),
          (err: Error & { code?: string }) => {
            assert.match(String(err.code), /^INVALID_(JSON|MESSAGE)$/);
            return true;
          },
        );
      }
    });
  }
});

test('certs_buf null is accepted and means no certificates', () => {
  const text = vectorText('attestation-request.json').replace('"report":', '"certs_buf":null,"report":');
  const req = parseAttestationRequest(text);
  assert.equal(req.evidence.value.certs_buf, undefined);
  assert.equal(serializeAttestationRequest(req), vectorText('attestation-request.json'));
});

test('error messages name the offending field', () => {
  const text = vectorText('attestation-request.json').replace('"report":"AAEC', '"report":"-AEC');
  assert.throws(() => parseAttestationRequest(text), /evidence\.Snp\.report/);
  assert.throws(
    () => parseNegotiationRequest('{"version":[0,1.0,0],"tee":"snp"}'),
    /version\.1: expected an unsigned 32-bit integer, got floating point 1\.0/,
  );
  assert.throws(() => parseNegotiationRequest('{"version":[0,1,0]}'), /tee: missing field/);
  assert.throws(() => parseNegotiationRequest('{"version":[0,1,0],"tee":"snp","tee":"snp"}'), /duplicate field "tee"/);
  assert.deepEqual(decodeStd(''), new Uint8Array(0));
});
