import type { Argv } from 'yargs';
import { positiveInt, UsageError } from './usage.js';

export const command = 'qemu-args';
export const describe =
  'print the QEMU arguments that connect a guest to the proxy: a vsock device (--vsock CID) or COM3 on the socket (--unix PATH)';

export const builder = <T>(y: Argv<T>) =>
  y
    .option('vsock', { type: 'number', describe: "the guest's vsock CID (3 or above, unique on the host)" })
    .option('vsock-device', {
      choices: ['mmio', 'pci'] as const,
      default: 'mmio' as const,
      describe: 'vhost-vsock-device (SVSM, as launch_guest.sh) or vhost-vsock-pci',
    })
    .option('unix', { type: 'string', describe: 'proxy socket path for COM3 (COM1/COM2 untouched)' })
    .option('reconnect-ms', { type: 'number', default: 1000, describe: 'how often QEMU retries while no proxy listens' })
    .option('qemu-version', { type: 'string', describe: 'target QEMU version (before 9.2 the option is reconnect=SECONDS)' })
    .option('qemu', {
      type: 'string',
      describe: 'the QEMU binary the VM runs: its version and whether it has device planes are asked of it',
    })
    .check((a) => {
      if (a.unix === undefined && a.vsock === undefined) throw new UsageError('qemu-args needs --vsock CID or --unix PATH');
      return true;
    });

type Args = Awaited<ReturnType<typeof builder>['argv']>;

export async function handler(argv: Args): Promise<void> {
  const { qemuSerialArgs, qemuVsockArgs, shellJoin } = await import('../tools/qemu-args.js');
  const { askQemu } = await import('../tools/qemu-facts.js');
  let facts: ReturnType<typeof askQemu> | undefined;
  try {
    facts = argv.qemu === undefined ? undefined : askQemu(argv.qemu);
  } catch (err) {
    throw new UsageError(`--qemu ${argv.qemu}: ${(err as Error).message}`);
  }
  const args: string[] = [];
  try {
    if (argv.vsock !== undefined) {
      const device = argv['vsock-device'];
      args.push(...qemuVsockArgs({ cid: argv.vsock, device, planes: facts?.planes === true }));
      if (facts !== undefined && device === 'mmio' && !facts.svsmVirtioMmio) {
        console.error(
          `aproxy qemu-args: ${argv.qemu} (${facts.version}) has no machine property x-svsm-virtio-mmio: SVSM's vsock device needs COCONUT-SVSM's QEMU (11.0 or newer, with its patches)`,
        );
      }
    }
  } catch (err) {
    throw new UsageError(`--vsock: ${(err as Error).message}`);
  }
  if (argv.unix !== undefined) {
    const reconnectMs = positiveInt('reconnect-ms', argv['reconnect-ms']);
    try {
      args.push(...qemuSerialArgs({ unix: argv.unix, reconnectMs, qemuVersion: argv['qemu-version'] ?? facts?.version }));
    } catch (err) {
      // The one thing qemuSerialArgs refuses: a version it cannot read.
      throw new UsageError(`--qemu-version: ${(err as Error).message}`);
    }
  }
  console.log(shellJoin(args));
}
