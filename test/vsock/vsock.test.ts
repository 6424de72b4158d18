// Real AF_VSOCK: this machine has no vsock loopback and must never reach
// its host over vsock, so the scenarios (test/vsock/in-vm.suite.ts) run
// inside a QEMU TCG guest with the kernel's vsock_loopback transport: the
// proxy, the test KBS and the guests all inside, talking over real vsock
// sockets. Each scenario is reported here under its own name.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { findQemuKit } from '../../scripts/qemu/vm.js';
import { vsockAddonPath } from '../../src/frontend/vsock-native.js';
import { vmSuite } from '../support/vm-suite.js';

const kit = findQemuKit();
const skip =
  'missing' in kit
    ? kit.missing
    : vsockAddonPath() === undefined
      ? 'no vsock addon: none was built at npm ci (needs python3, make, a C compiler and Node headers)'
      : !existsSync(join('/lib/modules', /vmlinuz-(.+)$/.exec(kit.kernel)?.[1] ?? '-'))
        ? `no kernel modules for ${kit.kernel} (apt-get install linux-image-amd64)`
        : false;

vmSuite({
  title: 'vsock, for real, in a QEMU guest',
  skip,
  kit,
  suite: 'dist/test/vsock/in-vm.suite.js',
  booted: 'the guest boots and runs the vsock scenarios',
  minScenarios: 10,
});
