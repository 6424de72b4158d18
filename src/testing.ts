// `aproxy/testing`: the test kit. A KBS 0.4.0 server with real checks,
// simulated SVSM guests, and the conformance run for backend authors.
export { TestKbs, type TestKbsOptions } from './testkit/test-kbs.js';
export {
  SimulatedGuest,
  runGuestFleet,
  type BootOptions,
  type BootResult,
  type GuestFleetOptions,
  type GuestFleetSummary,
} from './testkit/guest-simulator.js';
export { runConformance, type ConformanceOptions, type ConformanceReport, type ConformanceCheck } from './testkit/conformance.js';
