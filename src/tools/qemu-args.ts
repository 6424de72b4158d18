/**
 * QEMU arguments that attach a guest's COM3 to the proxy socket.
 *
 * `-device isa-serial,index=2` places the UART at COM3 (I/O 0x3E8, IRQ 4)
 * whatever the other serial options are, so COM1 and COM2 stay as they
 * were. The `socket` chardev with a reconnect interval keeps trying while
 * no proxy listens, and reconnects after a proxy restart (bytes the guest
 * writes meanwhile are dropped).
 */
export interface QemuArgsOptions {
  readonly unix: string;
  /** Reconnect interval; QEMU before 9.2 only has whole seconds (`reconnect=`). */
  readonly reconnectMs?: number;
  /** Target QEMU version, `MAJOR.MINOR`; picks `reconnect-ms=` (9.2+) or `reconnect=`. */
  readonly qemuVersion?: string;
  readonly id?: string;
}

export function qemuVersionAtLeast(version: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) throw new RangeError(`QEMU version must look like 9.2 or 7.2.0, got ${JSON.stringify(version)}`);
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > major || (maj === major && min >= minor);
}

/** QEMU splits option values on ','; a literal comma is written ',,'. */
const qemuEscape = (s: string) => s.replaceAll(',', ',,');

export function qemuSerialArgs(o: QemuArgsOptions): string[] {
  const id = o.id ?? 'aproxy';
  const ms = o.reconnectMs ?? 1000;
  const modern = o.qemuVersion === undefined || qemuVersionAtLeast(o.qemuVersion, 9, 2);
  const reconnect = modern ? `reconnect-ms=${ms}` : `reconnect=${Math.max(1, Math.round(ms / 1000))}`;
  return ['-chardev', `socket,id=${id},path=${qemuEscape(o.unix)},${reconnect}`, '-device', `isa-serial,chardev=${id},index=2`];
}

export interface QemuVsockOptions {
  /** The guest's context id: unique per host, 3 or above (0–2 are reserved). */
  readonly cid: number;
  /**
   * `mmio` (vhost-vsock-device on SVSM's virtio-mmio transport, as
   * upstream's launch_guest.sh gives SVSM) or `pci` (vhost-vsock-pci, for
   * guests without virtio-mmio discovery).
   */
  readonly device?: 'mmio' | 'pci';
  /** The QEMU has device planes (its `-h` names `device-plane=`): the device goes to SVSM's plane. */
  readonly planes?: boolean;
}

/** SVSM's VMPL and the guest OS's, as SVSM defines them (kernel/src/types.rs) and launch_guest.sh passes them. */
export const SVSM_VMPL = 0;
export const GUEST_VMPL = 2;

/**
 * The vsock device through which SVSM reaches the host (CID 2, port 1995),
 * with what SVSM's QEMU needs beside it: the machine's virtio-mmio slots
 * for SVSM (`x-svsm-virtio-mmio=on`, a second `-machine` that QEMU merges
 * into the first), modern virtio-mmio, and where QEMU has device planes the
 * device on SVSM's plane while the guest OS's devices stay on its own.
 * Needs /dev/vhost-vsock on the host.
 */
export function qemuVsockArgs(o: QemuVsockOptions): string[] {
  if (!Number.isInteger(o.cid) || o.cid < 3 || o.cid > 0xfffffffe)
    throw new RangeError(`guest CID must be an integer from 3 to 4294967294, got ${o.cid}`);
  if (o.device === 'pci') return ['-device', `vhost-vsock-pci,guest-cid=${o.cid}`];
  const machine = ['x-svsm-virtio-mmio=on', ...(o.planes ? ['kernel-irqchip=split', `device-plane=${GUEST_VMPL}`] : [])];
  return [
    '-machine',
    machine.join(','),
    '-global',
    'virtio-mmio.force-legacy=false',
    '-device',
    `vhost-vsock-device,guest-cid=${o.cid}${o.planes ? `,plane=${SVSM_VMPL}` : ''}`,
  ];
}

/** What a QEMU binary says about itself: its version, whether it has device planes and SVSM's virtio-mmio machine property. */
export interface QemuFacts {
  readonly version: string;
  readonly planes: boolean;
  readonly svsmVirtioMmio: boolean;
}

/** Shell-quotes arguments for printing. */
export function shellJoin(args: readonly string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}
