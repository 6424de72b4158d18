// `aproxy/plugin`: what a backend author imports. Cheap to load (no schema
// library, no curve arithmetic): the contract, the errors a backend throws,
// the protocol's types and the few pure helpers a backend needs to check a
// guest's evidence. JWE helpers are in `aproxy/jwe`.
export {
  BACKEND_API_VERSION,
  type Backend,
  type BackendContext,
  type BackendDefinition,
  type BackendLogger,
  type BackendRequestEvent,
  type BackendSession,
  defineBackend,
  type PhaseContext,
  type RawBackendOptions,
  type SessionInfo,
} from './backends/contract.js';
export {
  AproxyError,
  type AproxyErrorCode,
  AttestationRejectedError,
  BackendHttpError,
  BackendProtocolError,
  BackendTimeoutError,
  BackendUnreachableError,
  ConfigError,
  CryptoError,
  describeError,
  ERROR_CODES,
  InvalidReportError,
  isAproxyError,
  OutOfOrderError,
  UnsupportedTeeError,
} from './protocol/errors.js';
export type {
  AesGcmData,
  AttestationRequest,
  AttestationResponse,
  AttestationToken,
  EcPublicKey,
  Evidence,
  NegotiationParam,
  NegotiationRequest,
  NegotiationResponse,
  SnpEvidence,
  Tee,
} from './protocol/messages.js';
export { ATTESTATION_FAILURE, NEGOTIATION_PARAMS, PROTOCOL_VERSION, TEE_NAMES } from './protocol/messages.js';
export { reportDataDigest } from './protocol/report-data.js';
export { parseSnpReport, SNP_MEASUREMENT_BYTES, SNP_REPORT_BYTES, SNP_REPORT_DATA_BYTES, type SnpReport } from './protocol/snp-report.js';
