/**
 * Every reason code an operator can meet in a log line or a metric label,
 * declared once, with when it happens and what to do. `errors.ts` builds
 * its classes on these codes; `docs/errors.md` is generated from this table
 * (`npm run docs`) and a test fails when the two differ.
 */

/** What the guest gets when a code ends its session or its link. */
export const GUEST_EXPERIENCES = {
  'failure answer': 'the failure answer, and its link stays for its next boot',
  'link closed': 'no answer: its connection is closed',
  'not answered': 'nothing: it is gone, or a newer session of it took over',
} as const;
export type GuestExperience = keyof typeof GUEST_EXPERIENCES;

interface Reason {
  /** Who the code is about: the guest, the attestation server, the session's end, the configuration or host, the proxy itself. */
  readonly area: 'guest' | 'server' | 'session' | 'setup' | 'proxy';
  /**
   * What the guest gets; absent for `setup`, which no guest meets: start-up
   * exits 2, a reload is refused and the running configuration stays.
   */
  readonly guest?: GuestExperience;
  readonly when: string;
  readonly action: string;
}

export const ERROR_REASONS = {
  FRAME_TOO_LARGE: {
    area: 'guest',
    guest: 'link closed',
    when: 'a frame header announced more bytes than the option max-frame-bytes allows. The announced bytes are never read, so the byte stream has lost its framing and the link is closed.',
    action: 'None for SVSM (its frames are a few KiB). Repeated from one guest: that guest is not SVSM, or is broken.',
  },
  FRAME_TRUNCATED: {
    area: 'guest',
    guest: 'link closed',
    when: 'the guest closed its stream in the middle of a frame.',
    action: 'None; a guest that reboots mid-write does this once.',
  },
  FRAME_TIMEOUT: {
    area: 'guest',
    guest: 'link closed',
    when: 'a frame started but did not finish within frame-timeout-ms. The link is closed (its byte stream has lost its framing).',
    action: 'On a serial link, check the UART speed; otherwise the guest is stalled or hostile.',
  },
  INVALID_JSON: {
    area: 'guest',
    guest: 'failure answer',
    when: 'a frame is not JSON as the reference implementation (serde_json) reads it.',
    action: 'None for one occurrence; repeated, the guest is not SVSM.',
  },
  INVALID_MESSAGE: {
    area: 'guest',
    guest: 'failure answer',
    when: 'JSON that is not the expected message; the detail names the field.',
    action: "Compare the guest's SVSM version with PROTOCOL.md; a field out of place makes the guest panic at boot.",
  },
  INVALID_BASE64: {
    area: 'guest',
    when: "a base64 value does not decode where aproxy decodes it outside a guest's message: `aproxy inspect-token` says which part and where (exit 1). In a guest's message a bad base64 field is INVALID_MESSAGE, naming the field; no session ends with this code.",
    action: 'Check what was pasted into the tool: a token is base64url, a report standard base64.',
  },
  UNSUPPORTED_VERSION: {
    area: 'guest',
    guest: 'failure answer',
    when: 'the NegotiationRequest asks for a protocol version other than 0.1.0.',
    action: "Run an aproxy that speaks that SVSM build's version.",
  },
  UNSUPPORTED_TEE: {
    area: 'guest',
    guest: 'failure answer',
    when: 'the guest names a TEE the backend does not serve.',
    action: 'Use a backend for that TEE (the KBS backends serve snp).',
  },
  OUT_OF_ORDER: {
    area: 'guest',
    guest: 'failure answer',
    when: 'an AttestationRequest without a negotiation first, or for another TEE than negotiated.',
    action: 'None; the guest gets the failure answer.',
  },
  CHALLENGE_MISMATCH: {
    area: 'guest',
    guest: 'failure answer',
    when: "the AttestationRequest carries a challenge other than the one negotiated: the guest's evidence is not bound to this session.",
    action: 'None for one occurrence; repeated, the guest is not SVSM.',
  },
  INVALID_REPORT: {
    area: 'guest',
    guest: 'failure answer',
    when: "a backend parsed the guest's SEV-SNP report with aproxy's parseSnpReport and it is malformed (the wrong size). The KBS backends leave the report to the server, whose refusal is ATTESTATION_REJECTED.",
    action: 'Check the SVSM build; a host-side change cannot fix evidence.',
  },
  CRYPTO: {
    area: 'guest',
    guest: 'failure answer',
    when: "a backend's cryptography failed on the guest's data with aproxy's JWE helpers: the guest's key is not a P-521 point (sealing a secret to it), or a JWE does not open.",
    action: 'Check that the server and the guest agree on the algorithms (P-521, ECDH-ES+A256KW, A256GCM).',
  },
  BACKEND_HTTP: {
    area: 'server',
    guest: 'failure answer',
    when: 'the attestation server answered an HTTP status the protocol treats as an error (5xx, or an unexpected one). /auth is retried within auth-retry-budget-ms.',
    action: "Read the server's log at that time; the detail carries the status and the server's error type.",
  },
  BACKEND_PROTOCOL: {
    area: 'server',
    guest: 'failure answer',
    when: "the server answered, but not in the protocol's shape (not JSON, a missing field or cookie, an answer over 1 MiB).",
    action: 'Check that url points at a KBS speaking protocol 0.4.0, not a proxy or another service.',
  },
  BACKEND_UNREACHABLE: {
    area: 'server',
    guest: 'failure answer',
    when: 'the server could not be reached: connection refused or reset, DNS, TLS. /auth is retried within auth-retry-budget-ms.',
    action: 'Check the server is up and the host can reach it; for https, that ca-cert holds its CA. `aproxy check --probe` tests both.',
  },
  BACKEND_TIMEOUT: {
    area: 'server',
    guest: 'failure answer',
    when: 'an exchange got no complete answer within request-timeout-ms, or a phase missed phase-timeout-ms.',
    action: "Check the server's load and the network; raise the deadlines only if the server is slow by design.",
  },
  ATTESTATION_REJECTED: {
    area: 'server',
    guest: 'failure answer',
    when: "the server evaluated the evidence and refused it (a 4xx from /attest or /resource, or a backend's success:false). An outcome, not a fault.",
    action: "Check the server's reference values and resource policy for this guest's measurement and host_data.",
  },
  GUEST_GONE: {
    area: 'session',
    guest: 'not answered',
    when: 'the guest closed its connection before its answer could be written.',
    action: 'None once; from every guest at once, look at QEMU or the host.',
  },
  SUPERSEDED: {
    area: 'session',
    guest: 'not answered',
    when: 'the guest started a new session (it rebooted) before this one ended; the old answer is not sent.',
    action: 'None; a reboot during attestation does this.',
  },
  SHUTDOWN: {
    area: 'session',
    guest: 'not answered',
    when: 'the proxy was stopping (SIGTERM or SIGINT) and shutdown-grace-ms passed before this session ended: its link was closed.',
    action: 'None for a planned stop: the guest attests at its next boot. If stops cut sessions often, raise shutdown-grace-ms.',
  },
  PLUGIN_INVALID: {
    area: 'setup',
    when: 'the protocol option names a module that cannot be loaded, does not export a backend, or missed its load deadline (backend-call-timeout-ms).',
    action: 'Fix the module or the path; docs/backends.md says what a backend exports.',
  },
  PLUGIN_FAULT: {
    area: 'proxy',
    guest: 'failure answer',
    when: 'a backend broke its contract: a call past backend-call-timeout-ms, a result of the wrong shape, or an uncaught exception from its code.',
    action: "Report it to the backend's author; the guest got the failure answer.",
  },
  SOCKET_IN_USE: {
    area: 'setup',
    when: 'something is at the unix path: a live socket (another process serves it), or, without force, a stale socket or any other file.',
    action:
      'A live socket: stop the other process or choose another path. A stale socket: set force. Any other file: remove it or choose another path.',
  },
  SOCKET_PATH: {
    area: 'setup',
    when: 'the unix path cannot be used: it is too long, its directory is missing, not writable or too deep, or, with force, a file that is not a socket is there (force replaces stale sockets only).',
    action: 'The message names the path and what is wrong.',
  },
  CONFIG: {
    area: 'setup',
    when: 'an option, a config-file key or a backend option has a bad value; the message names the option.',
    action: "Fix the value named in the message; `aproxy check` finds it without starting, and a shipped unit's reload runs it first.",
  },
  VSOCK_UNAVAILABLE: {
    area: 'setup',
    when: 'AF_VSOCK cannot be served: the vsock port is already bound, no vsock module in the host kernel, or no addon: the prebuilt binary in the package does not fit this platform (it is linux-x64, glibc) and none was built at install.',
    action:
      'The message says which; load vhost_vsock, or rebuild the addon where python3, make and a C compiler are available (`npm rebuild aproxy`).',
  },
  INTERNAL: {
    area: 'proxy',
    guest: 'failure answer',
    when: 'an error without one of the codes above: a backend threw a plain Error (its message is logged), or a fault in aproxy. A system error on a link (its errno is logged beside it) closes that link instead; a reset between frames is a guest leaving, not an error.',
    action:
      "A backend's error: give it a code (docs/backends.md); otherwise report it with the log line. The proxy keeps serving the other guests.",
  },
} as const satisfies Record<string, Reason>;

export type ErrorCode = keyof typeof ERROR_REASONS;

/** Why a vsock connection was refused at accept (label `reason` of aproxy_guest_refusals_total). */
export const REFUSAL_REASONS = {
  per_cid: {
    when: 'one guest CID already holds vsock-max-per-cid connections.',
    action: 'None for a flood from one guest; a real guest needs one connection, two across a reboot.',
  },
  total: {
    when: 'vsock-max-connections connections are open from all guests together.',
    action: 'Raise vsock-max-connections if the host runs that many VMs.',
  },
  open_files: {
    when: "guest connections of every transport together reached the process's open-file limit (LimitNOFILE) less a reserve kept for server connections, metrics, logs and plugins, so admitted guests can still be served.",
    action:
      'Raise LimitNOFILE in the unit if the host runs that many VMs (the ready line says the cap: maxGuestConnections); otherwise find who opens connections to the guest sockets.',
  },
  no_cid: {
    when: "the kernel could not say which CID connected (getpeername failed): the connection cannot be held to any guest's caps or budget, so it is refused rather than treated as the trusted host loopback.",
    action: 'None if rare (the peer left as it connected); report it if it repeats.',
  },
} as const satisfies Record<string, Omit<Reason, 'area'>>;
export type RefusalReason = keyof typeof REFUSAL_REASONS;

/** Why a link is not being read (label `reason` of aproxy_guest_links_waiting). */
export const WAIT_REASONS = {
  answer_untaken: {
    when: 'the guest has not read its last answer; its link is not read until it does.',
    action: "None; it costs one answer and a socket. A VM stuck here is not running SVSM's attestation.",
  },
  session_budget: {
    when: 'the guest started more sessions than sessions-per-minute and session-burst allow; it is paced.',
    action: 'None for a flood; a VM rebooting in a loop shows here too.',
  },
  backend_busy: {
    when: "the link's previous session left server work running (the guest rebooted mid-exchange); the next session waits for it, up to its deadline.",
    action: "None; persistent, check the server's latency.",
  },
} as const satisfies Record<string, Omit<Reason, 'area'>>;
export type WaitReason = keyof typeof WAIT_REASONS;
