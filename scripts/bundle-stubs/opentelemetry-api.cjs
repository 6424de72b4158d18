// What dist/bundle has in place of @opentelemetry/api (scripts/bundle.mjs).
// prom-client requires it in one place, processCpuTotal.js, and reads it
// only for exemplars, which aproxy never enables; loading the real package
// cost the first guest after a start ~8 ms of CPU on Node 20
// (docs/performance.md). Should a prom-client upgrade read it elsewhere, the
// metrics say why instead of reporting nothing.
'use strict';

function unavailable() {
  throw new Error("@opentelemetry/api is not in aproxy's bundle: prom-client exemplars are off (scripts/bundle-stubs)");
}

module.exports = { trace: { getSpan: unavailable }, context: { active: unavailable } };
