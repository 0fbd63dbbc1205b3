#!/usr/bin/env python3
"""End-to-end boot benchmark: `launch run Profiles/hello.json` against the raw
QEMU floor, against a hand-written minimal guest (with the share, and
without: against `launch run Profiles/boot.json`) and against virtme-ng, in one
interleaved run on this machine.

A benchmark, not a timed test: it prints a table and writes BENCHMARKS.md; it
never fails because a number is bad (it fails only when a run produces the
wrong output or the tools are missing).

    python3 Benchmarks/boot.py                 # 10 launch, 10 raw, 3 vng (+ warm-ups)
    python3 Benchmarks/boot.py --runs 5 --vng-runs 1
    python3 Benchmarks/boot.py --no-vng        # launch vs raw only
    python3 Benchmarks/boot.py --no-write      # print, don't touch BENCHMARKS.md

See Benchmarks/README.md for what each contender does and what is timed.
"""

import argparse
import datetime
import json
import os
import platform
import re
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench_host import build_with_retries, cpu_model
from minimal_guest import Minimal
from benchmarks_md import existing_section, write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRATCH = os.path.join(ROOT, ".build-bench")
LAUNCH = os.path.join(SCRATCH, "release", "launch")
VENV = os.path.join(SCRATCH, "venv")
PROFILE_REL = "Profiles/hello.json"
PROFILE = os.path.join(ROOT, PROFILE_REL)
# The run without shares, against the minimal floor without a share: one line of output
# (the guest's uptime when the command runs, for the breakdown).
BOOT_PROFILE_REL = "Profiles/boot.json"
BOOT_COMMAND = ["cat", "/proc/uptime"]
BUILD_CMD = ["swift", "build", "-c", "release", "--scratch-path", ".build-bench", "--product", "launch"]
VNG_PACKAGE = "virtme-ng"
# Its section of BENCHMARKS.md (between `<!-- boot.py: begin/end -->`).
SECTION = "boot.py"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(argv):
    return shlex.join(argv)


def shell_quote(word):
    """Same rule as QEMUSyntax.shellQuote (the launcher's quoting of the setup script)."""
    if word and all(c.isascii() and (c.isalnum() or c in "-_./=:,+@%") for c in word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------- preparation

def build_launch(skip):
    if skip and os.access(LAUNCH, os.X_OK):
        return
    log("building: " + sh(BUILD_CMD))
    build_with_retries(BUILD_CMD, ROOT, log)


def ensure_vng():
    vng = os.path.join(VENV, "bin", "vng")
    if not os.access(vng, os.X_OK):
        log(f"installing {VNG_PACKAGE} into {VENV}")
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", VNG_PACKAGE], check=True)
    version = subprocess.run([vng, "--version"], capture_output=True, text=True).stdout.strip()
    return vng, version


def vng_env():
    env = dict(os.environ)
    # vng runs `virtme-run` through the shell: the venv's bin must be on PATH.
    env["PATH"] = os.path.join(VENV, "bin") + os.pathsep + env.get("PATH", "")
    return env


def launch_env(cache_dir):
    env = dict(os.environ)
    env["LAUNCH_CACHE_DIR"] = cache_dir
    return env


def get_plan(cache_dir):
    r = subprocess.run([LAUNCH, "plan", PROFILE_REL, "--json"], cwd=ROOT, env=launch_env(cache_dir),
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def later_modules(launch_stderr, plan):
    """The modules the session's setup loads: those of launch's "initramfs: ... modules:
    A B C" line that the kernel command line's launch.modules= does not load at boot."""
    m = re.search(r"initramfs: .*?modules: ([^;)]*)", launch_stderr)
    if not m:
        sys.exit("no 'initramfs: ... modules: ...' line in launch's output: can't tell which modules the setup loads")
    boot = re.search(r"launch\.modules=(\S+)", plan["cmdline"])
    at_boot = set(boot.group(1).split(",")) if boot else set()
    return [name for name in m.group(1).split() if name not in at_boot]


def setup_script(profile, modules):
    """The session's setup snippet (the first message on `launch.ctl`), hand-written for
    the floor by the same rule as GuestKit.setupScript; the bench checks each run's output."""
    q = shell_quote
    lines = []
    for module in modules:
        lines.append(f"insmod /lib/modules/{q(module)}.ko || [ -d /sys/module/{q(module)} ] || say {q('insmod ' + module + ' failed')}")
    for share in profile.get("shares", []):
        tag, d = share["tag"], share["guestPath"]
        mount = "mount -t virtiofs" + (" -o ro" if share.get("readOnly") else "")
        failure = f"error - mounting share {tag} at {d} failed"
        lines.append(f"mkdir -p {q(d)} && {mount} {q(tag)} {q(d)} || {{ echo {q(failure)} >&5; poweroff -f; }}")
    return "\n".join(lines) + "\n"


def command_script(argv):
    """What `launch run` sends after `run 0 LEN` (SessionProtocol.commandScript): no
    working directory, no environment, and its stdin framed on `launch.0.in`
    (`launch run` forwards the host's stdin; the bench gives it /dev/null, so the
    launcher sends the end frame `0\\n` at once)."""
    return "stdin_mode=port\nset -- " + " ".join(shell_quote(w) for w in argv) + "\n"


def raw_commands(plan, workdir):
    """The floor: the plan's exact QEMU argv, minus what needs a client.

    -S goes (nothing has to connect before the guest runs); QMP goes; the console
    and the session's ports get chardevs that need no peer: the serial console and
    slot 0's stdout/stderr to files, slot 0's stdin to a FIFO pair (`pipe`)
    pre-filled with the end frame `0\\n` (what the launcher sends for an empty
    stdin), and `launch.ctl` to a FIFO pair the floor speaks the session protocol
    on. virtiofsd's socket moves into the floor's own directory."""
    rt = plan["runtimeDir"]
    socks = plan["sockets"]
    by_path = {path: name for name, path in socks["ports"].items()}
    if plan.get("prepare"):
        sys.exit(f"plan has prepare steps the floor doesn't replicate: {plan['prepare']}")
    qemu = []
    args = list(plan["qemu"])
    dropped_ids = set()
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-S":
            i += 1
            continue
        if a == "-chardev":
            spec = args[i + 1]
            fields = dict(f.split("=", 1) for f in spec.split(",")[1:] if "=" in f)
            cid, path = fields.get("id"), fields.get("path")
            if path == socks.get("qmp"):
                dropped_ids.add(cid)
                i += 2
                continue
            if path == socks.get("console"):
                spec = f"file,id={cid},path={workdir}/console.log"
            elif path in by_path:
                name = by_path[path]
                if name == "launch.ctl":
                    spec = f"pipe,id={cid},path={workdir}/ctl"
                elif name == "launch.0.in":
                    spec = f"pipe,id={cid},path={workdir}/stdin"
                elif name == "launch.0.out":
                    spec = f"file,id={cid},path={workdir}/stdout"
                elif name == "launch.0.err":
                    spec = f"file,id={cid},path={workdir}/stderr"
                else:
                    sys.exit(f"a port the floor doesn't know (launch run plans one slot): {name}")
            elif path in socks.get("virtiofs", []):
                spec = spec.replace(rt, workdir)
            else:
                sys.exit(f"chardev the floor doesn't know how to replace: {spec}")
            qemu += ["-chardev", spec]
            i += 2
            continue
        if a == "-mon" and any(f"chardev={d}" in args[i + 1].split(",") for d in dropped_ids):
            i += 2
            continue
        qemu.append(a)
        i += 1
    if any(rt in a for a in qemu):
        sys.exit("the floor's QEMU argv still names the launcher's runtime dir")
    virtiofsd = [[a.replace(rt, workdir) for a in argv] for argv in plan["virtiofsd"]]
    fs_sockets = [s.replace(rt, workdir) for s in socks.get("virtiofs", [])]
    return qemu, virtiofsd, fs_sockets


# ---------------------------------------------------------------- runs

def other_qemus(mine=()):
    """How many other qemu-system processes run on the machine (noise indicator)."""
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in mine:
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().startswith("qemu-system"):
                    n += 1
        except OSError:
            pass
    return n


def procs_running():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("procs_running"):
                return int(line.split()[1])
    return 0


def wait_for_idle(max_wait):
    """Wait (up to max_wait s) until nothing else is runnable: 3 samples 50 ms apart
    with only this process running. Returns the seconds waited and whether it got there."""
    t0 = time.monotonic()
    calm = 0
    while time.monotonic() - t0 < max_wait:
        calm = calm + 1 if procs_running() <= 1 else 0
        if calm >= 3:
            return time.monotonic() - t0, True
        time.sleep(0.05)
    return time.monotonic() - t0, False


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cpu_seconds(ru):
    return ru.ru_utime + ru.ru_stime


def timed_process(argv, env=None, cwd=ROOT, stdin=subprocess.DEVNULL, stamp_stderr=False):
    """Start argv, wait for it; returns wall seconds, CPU seconds (with reaped
    children), exit code, stdout, stderr and (optionally) when each stderr line came."""
    stamps = []
    out, err = [], []
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def pump(f, sink, stamp):
        for line in iter(f.readline, b""):
            if stamp:
                stamps.append((time.monotonic() - t0, line.decode(errors="replace")))
            sink.append(line)

    threads = [threading.Thread(target=pump, args=(p.stdout, out, False)),
               threading.Thread(target=pump, args=(p.stderr, err, stamp_stderr))]
    for t in threads:
        t.start()
    # Wait for the exit without reaping, so the zombie's /proc stat still tells the
    # process's own CPU apart from its reaped children's (QEMU, virtiofsd).
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
    wall = time.monotonic() - t0
    own_cpu = None
    try:
        with open(f"/proc/{p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        own_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join()
    return {
        "wall": wall, "cpu": cpu_seconds(ru), "own_cpu": own_cpu, "rc": p.returncode,
        "stdout": b"".join(out).decode(errors="replace"), "stderr": b"".join(err).decode(errors="replace"),
        "stamps": stamps,
    }


def run_launch_boot(cache_dir):
    r = timed_process([LAUNCH, "run", BOOT_PROFILE_REL, "--accel", "tcg", "--"] + BOOT_COMMAND, env=launch_env(cache_dir))
    r["phases"] = {}
    try:
        r["guest"] = {"output": float(r["stdout"].split()[0])}
    except (IndexError, ValueError):
        r["guest"] = {}
    return r


def run_launch(cache_dir):
    r = timed_process([LAUNCH, "run", PROFILE_REL], env=launch_env(cache_dir), stamp_stderr=True)
    phases = {}
    for t, line in r["stamps"]:
        for key, pat in (("qemu_started", "QEMU started"), ("qmp_ready", "QMP ready"), ("shutdown", "shutdown:")):
            if pat in line and key not in phases:
                phases[key] = t
    r["phases"] = phases
    return r


class CtlLines:
    """Lines QEMU writes to the ctl FIFO (ctl.out), read as they come; gives up when
    QEMU exits or the deadline passes (the FIFO is held open read-write, so it never
    reads EOF)."""

    def __init__(self, fd, qemu):
        self.fd, self.qemu, self.pending = fd, qemu, b""

    def next(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or self.qemu.poll() is not None:
                return None
            r, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if r:
                self.pending += os.read(self.fd, 4096)
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode(errors="replace")


def run_raw(qemu_t, virtiofsd_t, fs_sockets_t, setup, command):
    """The floor. Timed from before the first mkfifo to QEMU's exit; 'all' also
    waits for virtiofsd (it exits by itself when QEMU hangs up) and reads the output.

    It speaks the session protocol on launch.ctl by hand: the setup (written before
    QEMU starts: it waits in the FIFO until the init reads it), `ready`, one
    `run 0 LEN` with the command script, `exit 0 RC OUT ERR`, then `poweroff`."""
    workdir = tempfile.mkdtemp(prefix="bench-raw-", dir="/tmp")
    sub = lambda argv: [a.replace("@DIR@", workdir) for a in argv]
    qemu = sub(qemu_t)
    setup_b, command_b = setup.encode(), command.encode()
    cpu = 0.0
    t0 = time.monotonic()
    for name in ("ctl.in", "ctl.out", "stdin.in", "stdin.out"):
        os.mkfifo(f"{workdir}/{name}")
    # Hold the FIFOs open read-write (QEMU opens each end as it starts, and a FIFO
    # opened read-only or write-only alone blocks): requests wait in ctl.in until the
    # init reads them, the guest's reports arrive in ctl.out.
    fd_in = os.open(f"{workdir}/ctl.in", os.O_RDWR)
    fd_out = os.open(f"{workdir}/ctl.out", os.O_RDWR)
    fd_stdin = os.open(f"{workdir}/stdin.in", os.O_RDWR)
    fd_stdin_out = os.open(f"{workdir}/stdin.out", os.O_RDWR)
    os.write(fd_in, f"{len(setup_b)}\n".encode() + setup_b)
    # The command's stdin: empty, so only the end frame (the launcher sends it as soon
    # as its stdin, /dev/null here, reads EOF).
    os.write(fd_stdin, b"0\n")
    fsd = []
    for n, argv in enumerate(virtiofsd_t):
        with open(f"{workdir}/virtiofsd{n}.log", "wb") as errlog:
            fsd.append(subprocess.Popen(sub(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog))
    for s in fs_sockets_t:
        s = s.replace("@DIR@", workdir)
        deadline = time.monotonic() + 10
        while not os.path.exists(s):
            if time.monotonic() > deadline:
                sys.exit(f"raw: virtiofsd socket {s} never appeared")
            time.sleep(0.0005)
    t_spawn = time.monotonic() - t0
    with open(f"{workdir}/qemu.log", "wb") as errlog:
        q = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog)
    ctl = CtlLines(fd_out, q)
    report = ""
    said = []
    ready = ctl.next(120)
    said.append(ready)
    if ready == "ready":
        t_ready = time.monotonic() - t0
        os.write(fd_in, f"run 0 {len(command_b)}\n".encode() + command_b)
        while True:
            line = ctl.next(120)
            said.append(line)
            if line is None or line.startswith("exit 0 ") or line.startswith("error"):
                break
        if line and line.startswith("exit 0 "):
            report = line
            # Not before the exit line: the init powers off as soon as it reads this.
            os.write(fd_in, b"poweroff\n")
    else:
        t_ready = None
    if not report:
        q.kill()
    _, status, ru = os.wait4(q.pid, 0)
    t_qemu = time.monotonic() - t0
    q.returncode = os.waitstatus_to_exitcode(status)
    cpu += cpu_seconds(ru)
    for p in fsd:
        _, _, ru = os.wait4(p.pid, 0)
        cpu += cpu_seconds(ru)
    with open(f"{workdir}/stdout") as f:
        stdout = f.read()
    with open(f"{workdir}/stderr") as f:
        stderr = f.read()
    t_all = time.monotonic() - t0
    for fd in (fd_in, fd_out, fd_stdin, fd_stdin_out):
        os.close(fd)
    with open(f"{workdir}/qemu.log") as f:
        qemu_log = f.read()
    shutil.rmtree(workdir, ignore_errors=True)
    phases = {"qemu_started": t_spawn}
    if t_ready is not None:
        phases["ready"] = t_ready
    return {"wall": t_qemu, "wall_all": t_all, "cpu": cpu, "rc": q.returncode, "stdout": stdout,
            "stderr": stderr + qemu_log + f"\nctl said: {said!r}", "report": report, "phases": phases}


def run_vng(vng, kernel, command):
    return timed_process([vng, "--run", kernel, "--disable-kvm", "--exec", command], env=vng_env())


# ---------------------------------------------------------------- report

def stats(xs):
    if not xs:
        return None
    return {"n": len(xs), "median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def machine_facts():
    cpu = cpu_model()
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    os_name = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    return {"nproc": os.cpu_count(), "cpu": cpu, "qemu": qemu, "host_kernel": platform.release(),
            "os": os_name, "memory": mem, "python": platform.python_version()}


def fmt(x):
    return f"{x:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="measured runs of launch and of the raw floor (default 10)")
    ap.add_argument("--vng-runs", type=int, default=3, help="measured virtme-ng runs (default 3)")
    ap.add_argument("--no-vng", action="store_true", help="skip virtme-ng")
    ap.add_argument("--no-minimal", action="store_true",
                    help="skip the hand-written minimal floor (and launch's run without shares it is compared with)")
    ap.add_argument("--no-build", action="store_true", help="use the existing .build-bench/release/launch")
    ap.add_argument("--idle-wait", type=float, default=20.0,
                    help="before each measured run, wait up to this many seconds for no other runnable process "
                         "(a shared machine); 0 turns it off (default 20)")
    ap.add_argument("--keep-cache", action="store_true",
                    help="don't empty the bench's launch cache first (the warm-up is then not a cold run)")
    ap.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    ap.add_argument("--json", help="also write every run's figures to this JSON file")
    opts = ap.parse_args()

    build_launch(opts.no_build)
    cache_dir = os.path.join(SCRATCH, "launch-cache")
    if not opts.keep_cache:
        shutil.rmtree(cache_dir, ignore_errors=True)

    with open(PROFILE) as f:
        profile = json.load(f)
    want_lines = []
    for share in profile.get("shares", []):
        host_dir = os.path.join(os.path.dirname(PROFILE), share["path"])
        with open(os.path.join(host_dir, "greeting.txt")) as f:
            want_lines.append(f.read().strip())

    # Warm-up: the first launch run extracts the PVH vmlinux and builds the initramfs.
    log("warm-up: launch run (cold cache: extracts the vmlinux, builds the initramfs)")
    warm = run_launch(cache_dir)
    if warm["rc"] != 0:
        sys.exit("launch warm-up failed:\n" + warm["stderr"])
    release = re.search(r"kernel (\S+)", warm["stdout"]).group(1)
    kernel = f"/boot/vmlinuz-{release}"
    want_lines.insert(0, f"kernel {release}")

    plan = get_plan(cache_dir)
    qemu_t, virtiofsd_t, fs_sockets_t = raw_commands(plan, "@DIR@")
    script = setup_script(profile, later_modules(warm["stderr"], plan))
    command = command_script(profile["command"])

    minimal = {}
    if not opts.no_minimal:
        # The second floor: the same vmlinux, memory and TSC rate as launch's plan.
        vmlinux = plan["qemu"][plan["qemu"].index("-kernel") + 1]
        khz = re.search(r"tsc_early_khz=(\d+)", plan["cmdline"]).group(1)
        with open(os.path.join(ROOT, BOOT_PROFILE_REL)) as f:
            boot_profile = json.load(f)
        share = profile["shares"][0]
        minimal["minimal_boot"] = Minimal("boot", SCRATCH, vmlinux, release, boot_profile["memory"], khz,
                                          shlex.join(BOOT_COMMAND))
        minimal["minimal"] = Minimal("hello", SCRATCH, vmlinux, release, profile["memory"], khz, profile["command"][2],
                                     share=(share["tag"], share["guestPath"]),
                                     share_source=os.path.realpath(os.path.join(os.path.dirname(PROFILE), share["path"])))

    vng = vng_version = None
    vng_command = None
    if not opts.no_vng:
        vng, vng_version = ensure_vng()
        # vng boots the host's own root filesystem (read-only 9p): the share's file is at its host path.
        argv = profile["command"]
        assert argv[:2] == ["sh", "-c"], argv
        vng_command = argv[2]
        for share in profile["shares"]:
            vng_command = vng_command.replace(share["guestPath"], os.path.realpath(os.path.join(os.path.dirname(PROFILE), share["path"])))

    def check(name, r):
        ok = r["rc"] == 0 and all(line in r["stdout"] for line in want_lines)
        if name == "raw":
            ok = ok and r["report"].startswith("exit 0 ")
        if name in ("launch_boot", "minimal_boot"):
            ok = r["rc"] == 0 and "output" in r["guest"]
        if not ok:
            sys.exit(f"{name}: wrong result (rc {r['rc']}):\nstdout: {r['stdout']!r}\nstderr: {r['stderr'][-2000:]}\n"
                     + (f"report: {r['report']!r}" if name == "raw" else ""))

    log("warm-up: raw floor")
    check("raw", run_raw(qemu_t, virtiofsd_t, fs_sockets_t, script, command))
    if minimal:
        log("warm-up: launch without shares, the minimal floors")
        check("launch_boot", run_launch_boot(cache_dir))
        for name, m in minimal.items():
            check(name, m.run(cpu_seconds))
    vng_warm = None
    vng_dry = None
    vng_failure = None
    if vng:
        dry = subprocess.run([vng, "--run", kernel, "--disable-kvm", "--dry-run", "--exec", vng_command],
                             env=vng_env(), capture_output=True, text=True)
        vng_dry = (dry.stdout + dry.stderr).strip().splitlines()[-1] if (dry.stdout + dry.stderr).strip() else ""
        log("warm-up: vng")
        vng_warm = run_vng(vng, kernel, vng_command)
        if vng_warm["rc"] != 0 or not all(line in vng_warm["stdout"] for line in want_lines):
            # Record why and carry on: launch vs the floor is still worth measuring.
            vng_failure = (f"exit {vng_warm['rc']} after {vng_warm['wall']:.1f} s\n"
                           f"stdout:\n{vng_warm['stdout'][-2000:]}\nstderr:\n{vng_warm['stderr'][-4000:]}")
            log("vng failed; it is left out of the measured runs:\n" + vng_failure)
            vng = None

    rounds = max(opts.runs, opts.vng_runs if vng else 0)
    n_vng = opts.vng_runs if vng else 0
    vng_rounds = set(round(i * (rounds - 1) / max(n_vng - 1, 1)) for i in range(n_vng)) if n_vng else set()
    results = {"launch": [], "raw": [], "vng": [], "launch_boot": [], "minimal_boot": [], "minimal": []}
    order = ["launch", "raw", "vng"] + (["launch_boot", "minimal_boot", "minimal"] if minimal else [])
    seq = 0
    for k in range(rounds):
        todo = [c for c in order[k % len(order):] + order[:k % len(order)]
                if (c != "vng" or k in vng_rounds) and (c == "vng" or k < opts.runs)]
        for c in todo:
            waited, idle = wait_for_idle(opts.idle_wait) if opts.idle_wait > 0 else (0.0, False)
            noise = {"load": loadavg(), "other_qemus": other_qemus(), "waited": waited, "idle": idle}
            if c == "launch":
                r = run_launch(cache_dir)
            elif c == "raw":
                r = run_raw(qemu_t, virtiofsd_t, fs_sockets_t, script, command)
            elif c == "launch_boot":
                r = run_launch_boot(cache_dir)
            elif c in minimal:
                r = minimal[c].run(cpu_seconds)
            else:
                r = run_vng(vng, kernel, vng_command)
            check(c, r)
            r.update(noise)
            r["round"] = k
            r["seq"] = seq
            seq += 1
            results[c].append(r)
            log(f"round {k + 1}/{rounds} {c:6s} {r['wall']:6.2f} s  (cpu {r['cpu']:.2f} s, load {noise['load']:.2f}, "
                f"other qemu {noise['other_qemus']}, idle {'yes' if idle else 'no'} after {waited:.1f} s)")

    # ------------------------------------------------------------ summary
    s = {c: stats([r["wall"] for r in rs]) for c, rs in results.items()}
    cpu = {c: stats([r["cpu"] for r in rs]) for c, rs in results.items()}
    raw_all = stats([r["wall_all"] for r in results["raw"]])
    ratio_lr = s["launch"]["median"] / s["raw"]["median"]
    ratio_vl = s["vng"]["median"] / s["launch"]["median"] if s["vng"] else None
    # Phase medians for launch (from its timestamped log lines) and the floor.
    def phase(c, key):
        xs = [r["phases"][key] for r in results[c] if key in r["phases"]]
        return statistics.median(xs) if xs else None
    launch_tail = [r["wall"] - r["phases"]["shutdown"] for r in results["launch"] if "shutdown" in r["phases"]]

    rows = [("launch run", "launch", s["launch"], cpu["launch"]), ("raw QEMU floor", "raw", s["raw"], cpu["raw"])]
    if s["vng"]:
        rows.append(("virtme-ng (vng)", "vng", s["vng"], cpu["vng"]))
    if minimal:
        rows.append(("minimal floor (hand-written, same share)", "minimal", s["minimal"], cpu["minimal"]))
        rows.append((f"launch run {BOOT_PROFILE_REL} -- {' '.join(BOOT_COMMAND)}", "launch_boot", s["launch_boot"],
                     cpu["launch_boot"]))
        rows.append(("minimal floor (hand-written, no share)", "minimal_boot", s["minimal_boot"], cpu["minimal_boot"]))
    table = ["| contender | runs | median (s) | min (s) | max (s) | CPU median (s) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, _, st, cp in rows:
        table.append(f"| {label} | {st['n']} | {fmt(st['median'])} | {fmt(st['min'])} | {fmt(st['max'])} | {fmt(cp['median'])} |")
    # Same-round pairs (launch and the floor ran back to back) cancel slow load swings.
    raw_by_round = {r["round"]: r for r in results["raw"]}
    paired = [r["wall"] / raw_by_round[r["round"]]["wall"] for r in results["launch"] if r["round"] in raw_by_round]
    ratio_paired = statistics.median(paired)
    ratio_min = s["launch"]["min"] / s["raw"]["min"]
    ratio_cpu = cpu["launch"]["median"] / cpu["raw"]["median"]
    idle_runs = [r for rs in results.values() for r in rs if r.get("idle")]
    lines_ratio = [f"- launch / raw floor (medians): **{ratio_lr:.3f}x**",
                   f"- launch / raw floor, other estimators: median of same-round pairs {ratio_paired:.3f}x "
                   f"(range {min(paired):.3f} to {max(paired):.3f}); best runs (min / min) {ratio_min:.3f}x; "
                   f"CPU seconds (medians) {ratio_cpu:.3f}x"]
    if ratio_vl is not None:
        lines_ratio.append(f"- virtme-ng / launch (medians): **{ratio_vl:.1f}x**")
    elif vng_failure:
        lines_ratio.append("- virtme-ng / launch: not measured, vng failed (see below)")
    else:
        lines_ratio.append("- virtme-ng / launch: not measured (--no-vng)")
    minimal_md = []
    if minimal:
        def paired_ratio(a, b):
            by_round = {r["round"]: r for r in results[b]}
            xs = [r["wall"] / by_round[r["round"]]["wall"] for r in results[a] if r["round"] in by_round]
            return statistics.median(xs), min(xs), max(xs)

        def guest(c, key):
            xs = [r["guest"][key] for r in results[c] if key in r.get("guest", {})]
            return statistics.median(xs) if xs else None
        for label, a, b in (("launch run Profiles/hello.json / minimal floor with the share", "launch", "minimal"),
                            (f"launch run {BOOT_PROFILE_REL} -- {' '.join(BOOT_COMMAND)} / minimal floor without a share",
                             "launch_boot", "minimal_boot")):
            pm, plo, phi = paired_ratio(a, b)
            lines_ratio.append(f"- {label} (medians): **{s[a]['median'] / s[b]['median']:.3f}x**; same-round pairs "
                               f"{pm:.3f}x (range {plo:.3f} to {phi:.3f}); CPU {cpu[a]['median'] / cpu[b]['median']:.3f}x")
        minimal_md.append("| guest uptime (s, medians) | launch, no share | minimal, no share | minimal, share |")
        minimal_md.append("| --- | ---: | ---: | ---: |")
        g = lambda c, k: f"{guest(c, k):.2f}" if guest(c, k) is not None else "-"
        minimal_md.append(f"| the init starts | - | {g('minimal_boot', 'init')} | {g('minimal', 'init')} |")
        minimal_md.append(f"| modules loaded (and the share mounted) | - | {g('minimal_boot', 'modules')} | {g('minimal', 'modules')} |")
        minimal_md.append(f"| the output is written (launch: the command runs) | {g('launch_boot', 'output')} | "
                          f"{g('minimal_boot', 'output')} | {g('minimal', 'output')} |")
        minimal_md.append(f"| wall time (process start to exit) | {fmt(s['launch_boot']['median'])} | "
                          f"{fmt(s['minimal_boot']['median'])} | {fmt(s['minimal']['median'])} |")
    print()
    print("\n".join(table))
    print()
    print("\n".join(lines_ratio))

    facts = machine_facts()
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"facts": facts, "results": {c: [{k: v for k, v in r.items() if k not in ("stamps",)} for r in rs]
                                                   for c, rs in results.items()}}, f, indent=1)
    if opts.no_write:
        return

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    per_run = ["| round | contender | wall (s) | CPU (s) | before QEMU's spawn (s) | launcher's own CPU (s) "
               "| load avg (1 min) | other QEMUs running | idle at start (waited s) |",
               "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in sorted((r | {"c": c} for c, rs in results.items() for r in rs), key=lambda r: r["seq"]):
        pre = r.get("phases", {}).get("qemu_started")
        own = r.get("own_cpu") if r["c"] == "launch" else None
        per_run.append(f"| {r['round'] + 1} | {r['c']} | {fmt(r['wall'])} | {fmt(r['cpu'])} | "
                       f"{f'{pre:.3f}' if pre is not None else '-'} | {f'{own:.2f}' if own is not None else '-'} | "
                       f"{r['load']:.2f} | {r['other_qemus']} | {'yes' if r['idle'] else 'no'} ({r['waited']:.1f}) |")

    raw_shell = [
        "D=$(mktemp -d /tmp/bench-raw-XXXXXX)",
        "mkfifo $D/ctl.in $D/ctl.out $D/stdin.in $D/stdin.out",
        "exec 3<>$D/ctl.in 4<>$D/ctl.out 6<>$D/stdin.in 7<>$D/stdin.out   # hold the FIFOs open",
        "printf '%s\\n' \"$(wc -c < setup.sh)\" >&3; cat setup.sh >&3   # the length-prefixed setup, read by the init at boot",
        "printf '0\\n' >&6   # the command's stdin: only the end frame (an empty stdin)",
    ]
    for argv in virtiofsd_t:
        raw_shell.append(sh(argv).replace("@DIR@", "$D") + " &")
    for sock in fs_sockets_t:
        raw_shell.append(f"while [ ! -S {sock.replace('@DIR@', '$D')} ]; do sleep 0.001; done")
    raw_shell.append(sh(qemu_t).replace("@DIR@", "$D") + " &")
    raw_shell.append("read -r line <&4   # ready")
    raw_shell.append("printf 'run 0 %s\\n' \"$(wc -c < command.sh)\" >&3; cat command.sh >&3")
    raw_shell.append("read -r line <&4; echo \"$line\"   # exit 0 RC OUT_BYTES ERR_BYTES")
    raw_shell.append("echo poweroff >&3   # only now: the init powers off as soon as it reads it")
    raw_shell.append("wait; cat $D/stdout; rm -rf $D")

    md = []
    md.append(f"## Boot and run `{PROFILE_REL}` ({plan['accelerator'].upper()}, {plan['machine']}): {now}")
    md.append("")
    md.append("End-to-end wall time from process start to exit: boot the Debian kernel under TCG, load the "
              "modules, mount the virtiofs share, run `" + " ".join(profile["command"][:2]) + " '" + profile["command"][2] +
              "'`, power off. Every run's output is checked (both lines, exit code 0).")
    md.append("")
    md.append("\n".join(table))
    md.append("")
    md.append("\n".join(lines_ratio))
    md.append(f"- raw floor until virtiofsd has exited too and the output is read: median {fmt(raw_all['median'])} s "
              f"(launch / that: {s['launch']['median'] / raw_all['median']:.3f}x)")
    md.append((f"- warm-up (not counted): launch's first run with the cache kept (--keep-cache) took {fmt(warm['wall'])} s"
               if opts.keep_cache else
               f"- warm-up (not counted): launch's first run with an empty cache took {fmt(warm['wall'])} s "
               f"(it extracts the PVH vmlinux from the bzImage and builds the initramfs into the cache)")
              + (f"; vng's first run took {fmt(vng_warm['wall'])} s" if vng_warm else "") + ".")
    md.append(f"- {len(idle_runs)} of {sum(len(rs) for rs in results.values())} measured runs started on an idle machine "
              f"(no other runnable process, waited up to {opts.idle_wait:g} s); the others started while other "
              "work (concurrent builds and tests on this shared machine) was running. "
              "Under TCG the guest is one busy host thread, so any contention goes straight into wall time.")
    md.append("- CPU = user + system seconds of the process and every child it reaped (QEMU, virtiofsd; "
              "for the floor, QEMU + virtiofsd).")
    md.append("")
    md.append("### Where launch's time goes (medians, from its own log lines as they reached the pipe)")
    md.append("")
    ph = [("process start to \"QEMU started\"", phase("launch", "qemu_started")),
          ("process start to \"QMP ready\"", phase("launch", "qmp_ready")),
          ("process start to \"shutdown: guest-poweroff\"", phase("launch", "shutdown"))]
    md.append("| launch phase | median (s) |")
    md.append("| --- | ---: |")
    for label, v in ph:
        md.append(f"| {label} | {fmt(v) if v is not None else '-'} |")
    if launch_tail:
        md.append(f"| \"shutdown\" log line to process exit | {statistics.median(launch_tail):.3f} |")
    md.append(f"| floor: start to QEMU spawn (FIFOs, virtiofsd, its socket) | {phase('raw', 'qemu_started'):.3f} |")
    if phase("raw", "ready") is not None:
        md.append(f"| floor: start to the init's `ready` | {fmt(phase('raw', 'ready'))} |")
    md.append("")
    own = [r["own_cpu"] for r in results["launch"] if r.get("own_cpu") is not None]
    if own:
        md.append(f"launch's own CPU time (the launcher process alone, without QEMU and virtiofsd; read from its "
                  f"zombie's `/proc` stat before reaping): median {statistics.median(own):.3f} s, "
                  f"max {max(own):.3f} s per run.")
        md.append("")
    if phase("launch", "qemu_started") is not None:
        pre = phase("launch", "qemu_started") - phase("raw", "qemu_started")
        md.append(f"Everything after QEMU's spawn is the same guest work for both, so launch's structural cost is mostly "
                  f"what it does before spawning QEMU: {pre:.3f} s more than the floor here (median), "
                  f"{100 * pre / s['raw']['median']:.1f}% of the floor's median wall time. "
                  "(\"QEMU started\" to \"QMP ready\" is QEMU's own start-up, loading the 65 MB vmlinux, "
                  "which the floor pays too.)")
    else:
        # Since guest sessions the libraries log their phases at debug level, and only
        # `-v` shows them; `-v` also puts the kernel's console on stderr and drops
        # `quiet`, which changes the guest's work, so the bench doesn't use it.
        md.append("launch's phases (`-` above): since guest sessions, `launch run` logs \"QEMU started\", \"QMP ready\" "
                  "and the shutdown step at debug level only, shown by `-v`, which also puts the kernel's console on "
                  "stderr and boots without `quiet` (more guest work), so the bench can't time them without changing "
                  "what it measures. What the launcher adds is in its own CPU time above and in the "
                  "wall and CPU ratios.")
    md.append("")
    if minimal:
        md.append("### Against a hand-written minimal equivalent (the second floor)")
        md.append("")
        md.append("The raw floor above is launch's own argv and init run without the launcher, so it can't see what "
                  "the guest kit costs inside the guest. The minimal floor is what someone would write by hand: the "
                  "same PVH vmlinux, microvm, TCG and memory, an initramfs of static busybox, the virtio modules and "
                  "a few-line `/init` that loads them (and fuse + virtiofs and mounts the same share for hello), "
                  "writes the output on a virtio-serial port (`/dev/vport0p1`, once its name is in sysfs) and runs `poweroff -f`. "
                  "No session protocol, no power-button watcher, no QMP, no extra devices (virtio-rng, pvpanic). "
                  "Launch's run without shares is `launch run " + BOOT_PROFILE_REL + " --accel tcg -- "
                  + " ".join(BOOT_COMMAND) + "`; both it and the minimal init print the guest's uptime at the point "
                  "the output is written, and the minimal init also when it starts and when its modules are in:")
        md.append("")
        md.append("\n".join(minimal_md))
        md.append("")
        for name, title in (("minimal_boot", "without a share"), ("minimal", "with the share")):
            md.append(f"Minimal floor {title}: its `/init` and the run, as a shell script (the bench drives it from "
                      "Python the same way and stops the clock when QEMU exits):")
            md.append("")
            md.append("```sh")
            md.append(minimal[name].script.rstrip("\n"))
            md.append("```")
            md.append("")
            md.append("```sh")
            md.append(minimal[name].shell().replace(ROOT + "/", ""))
            md.append("```")
            md.append("")
    md.append("### Machine")
    md.append("")
    md.append(f"- `nproc`: {facts['nproc']}; CPU: {facts['cpu']}; memory: {facts['memory']}")
    md.append(f"- OS: {facts['os']}; host kernel: {facts['host_kernel']}")
    md.append(f"- QEMU: {facts['qemu']}")
    md.append(f"- guest kernel: `{kernel}` (launch boots the PVH vmlinux it extracts from it; vng boots the bzImage)")
    if vng_version:
        md.append(f"- virtme-ng: {vng_version} (PyPI, in `.build-bench/venv`)")
    md.append(f"- a shared machine: load average and other QEMU processes at the start of each run are in the "
              "per-run table below.")
    md.append("")
    md.append("### Exact commands")
    md.append("")
    md.append("launch (release build, invoked directly; `LAUNCH_CACHE_DIR` points at the bench's own cache"
              + ("; this run kept it, `--keep-cache`, so its warm-up was not a cold run):" if opts.keep_cache
                 else " so the warm-up is a real cold run):"))
    md.append("")
    md.append("```sh")
    md.append(sh(BUILD_CMD))
    md.append(f"LAUNCH_CACHE_DIR=.build-bench/launch-cache .build-bench/release/launch run {PROFILE_REL}")
    md.append("```")
    md.append("")
    md.append("raw QEMU floor: the argv of `launch plan Profiles/hello.json --json`, with `-S` and QMP removed and "
              "the socket chardevs (which wait for the launcher) replaced by chardevs that need no peer: console, "
              "`launch.0.out` and `launch.0.err` to files, `launch.0.in` to a FIFO pair (`pipe`) pre-filled with "
              "the end frame `0\\n` (what the launcher sends for its empty stdin), and `launch.ctl` to a FIFO pair "
              "on which the floor speaks the session protocol by hand: the length-prefixed setup (written before "
              "QEMU starts; it waits in the FIFO until the init reads it), then, once the init says `ready`, one "
              "`run 0 LEN` with the same command script the launcher sends, and `poweroff` once the `exit 0 ...` "
              "line is in. The bench drives it from Python (`os.mkfifo`, `Popen`, a 0.5 ms poll for the virtiofsd "
              "socket, `select` on the ctl FIFO) and stops the clock when QEMU exits; as a shell script it is:")
    md.append("")
    md.append("```sh")
    md.append("\n".join(raw_shell))
    md.append("```")
    md.append("")
    md.append("`setup.sh` (the session's setup, the first message on `launch.ctl`; the modules are those of "
              "launch's `initramfs:` line that `launch.modules=` doesn't load at boot) and `command.sh` (what follows "
              "`run 0 LEN`, as `SessionProtocol.commandScript` writes it for `launch run`):")
    md.append("")
    md.append("```sh")
    md.append(script.rstrip("\n"))
    md.append("```")
    md.append("")
    md.append("```sh")
    md.append(command.rstrip("\n"))
    md.append("```")
    md.append("")
    if vng:
        md.append("virtme-ng (the share's file is read at its host path: vng boots the host's own root "
                  "filesystem, read-only, over 9p):")
        md.append("")
        md.append("```sh")
        md.append(f"python3 -m venv .build-bench/venv && .build-bench/venv/bin/pip install {VNG_PACKAGE}")
        md.append("PATH=$PWD/.build-bench/venv/bin:$PATH " + sh(["vng", "--run", kernel, "--disable-kvm", "--exec", vng_command]))
        md.append("```")
        md.append("")
        if vng_dry:
            md.append("which runs (from `vng --dry-run`; it picks q35 + virtio-9p-pci + `-cpu max -smp 2 -m 1G` "
                      "under TCG, and boots the compressed bzImage):")
            md.append("")
            md.append("```sh")
            md.append(vng_dry)
            md.append("```")
            md.append("")
    if vng_failure:
        md.append("virtme-ng could not run here:")
        md.append("")
        md.append("```")
        md.append(vng_failure.rstrip())
        md.append("```")
        md.append("")
    md.append("### Every run (interleaved; the order rotates each round)")
    md.append("")
    md.append("A run whose wall time is well above its CPU time waited for a CPU (the machine was busy); "
              "for launch, compare its time before QEMU's spawn and its own CPU with the wall time to see "
              "whether the launcher or the starved guest took it.")
    md.append("")
    md.append("\n".join(per_run))
    md.append("")
    # Only this run's figures (earlier runs are in git's history of BENCHMARKS.md), and only
    # this benchmark's section: the rest of BENCHMARKS.md belongs to the other benchmarks.
    write_section(opts.output, SECTION, "\n".join(md), legacy_heading="## Boot and run")
    log(f"wrote {opts.output}")


if __name__ == "__main__":
    main()
