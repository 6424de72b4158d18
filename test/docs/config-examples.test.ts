import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../../scripts/processes.js';
import { normalizeConfig } from '../../src/service/config/normalize.js';
import { resolveSettings } from '../../src/service/config/resolve.js';
import { createLogger } from '../../src/service/log.js';

const documents = ['README.md', ...readdirSync(join(REPO_ROOT, 'docs')).map((f) => join('docs', f))].filter((f) => f.endsWith('.md'));

/** Every config file the documents show: the ```json blocks that name a protocol. */
const examples = documents.flatMap((doc) =>
  [...readFileSync(join(REPO_ROOT, doc), 'utf8').matchAll(/```json\n([\s\S]*?)```/g)]
    .map((m) => m[1] as string)
    .filter((block) => block.includes('"protocol"'))
    .map((block, i) => ({ where: `${doc} example ${i + 1}`, block })),
);

test('the documents show config files', () => {
  assert.ok(examples.length >= 2, examples.map((e) => e.where).join(', '));
});

for (const { where, block } of [
  ...examples,
  { where: 'contrib/systemd/aproxy.json', block: readFileSync(join(REPO_ROOT, 'contrib', 'systemd', 'aproxy.json'), 'utf8') },
]) {
  test(`${where} is a config file aproxy takes as it is written`, () => {
    // The group lookup is this machine's business, not the example's: any group name resolves.
    const settings = resolveSettings({ flags: {}, file: { path: '/etc/aproxy/aproxy.json', json: JSON.parse(block) } }, () => 107);
    const config = normalizeConfig({ ...settings.config, listenFds: [{ fd: 3, name: 'vsock' }], log: createLogger({ level: 'silent' }) });
    assert.ok(config.listeners.length > 0);
  });
}
