/// The guest kit's `/init`: a busybox shell script.
///
/// Stage 1 loads the modules the kernel command line names
/// (`launch.modules=a,b,c`, dependencies first) so the virtio-serial ports
/// appear. With `launch.session=N` it then serves a session (see
/// `SessionProtocol`): it reads a length-prefixed setup snippet from the host on
/// `launch.ctl` (modules to load, shares to mount), runs it, says `ready`, and
/// from then on runs each `run SLOT LEN` script it is sent in the background, with
/// that slot's ports (`launch.SLOT.in/out/err`) as the command's streams, and
/// reports `exit SLOT RC OUT_BYTES ERR_BYTES` back on `launch.ctl`. The byte counts
/// let the host know it has every byte of a command's output before it reuses the
/// slot or powers the guest off. With `launch.park=1` (warm start) it says `parked`
/// after the setup and reads a second snippet (clock, seed, identity, mounts) before
/// `ready`: the host saves the guest while it waits there. `signal SLOT SIG` signals a command's process
/// group (timeouts, cancellation); `poweroff` (or the host closing `launch.ctl`)
/// syncs, unmounts the shares and powers off. With no session, a shell runs on the
/// serial console instead.
///
/// A watcher handles the power button (QMP `system_powerdown`, the shutdown
/// ladder's ACPI step). Started after stage 1, it loads the modules `launch.button=`
/// names (`button`, `evdev`, `gpio_keys`) while the ports come up, and opens the
/// button's `/dev/input/eventN`, found by name; the session says `ready` once it
/// has. On a press it stops every running command (SIGTERM to its process group;
/// SIGHUP for the console shell), syncs, unmounts the shares and powers off. Those
/// commands report `stopped SLOT RC OUT_BYTES ERR_BYTES` instead of `exit ...`, so a
/// run ended by the button is never taken for the command's own exit.
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
slots=0
park=0
console_shell=0
# Builtins where a fork would do (cat, tr): on one emulated vCPU every fork shows in boot time.
read -r cmdline < /proc/cmdline
for arg in $cmdline; do
  case "$arg" in
    launch.modules=*) mods="${arg#launch.modules=}" ;;
    launch.button=*) button_mods="${arg#launch.button=}" ;;
    launch.session=*) slots="${arg#launch.session=}" ;;
    launch.park=*) park="${arg#launch.park=}" ;;
    launch.console_shell=*) console_shell="${arg#launch.console_shell=}" ;;
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
  # Every running command (a session's slots, or the console shell): "PID SIG" in
  # /run/cmd/NAME, each the leader of its own process group.
  pids=""
  for f in /run/cmd/*; do
    [ -r "$f" ] || continue
    pid="" sig=""
    read -r pid sig < "$f"
    [ -n "$pid" ] && kill -"$sig" -"$pid" 2>/dev/null && pids="$pids $pid" && say "power button: sent SIG$sig to ${f##*/}"
  done
  if [ -n "$pids" ]; then
    # The session reports each stopped command as it ends; the host then powers the
    # guest off. This is for commands that ignore the signal (2 s), or whose children
    # keep their output open.
    i=0
    while [ $i -lt 40 ]; do
      alive=""
      for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ -z "$alive" ] && break
      usleep 50000
      i=$((i+1))
    done
    [ -n "$alive" ] && say "power button: a command ignored its signal for 2 s; powering off"
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

# Runs "$@" (after the name $1 and stop signal $2) in a subshell that records its
# pid and signal in /run/cmd/NAME for the power-button watcher and `signal`, and
# becomes the leader of a new session (setsid execs in place: a subshell is no
# process-group leader), so a signal reaches the command's children too.
run_command() {
  name=$1 sig=$2
  shift 2
  if [ "$1" = in_root ]; then
    # A command in the root filesystem (GuestRoot): in_root execs setsid itself, and the
    # root's own shell reports a missing program.
    ( read -r pid _ < /proc/self/stat; echo "$pid $sig" > "/run/cmd/$name"; "$@" )
    return
  fi
  # The shell's own words and status for a missing program (setsid would say "can't execute").
  command -v "$1" > /dev/null || { echo "sh: $1: not found" >&2; return 127; }
  ( read -r pid _ < /proc/self/stat; echo "$pid $sig" > "/run/cmd/$name"; exec setsid "$@" )
}
mkdir -p /run/cmd

# Reads exactly $1 bytes from stdin. Not head -c: it reads through stdio and takes
# more than it prints, which would eat the next message on the port.
take() { dd bs="$1" count=1 iflag=fullblock 2>/dev/null; }

# Called in a 10 ms poll until every port is named: builtins only (read, a test for a
# link made already), as each fork there costs milliseconds on one emulated vCPU.
link_ports() {
  for p in /sys/class/virtio-ports/vport*; do
    [ -r "$p/name" ] || continue
    n=""
    read -r n < "$p/name"
    [ -n "$n" ] && [ ! -L "/dev/virtio-ports/$n" ] && ln -sf "/dev/${p##*/}" "/dev/virtio-ports/$n"
  done
}
P=/dev/virtio-ports

# One command of the session, in slot $1, set up by the host's script $2 (working
# directory, environment, stdin mode, argv). Runs in the background; fd 5 is
# launch.ctl, shared by every slot (each report is one short write).
run_slot() {
  s=$1 script=$2
  # The previous command's stdin reader must have let go of the port first: a
  # virtio port has one opener at a time.
  while [ -e "/run/slot$s.reader" ]; do usleep 2000; done
  stdin_mode=none workdir=""
  set --
  eval "$script"
  input=/dev/null
  if [ "$stdin_mode" = port ]; then
    # stdin arrives framed ("LEN\n" + bytes, "0\n" at its end) on a port that stays
    # open across commands; the reader turns it into a FIFO's EOF. It reads until the
    # end frame even when the command has stopped reading, so the next command on
    # this slot starts at a frame boundary. SIGPIPE is ignored, so a command that
    # stopped reading fails only the copy to the FIFO, never the reader.
    rm -f "/run/slot$s.in"
    mkfifo "/run/slot$s.in"
    : > "/run/slot$s.reader"
    ( trap '' PIPE
      while read -r n && [ "$n" -gt 0 ] 2>/dev/null; do
        take "$n" > "/run/slot$s.chunk"
        cat "/run/slot$s.chunk" 2>/dev/null
      done
      rm -f "/run/slot$s.reader"
    ) < "$P/launch.$s.in" > "/run/slot$s.in" 5>&- &
    input="/run/slot$s.in"
  fi
  if [ -n "$workdir" ] && ! cd -- "$workdir" 2>/dev/null; then
    # The stdin reader waits for the FIFO's reader: be it, so it reaches the end frame.
    [ "$stdin_mode" = port ] && cat "$input" > /dev/null &
    echo "error $s cannot change to the working directory $workdir" >&5
    return
  fi
  { { run_command "slot$s" TERM "$@" < "$input" 5>&-; echo $? > "/run/slot$s.rc"; } 2>&1 1>&3 3>&- | tee "$P/launch.$s.err" | wc -c > "/run/slot$s.errn"; } 3>&1 | tee "$P/launch.$s.out" | wc -c > "/run/slot$s.outn"
  rm -f "/run/cmd/slot$s"
  # Pressed while the command ran: its exit code is the signal's doing, not its own.
  if [ -e /run/power-button ]; then word=stopped; else word=exit; fi
  # Builtin reads, not $(cat ...): three fewer forks between the command's end and its report.
  rc="" outn="" errn=""
  read -r rc < "/run/slot$s.rc"
  read -r outn < "/run/slot$s.outn"
  read -r errn < "/run/slot$s.errn"
  echo "$word $s $rc $outn $errn" >&5
}

# The session's main loop: the host's requests on launch.ctl, one line each.
serve_session() {
  while read -r verb slot arg <&5; do
    case "$verb" in
      run)
        script="$(take "$arg" <&5)"
        run_slot "$slot" "$script" &
        ;;
      signal)
        pid=""
        [ -r "/run/cmd/slot$slot" ] && read -r pid _ < "/run/cmd/slot$slot"
        [ -n "$pid" ] && kill -"$arg" -"$pid" 2>/dev/null
        ;;
      poweroff)
        break
        ;;
    esac
  done
}

link_ports
if [ "$slots" -gt 0 ]; then
  # Each port's name arrives from QEMU separately, after the driver probes:
  # wait (up to 30 s) until all of the session's ports are there.
  ports_ready() {
    [ -e "$P/launch.ctl" ] || return 1
    s=0
    while [ $s -lt "$slots" ]; do
      for k in in out err; do [ -e "$P/launch.$s.$k" ] || return 1; done
      s=$((s+1))
    done
  }
  i=0
  while ! ports_ready && [ $i -lt 3000 ]; do usleep 10000; link_ports; i=$((i+1)); done
  ports_ready || die "the session ports (launch.*) did not appear: is virtio_console loaded and are the ports planned?"
  exec 5<>"$P/launch.ctl"
  read -r len <&5
  setup="$(take "$len" <&5)"
  eval "$setup"
  # Armed before any command starts, so stopping the VM any time after that ends at
  # the ACPI step (a press before the device is open is lost). The module loading
  # mostly overlaps the port setup; wait blocks without polling.
  wait "$button_watcher"
  if [ "$park" = 1 ]; then
    # Warm start: the host may save the guest here, before any share is mounted (QEMU
    # can't save a mounted 9p export). What is each run's own comes after: the wall
    # clock, a seed for the RNG, the identity, the mounts.
    echo parked >&5
    read -r len <&5
    go="$(take "$len" <&5)"
    eval "$go"
  fi
  echo ready >&5
  if [ "$console_shell" = 1 ]; then
    # A prompt for whoever attaches to the console, beside the session; an exit starts a
    # new one, until the power button (SIGHUP to it, as to the console shell below).
    ( while [ ! -d /run/power-button ]; do run_command console HUP cttyhack sh; done ) &
  fi
  serve_session
else
  wait "$button_watcher"
  say "no command: starting a shell on the console (exit it to power off)"
  # An interactive shell ignores SIGTERM; SIGHUP ends it.
  run_command console HUP cttyhack sh
fi
power_off_clean
"""#
}
