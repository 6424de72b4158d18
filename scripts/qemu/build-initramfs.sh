#!/bin/sh
# Builds a tiny initramfs for the QEMU serial-path test: static busybox and
# an /init that relays the guest's COM1 (ttyS0, where the simulated SVSM is
# attached) to COM3 (ttyS2, the aproxy socket) and back, byte for byte.
#
#   scripts/qemu/build-initramfs.sh OUT.cpio.gz [BUSYBOX]
#
# Needs: a statically linked busybox (Debian: busybox-static) and cpio.
set -eu
out=$1
busybox=${2:-/bin/busybox}
[ -x "$busybox" ] || { echo "build-initramfs: $busybox not found (apt-get install busybox-static)" >&2; exit 2; }
command -v cpio >/dev/null || { echo "build-initramfs: cpio not found (apt-get install cpio)" >&2; exit 2; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys"
cp "$busybox" "$root/bin/busybox"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
# Both ports are opened here, before the ready line: a port first opened
# later by a background cat would have its FIFO cleared on that open, and
# the bytes a guest sent right after the ready line would be lost with it.
exec 3<>/dev/ttyS0 4<>/dev/ttyS2
# Raw, 8-bit clean, no flow control, no echo: every byte value passes through.
for t in /dev/ttyS0 /dev/ttyS2; do
  stty -F "$t" raw -echo -ixon -ixoff -crtscts clocal min 1 time 0 115200
done
cat <&3 >&4 &
cat <&4 >&3 &
echo APROXY-RELAY-READY > /dev/ttyS1
# Keep PID 1 alive; the test ends the VM by stopping QEMU.
while :; do sleep 3600; done
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$out"
