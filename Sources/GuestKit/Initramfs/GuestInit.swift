/// The guest kit's `/init`: a busybox shell script.
///
/// Stage 1 loads the modules the kernel command line names
/// (`launch.modules=a,b,c`, dependencies first) so the virtio-serial ports
/// appear. Stage 2 reads a length-prefixed shell snippet from the host on the
/// port `launch.status` (modules to load, shares to mount, the command as
/// `set -- ...`), runs the command with stdin/stdout/stderr on their own ports,
/// reports `exit RC OUT_BYTES ERR_BYTES` back on `launch.status`, and powers off.
/// The byte counts let the host know it has every byte before the VM is gone.
/// With no command, a shell runs on the serial console instead.
enum GuestInit {
    static let script = #"""
#!/bin/sh
# launch guest kit init (generated; see GuestKit/Initramfs/GuestInit.swift)
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=linux
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/virtio-ports /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
say() { echo "launch-init: $*" > /dev/console; }
die() { say "$*"; poweroff -f; }
mods=""
exec_mode=0
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    launch.modules=*) mods="${arg#launch.modules=}" ;;
    launch.exec=1) exec_mode=1 ;;
  esac
done
for m in $(echo "$mods" | tr , ' '); do
  insmod "/lib/modules/$m.ko" || say "insmod $m failed"
done
link_ports() {
  for p in /sys/class/virtio-ports/vport*; do
    [ -r "$p/name" ] || continue
    n="$(cat "$p/name")"
    [ -n "$n" ] && ln -sf "/dev/${p##*/}" "/dev/virtio-ports/$n"
  done
}
ctl=/dev/virtio-ports/launch.status
link_ports
if [ "$exec_mode" = 1 ]; then
  # Each port's name arrives from QEMU separately, after the driver probes:
  # wait (up to 30 s) until all four exec ports are there.
  ports_ready() {
    for n in launch.status launch.stdin launch.stdout launch.stderr; do
      [ -e "/dev/virtio-ports/$n" ] || return 1
    done
  }
  i=0
  while ! ports_ready && [ $i -lt 3000 ]; do usleep 10000; link_ports; i=$((i+1)); done
  ports_ready || die "the exec ports (launch.*) did not appear: is virtio_console loaded and are the ports planned?"
  exec 5<>"$ctl"
  read -r len <&5
  setup="$(head -c "$len" <&5)"
  set --
  eval "$setup"
  if [ $# -gt 0 ]; then
    P=/dev/virtio-ports
    { { "$@" < "$P/launch.stdin" 5>&-; echo $? > /run/rc; } 2>&1 1>&3 3>&- | tee "$P/launch.stderr" | wc -c > /run/errn; } 3>&1 | tee "$P/launch.stdout" | wc -c > /run/outn
    echo "exit $(cat /run/rc) $(cat /run/outn) $(cat /run/errn)" >&5
  else
    setsid cttyhack sh
  fi
else
  say "no command: starting a shell on the console (exit it to power off)"
  setsid cttyhack sh
fi
poweroff -f
"""#
}
