#!/bin/sh
# Builds the initramfs for the vsock tests: a QEMU TCG guest whose kernel
# has the vsock loopback transport, so a real AF_VSOCK stack is there without
# any vhost-vsock device (which would reach this machine's host). It loads
# the modules, mounts the host's / read-only over 9p with a tmpfs overlay
# (node and the checkout are there without copying, wherever the checkout
# is, /tmp included; writes land in the overlay), mounts a writable 9p share
# for results, runs one command in that root, writes its exit status beside
# its output, and powers off.
#
# With INIT=systemd the root boots this machine's own systemd as PID 1
# instead, into a target that runs the command as a service and powers off
# when it ends: what runs under systemd on a host (socket units, journald,
# systemctl) is tested under a real systemd.
#
#   scripts/qemu/build-vsock-initramfs.sh OUT.cpio.gz KERNEL_VERSION WORKDIR COMMAND [BUSYBOX] [INIT]
#
# Needs: busybox-static, cpio, and the kernel's modules in /lib/modules.
set -eu
out=$1 kver=$2 workdir=$3 command=$4
busybox=${5:-/bin/busybox}
init=${6:-shell}
[ -x "$busybox" ] || { echo "build-vsock-initramfs: $busybox not found (apt-get install busybox-static)" >&2; exit 2; }
command -v cpio >/dev/null || { echo "build-vsock-initramfs: cpio not found (apt-get install cpio)" >&2; exit 2; }
moddir=/lib/modules/$kver/kernel
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/mods" "$root/host" "$root/upper" "$root/newroot" "$root/results"
cp "$busybox" "$root/bin/busybox"
# Order matters: each module after the ones it needs.
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci fs/netfs/netfs fs/fscache/fscache \
         net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p net/vmw_vsock/vsock \
         net/vmw_vsock/vmw_vsock_virtio_transport_common net/vmw_vsock/vsock_loopback fs/overlayfs/overlay; do
  f=$(ls "$moddir/$m.ko"* 2>/dev/null | head -n 1)
  [ -n "$f" ] || { echo "build-vsock-initramfs: module $m not found under $moddir (apt-get install linux-image-amd64)" >&2; exit 2; }
  case "$f" in
    *.xz) xz -dc "$f" > "$root/mods/$(basename "$m").ko" ;;
    *.zst) zstd -dqc "$f" > "$root/mods/$(basename "$m").ko" ;;
    *) cp "$f" "$root/mods/$(basename "$m").ko" ;;
  esac
  echo "$(basename "$m")" >> "$root/mods/order"
done
cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
ifconfig lo 127.0.0.1 up
for m in \$(cat /mods/order); do insmod /mods/\$m.ko || echo "insmod \$m failed"; done
o=trans=virtio,version=9p2000.L,cache=loose,msize=512000
mount -t 9p -o ro,\$o hostroot /host
mount -t 9p -o \$o results /results
mount -t tmpfs tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/host,upperdir=/upper/u,workdir=/upper/w /newroot
echo "APROXY-VM-READY \$(cut -d' ' -f1 /proc/uptime)"
if [ "$init" = systemd ]; then
  mkdir -p /newroot/results && mount --move /results /newroot/results
  etc=/newroot/etc/systemd/system
  # No disks to mount, and nothing the host enabled for itself; tmpfiles
  # would empty the host's /tmp through the overlay (slow, and pointless);
  # the host's container marker would make systemd think it is in one.
  : > /newroot/etc/fstab
  rm -f /newroot/.dockerenv /newroot/run/.containerenv
  for u in systemd-timesyncd.service systemd-pstore.service getty@tty1.service serial-getty@ttyS0.service \
           e2scrub_reap.service systemd-networkd-wait-online.service systemd-tmpfiles-setup.service \
           systemd-tmpfiles-clean.timer; do ln -sf /dev/null "\$etc/\$u"; done
  cat > "\$etc/aproxy-vm.target" <<UNIT
[Unit]
Description=aproxy test VM
Requires=basic.target aproxy-vm-run.service
After=basic.target
AllowIsolate=yes
UNIT
  cat > "\$etc/aproxy-vm-run.service" <<UNIT
[Unit]
Description=aproxy test VM: the command
After=basic.target
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
WorkingDirectory=$workdir
Environment=HOME=/root APROXY_IN_VM=1
ExecStart=/bin/sh -c '( $command ) > /results/out 2>&1; echo \\\$\\\$? > /results/rc; sync'
UNIT
  # The kernel command line names the target (systemd.unit=aproxy-vm.target).
  exec switch_root /newroot /lib/systemd/systemd
fi
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/results && mount --bind /results /newroot/results
chroot /newroot /bin/sh -c 'cd "$workdir" && export HOME=/tmp APROXY_IN_VM=1 && $command' > /results/out 2>&1
echo \$? > /results/rc
sync
echo APROXY-VM-DONE
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
