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
///
/// A watcher handles the power button (QMP `system_powerdown`, the shutdown
/// ladder's ACPI step). Started after stage 1, it loads the modules `launch.button=`
/// names (`button`, `evdev`, `gpio_keys`) while the ports come up, and opens the
/// button's `/dev/input/eventN`, found by name; the command starts once it has. On
/// a press it stops the command (SIGTERM; SIGHUP for the console shell), syncs,
/// unmounts the shares and powers off. The command then reports
/// `stopped RC OUT_BYTES ERR_BYTES` instead of `exit ...`, so a run ended by the
/// button is never taken for the command's own exit.
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
button_mods=""
exec_mode=0
# Builtins where a fork would do (cat, tr): on one emulated vCPU every fork shows in boot time.
read -r cmdline < /proc/cmdline
for arg in $cmdline; do
  case "$arg" in
    launch.modules=*) mods="${arg#launch.modules=}" ;;
    launch.button=*) button_mods="${arg#launch.button=}" ;;
    launch.exec=1) exec_mode=1 ;;
  esac
done
default_ifs="$IFS"
IFS=,
for m in $mods; do
  insmod "/lib/modules/$m.ko" || say "insmod $m failed"
done
IFS="$default_ifs"

# The power button. A watcher of our own rather than busybox acpid: acpid opens
# only the event devices present when it starts and runs handler files from
# /etc/acpi; this reads only the button's devices, found by name, and knows which
# process is the command. The ACPI button (PNP0C0C via microvm's GED, the
# fixed-feature LNXPWRBN on q35/pc) is "Power Button"; aarch64 virt without
# firmware signals it on a PL061 GPIO line, which gpio_keys reports as "gpio-keys".
power_off_clean() {
  sync
  umount -a -r -t virtiofs,9p 2>/dev/null
  poweroff -f
}
button_pressed() {
  # Once, even when two button devices fire.
  mkdir /run/power-button 2>/dev/null || return 0
  pid="" sig=""
  [ -r /run/command ] && read -r pid sig < /run/command
  if [ -n "$pid" ] && kill -"$sig" "$pid" 2>/dev/null; then
    say "power button: sent SIG$sig to the command; powering off when it ends"
    # The main flow reports and powers off as soon as the command ends. This is for a
    # command that ignores the signal (2 s), or whose children keep its output open.
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 40 ]; do usleep 50000; i=$((i+1)); done
    kill -0 "$pid" 2>/dev/null && say "power button: the command ignored SIG$sig for 2 s; powering off"
    usleep 500000
  else
    say "power button: powering off"
  fi
  power_off_clean
}
watch_power_button() {
  IFS=,
  for m in $button_mods; do
    insmod "/lib/modules/$m.ko" 2>/dev/null || [ -d "/sys/module/$m" ] || say "insmod $m failed (power button)"
  done
  IFS="$default_ifs"
  # gpio_keys binds once the GPIO controller is there; should its probe be deferred,
  # give it up to 2 s (only then: no device of that name, no wait).
  i=0
  while [ -e /sys/bus/platform/devices/gpio-keys ] && [ ! -e /sys/bus/platform/devices/gpio-keys/driver ] && [ $i -lt 200 ]; do
    usleep 10000
    i=$((i+1))
  done
  # By name through sysfs, with builtins: /proc/bus/input/devices can't be read by ash's
  # read (it polls first, and that file is readable to poll only when devices change).
  devs=""
  for e in /sys/class/input/event*; do
    [ -r "$e/device/name" ] || continue
    read -r name < "$e/device/name"
    case "$name" in "Power Button" | gpio-keys) devs="$devs ${e##*/}" ;; esac
  done
  fd=3
  for d in $devs; do
    [ -c "/dev/input/$d" ] || continue
    # Opened here, before the command starts: evdev queues every event from the open on,
    # so a press that comes before dd reads is not lost. An evdev read returns whole
    # 24-byte events; any event of these devices is the power key.
    eval "exec $fd< /dev/input/$d"
    ( dd of=/dev/null bs=64 count=1 <&"$fd" 2>/dev/null && button_pressed ) &
    fd=$((fd+1))
  done
  [ $fd -gt 3 ] || say "power button: no input event device found (needs the button or gpio_keys driver and evdev); ACPI power-off requests will be ignored"
}
watch_power_button &
button_watcher=$!

# Runs "$@" in a subshell that records its pid and the signal that stops it ($1) for
# the power-button watcher. ash execs a subshell's last command in place, so the pid
# is the command's own (a builtin runs in the subshell itself).
run_command() {
  sig=$1
  shift
  ( read -r pid _ < /proc/self/stat; echo "$pid $sig" > /run/command; "$@" )
}

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
  # Armed before the command starts, so stopping the VM any time after that ends at
  # the ACPI step (a press before the device is open is lost). The module loading
  # mostly overlaps the port setup; wait blocks without polling.
  wait "$button_watcher"
  if [ $# -gt 0 ]; then
    P=/dev/virtio-ports
    { { run_command TERM "$@" < "$P/launch.stdin" 5>&-; echo $? > /run/rc; } 2>&1 1>&3 3>&- | tee "$P/launch.stderr" | wc -c > /run/errn; } 3>&1 | tee "$P/launch.stdout" | wc -c > /run/outn
    # Pressed while the command ran: its exit code is the signal's doing, not its own.
    if [ -e /run/power-button ]; then word=stopped; else word=exit; fi
    echo "$word $(cat /run/rc) $(cat /run/outn) $(cat /run/errn)" >&5
  else
    run_command HUP setsid cttyhack sh
  fi
else
  wait "$button_watcher"
  say "no command: starting a shell on the console (exit it to power off)"
  # An interactive shell ignores SIGTERM; SIGHUP ends it.
  run_command HUP setsid cttyhack sh
fi
[ -e /run/power-button ] && power_off_clean
poweroff -f
"""#
}
