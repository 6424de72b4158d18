// `aproxy/jwe`: the secret's envelope. A backend whose server answers with a
// JWE turns it into the guest's answer here; a backend or test that makes its
// own secrets seals them to the guest's P-521 key. Loads P-521 and the
// schema library, so it is kept apart from `aproxy/plugin`.

export {
  decryptSecret,
  generateP521KeyPair,
  type Jwe,
  type JweProtectedHeader,
  jweEncrypt,
  jweToAttestationResponse,
  type P521KeyPair,
  sealToGuest,
} from './protocol/jwe.js';
export { parseKbsJwe, serializeKbsJwe } from './protocol/kbs.js';
