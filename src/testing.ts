// `aproxy/testing`: the test kit. A KBS 0.4.0 server with real checks,
// simulated SVSM guests, and the conformance run for backend authors.

export { type ConformanceCheck, type ConformanceOptions, type ConformanceReport, runConformance } from './testkit/conformance.js';
export {
  type BootOptions,
  type BootResult,
  type GuestFleetOptions,
  type GuestFleetSummary,
  runGuestFleet,
  SimulatedGuest,
} from './testkit/guest-simulator.js';
export { TestKbs, type TestKbsOptions } from './testkit/test-kbs.js';
