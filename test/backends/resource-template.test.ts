import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseResourceTemplate, resolveResource } from '../../src/backends/kbs/resource-template.js';
import { buildSyntheticReport, parseSnpReport } from '../../src/protocol/index.js';

const hostData = (byte: number) => Buffer.alloc(32, byte);

describe('resource templates', () => {
  test('templates: every field resolves from a real report and the transport; unknown fields and unsafe paths are refused', () => {
    const report = parseSnpReport(
      buildSyntheticReport({
        measurement: Buffer.alloc(48, 0xab),
        reportData: Buffer.alloc(64),
        hostData: hostData(0x0f),
        chipId: Buffer.alloc(64, 0xc1),
      }),
    );
    const t = parseResourceTemplate('tenant/{listener}/{host_data}-{measurement}-{chip_id}-{report_id}-{cid}');
    const path = resolveResource(t, report, { transport: 'vsock', listener: 'vm-7', cid: 42 });
    assert.equal(path, `tenant/vm-7/${'0f'.repeat(32)}-${'ab'.repeat(48)}-${'c1'.repeat(64)}-${'00'.repeat(32)}-42`);
    for (const [template, re] of [
      ['vtpm/{hostdata}', /unknown field \{hostdata\}/],
      ['vtpm/{host_data', /a lone "\{"/],
      ['vtpm/../secrets/{host_data}', /unsafe path/],
      ['vtpm/%2e%2e/{host_data}', /unsafe path/],
      ['vtpm//{host_data}', /unsafe path/],
      ['vtpm/{host_data}?x=1', /unsafe path/],
    ] as const) {
      assert.throws(() => parseResourceTemplate(template), { code: 'CONFIG', message: re }, template);
    }
    // Values are checked too: a listener name that is not a path segment, a {cid} without vsock, a report missing.
    assert.throws(() => resolveResource(parseResourceTemplate('k/{listener}'), report, { transport: 'unix', listener: '..' }), {
      code: 'CONFIG',
    });
    assert.throws(() => resolveResource(parseResourceTemplate('k/{listener}'), report, { transport: 'unix', listener: 'a/b' }), {
      code: 'CONFIG',
    });
    assert.throws(() => resolveResource(parseResourceTemplate('k/{cid}'), report, { transport: 'unix', listener: 'x' }), {
      code: 'CONFIG',
      message: /\{cid\}/,
    });
    assert.throws(() => resolveResource(parseResourceTemplate('k/{host_data}'), undefined, undefined), { code: 'ATTESTATION_REJECTED' });
  });

  test('a listener name of 64 characters resolves, as the listener rule allows; 65 is refused', () => {
    const t = parseResourceTemplate('k/{listener}');
    assert.equal(resolveResource(t, undefined, { transport: 'unix', listener: 'n'.repeat(64) }), `k/${'n'.repeat(64)}`);
    assert.throws(() => resolveResource(t, undefined, { transport: 'unix', listener: 'n'.repeat(65) }), { code: 'CONFIG' });
  });

  test('a template without fields is its own path for every guest', () => {
    const t = parseResourceTemplate('default/sample/test');
    assert.deepEqual([...t.fields], []);
    assert.equal(resolveResource(t, undefined, undefined), 'default/sample/test');
  });
});
