#!/usr/bin/env python3
"""Benchmarks of the QMP client and the supervisor against their floors and
against QEMU's own Python `qemu.qmp`. Run through Benchmarks/run-supervision.sh, which
builds the binaries and the venv first.

    python3 Benchmarks/supervision.py                 # everything (about 10 to 15 min on 2 busy cores)
    python3 Benchmarks/supervision.py --quick         # fewer rounds, a look in about 3 min
    python3 Benchmarks/supervision.py --only rtt,spawn --no-write
    python3 Benchmarks/supervision.py --only hang --hang-runs 50   # count QEMU's QMP hangs
    python3 Benchmarks/supervision.py --report-only .build-bench-supervision/supervision-records.json  # re-render

Sections (each interleaves its contenders round by round, rotating the order, so
load swings on a shared machine hit every contender alike):

1. rtt:   query-status round trips on one -M none -S QEMU: launch-bench (QMP.Client),
          raw socket (floor), raw without ids, qemu.qmp; sequential and pipelined.
2. spawn: spawn -> QMP-ready and quit -> reaped, one QEMU at a time.
3. scale: 32 QEMUs to QMP-ready at once and all shut down; the supervisor's RSS and threads.
4. launch: 8 x `launch run Profiles/hello.json` against `launch batch` of 8 copies, --jobs 2.
5. qemu-reads: strace of QEMU while the raw client runs: QEMU's syscalls per command.

It writes Benchmarks/RESULTS-supervision.md (--out) and every raw record to --json. It
fails only when a tool is missing or a run gives a wrong answer, never because of a
figure.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from bench_host import cpu_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRATCH = os.path.join(ROOT, ".build-bench-supervision")
BENCH = os.path.join(SCRATCH, "release", "launch-bench")
LAUNCH = os.path.join(SCRATCH, "release", "launch")
VENV_PY = os.path.join(SCRATCH, "venv", "bin", "python")
PEER = os.path.join(ROOT, "Benchmarks", "qmp_peer.py")
PROFILE = "Profiles/hello.json"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def rel(path):
    return os.path.relpath(path, ROOT)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def cpu_stat():
    """(total jiffies, idle + iowait, steal) over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[:8]), fields[3] + fields[4], fields[7]


def run_json(argv, timeout):
    """Runs a contender; returns (records, returncode, stderr). Each record gets the
    host's busy and steal percentages over the run (all CPUs, everyone's work)."""
    before = cpu_stat()
    try:
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return [], -1, "timeout after %ss: %s" % (timeout, (e.stderr or b"")[-500:])
    after = cpu_stat()
    total = max(1, after[0] - before[0])
    host = dict(host_busy_pct=100.0 * (total - (after[1] - before[1])) / total,
                host_steal_pct=100.0 * (after[2] - before[2]) / total)
    records = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            rec = json.loads(line)
            rec.update(host)
            records.append(rec)
    return records, p.returncode, p.stderr


def rotate(items, k):
    k %= len(items)
    return items[k:] + items[:k]


class QEMU:
    """A -M none -S QEMU with a QMP socket, for the round-trip runs."""

    def __init__(self, qemu, path):
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.proc = subprocess.Popen(
            [qemu, "-M", "none", "-S", "-nodefaults", "-display", "none",
             "-qmp", "unix:%s,server=on,wait=off" % path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while not os.path.exists(path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("QEMU did not start: %s" % self.proc.stderr.read().decode(errors="replace"))
            time.sleep(0.005)
        # Let QEMU finish starting before anyone connects (its listener race, see notes).
        time.sleep(0.3)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- sections

def contender_argv(name, bench, args, **kw):
    """argv for a contender of `bench` (rtt, spawn, scale)."""
    opts = []
    for key, value in kw.items():
        opts += ["--" + key.replace("_", "-"), str(value)]
    if name.startswith("swift"):
        transport = ["--transport", "socketpair"] if name == "swift-socketpair" else []
        if bench == "rtt":
            transport = ["--executor", "io"] if name == "swift-io" else []
        return [BENCH, bench] + opts + transport
    client, _, variant = name.partition("-")
    if name == "raw-noid":
        client, variant = "raw-noid", ""
    transport = ["--transport", "socketpair"] if variant == "socketpair" else []
    return [VENV_PY, PEER, bench, "--client", client] + opts + transport


def section_rtt(args, tmp, records):
    contenders = ["swift", "swift-io", "raw", "raw-noid", "qemuqmp"]
    for r in range(args.rtt_rounds):
        qemu = QEMU(args.qemu, os.path.join(tmp, "rtt%d.sock" % r))
        try:
            for name in rotate(contenders, r):
                for attempt in range(3):
                    la = loadavg()
                    argv = contender_argv(name, "rtt", args, socket=qemu.path, n=args.n, window=args.window,
                                          reps=args.rtt_reps, warmup=200)
                    recs, rc, err = run_json(argv, timeout=600)
                    if rc == 0:
                        break
                    # Most likely QEMU's listener race (see the notes): a new QEMU, and again.
                    log("rtt round %d %s failed (%s): %s; new QEMU, again" % (r, name, rc, err.strip()[-300:]))
                    records.append(dict(section="rtt-failure", client=name, round=r, error=err.strip()[-300:]))
                    qemu.stop()
                    qemu = QEMU(args.qemu, os.path.join(tmp, "rtt%d-%d.sock" % (r, attempt)))
                else:
                    raise SystemExit("rtt %s failed three times" % name)
                for rec in recs:
                    rec.update(section="rtt", round=r, loadavg=la)
                records.extend(recs)
                log("rtt round %d %-9s %s" % (r, name, "  ".join(
                    "%s %.1f us (cpu %.1f)" % (x["mode"], x["us_per_cmd"], x["cpu_us_per_cmd"]) for x in recs)))
        finally:
            qemu.stop()


def section_spawn(args, tmp, records):
    contenders = ["swift", "raw", "qemuqmp", "swift-socketpair", "raw-socketpair"]
    for r in range(args.spawn_rounds):
        for name in rotate(contenders, r):
            la = loadavg()
            argv = contender_argv(name, "spawn", args, qemu=args.qemu, dir=tmp, runs=args.spawn_runs, warmup=1)
            recs, rc, err = run_json(argv, timeout=600)
            if rc != 0:
                raise SystemExit("spawn %s failed (%s): %s" % (name, rc, err.strip()[-800:]))
            for rec in recs:
                rec.update(section="spawn", round=r, loadavg=la, client=name)
            records.extend(recs)
            ok = [x for x in recs if not x["hung"]]
            log("spawn round %d %-17s ready %s ms, quit->reaped %s ms%s" % (
                r, name, "/".join("%.1f" % x["ready_ms"] for x in ok),
                "/".join("%.1f" % x["quit_reaped_ms"] for x in ok),
                "  HUNG x%d" % (len(recs) - len(ok)) if len(recs) != len(ok) else ""))


def section_hang(args, tmp, records):
    """How often QEMU hangs on a fresh QMP connection: the 32-QEMU start, many times."""
    contenders = ["swift", "raw", "qemuqmp", "swift-socketpair"]
    for r in range(args.hang_runs):
        for name in rotate(contenders, r):
            argv = contender_argv(name, "scale", args, qemu=args.qemu, dir=tmp, count=args.count)
            recs, rc, err = run_json(argv, timeout=300)
            if rc not in (0, 3):
                raise SystemExit("hang %s failed (%s): %s" % (name, rc, err.strip()[-800:]))
            hung = recs[-1]["hung"] if recs else 0
            records.append(dict(section="hang", client=name, run=r, count=args.count, hung_vms=hung,
                                error=recs[-1].get("error", "") if recs else ""))
        log("hang run %d: %s" % (r, ", ".join("%s %d" % (x["client"], x["hung_vms"])
                                              for x in records[-len(contenders):])))


SPINNER_CLIENTS = ["raw", "swift", "swift-io", "qemuqmp"]


def spinner_med(records, client, mode, on):
    return median([x["us_per_cmd"] for x in records if x.get("section") == "spinner"
                   and x.get("client", "raw") == client and x["mode"] == mode and x["spinner"] == on])


def spinner_effect(args, tmp, records):
    """Each client's round trip with the host's other CPU idle, then with a
    busy-looping process beside it: on a VM, waking an idle vCPU is slow, so a client
    that burns CPU while it waits speeds QEMU up. Beside the spinner every client
    gets the same busy host: that comparison measures the clients, not their CPU burn."""
    qemu = QEMU(args.qemu, os.path.join(tmp, "spin.sock"))
    try:
        for i in range(4):
            for name in rotate(SPINNER_CLIENTS, i):
                for spin in ([False, True] if i % 2 == 0 else [True, False]):
                    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if spin else None
                    try:
                        time.sleep(0.2)
                        argv = contender_argv(name, "rtt", args, socket=qemu.path, n=1000, window=args.window,
                                              reps=1, warmup=100)
                        recs, rc, err = run_json(argv, timeout=300)
                    finally:
                        if spinner:
                            spinner.kill()
                            spinner.wait()
                    if rc != 0:
                        raise SystemExit("spinner experiment failed (%s): %s" % (name, err))
                    for rec in recs:
                        rec.update(section="spinner", spinner=spin, client=name)
                    records.extend(recs)
        for name in SPINNER_CLIENTS:
            log("spinner: %-8s seq without %.0f us, with %.0f us" % (
                name, spinner_med(records, name, "seq", False), spinner_med(records, name, "seq", True)))
    finally:
        qemu.stop()


def section_profile(args, tmp, records):
    """Where our client's CPU goes: perf record of launch-bench rtt (all modes)."""
    if not shutil.which("perf"):
        log("profile: perf not installed, skipped")
        return
    qemu = QEMU(args.qemu, os.path.join(tmp, "perf.sock"))
    data = os.path.join(tmp, "perf.data")
    try:
        argv = ["perf", "record", "-q", "-F", "2999", "-g", "-o", data, "--",
                BENCH, "rtt", "--socket", qemu.path, "--n", str(args.n), "--reps", "1", "--warmup", "200"]
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        qemu.stop()
    if p.returncode != 0:
        log("profile: perf record failed, skipped: %s" % p.stderr[-300:])
        return
    def table(children):
        argv = ["perf", "report", "-i", data, "--sort", "dso,sym", "--stdio", "-g", "none", "--percent-limit", "1"]
        argv.insert(2, "--children" if children else "--no-children")
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        rows = []
        for line in out.splitlines():
            if children:
                m = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
                if not m or m.group(4) == "k":
                    continue
                pct, dso, sym = float(m.group(1)), m.group(3), m.group(5).strip()
            else:
                m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
                if not m:
                    continue
                pct, dso, sym = float(m.group(1)), m.group(2), m.group(4).strip()
            rows.append([pct, dso, sym])
        mangled = [r[2] for r in rows if r[2].startswith("$s")]
        if mangled and shutil.which("swift"):
            names = subprocess.run(["swift", "demangle", "--simplified", "--compact"] + mangled,
                                   capture_output=True, text=True).stdout.splitlines()
            lookup = dict(zip(mangled, names))
            for r in rows:
                r[2] = lookup.get(r[2], r[2])
        return [dict(percent=p, dso=d, symbol=sym[:120]) for p, d, sym in rows]

    records.append(dict(section="profile", self_rows=table(False)[:10], children_rows=table(True)[:30]))
    log("profile: done")


def section_spawn_call(args, records):
    """The spawn call alone, on /bin/true: ChildProcess.spawn against subprocess.Popen."""
    for r in range(args.spawn_rounds):
        for name in rotate(["swift", "raw"], r):
            la = loadavg()
            argv = ([BENCH, "spawn-call", "--runs", "40"] if name == "swift"
                    else [VENV_PY, PEER, "spawn-call", "--runs", "40"])
            recs, rc, err = run_json(argv, timeout=300)
            if rc != 0:
                raise SystemExit("spawn-call %s failed (%s): %s" % (name, rc, err.strip()[-800:]))
            for rec in recs:
                rec.update(section="spawn-call", round=r, loadavg=la, client=name)
            records.extend(recs)
            log("spawn-call round %d %-5s spawn %.2f ms, spawn+wait %.2f ms" % (
                r, name, median([x["spawn_ms"] for x in recs]), median([x["reaped_ms"] for x in recs])))


def section_scale(args, tmp, records):
    contenders = ["swift", "qemuqmp", "raw", "swift-socketpair"]
    for r in range(args.scale_rounds):
        for name in rotate(contenders, r):
            for attempt in range(4):
                la = loadavg()
                argv = contender_argv(name, "scale", args, qemu=args.qemu, dir=tmp, count=args.count)
                recs, rc, err = run_json(argv, timeout=300)
                for rec in recs:
                    rec.update(section="scale", round=r, loadavg=la, client=name, attempt=attempt)
                records.extend(recs)
                if rc == 0 and recs and not recs[-1]["hung"]:
                    x = recs[-1]
                    log("scale round %d %-17s ready %.3f s, down %.3f s, HWM +%d KiB, threads %d -> %d" % (
                        r, name, x["ready_s"], x["shutdown_s"], x["hwm_after_kib"] - x["hwm_before_kib"],
                        x["threads_before"], x["threads_at_ready"]))
                    break
                if rc == 3:  # a VM hung (QEMU's listener race): counted, and the round runs again
                    log("scale round %d %-17s HUNG (%s); again" % (r, name, recs[-1].get("error", "")[:160]))
                    continue
                raise SystemExit("scale %s failed (%s): %s" % (name, rc, err.strip()[-800:]))


def child_rusage():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(argv, env):
    cpu0, t0 = child_rusage(), time.perf_counter()
    p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return time.perf_counter() - t0, child_rusage() - cpu0, p


def section_launch(args, records):
    env = dict(os.environ)
    one = [LAUNCH, "run", PROFILE]
    batch = [LAUNCH, "batch"] + [PROFILE] * 8 + ["--jobs", "2"]
    log("launch: warm-up run (unmeasured): %s" % shlex.join([rel(LAUNCH)] + one[1:]))
    wall, cpu, p = timed(one, env)
    if p.returncode != 0 or "kernel " not in p.stdout:
        raise SystemExit("launch warm-up failed (%d):\n%s\n%s" % (p.returncode, p.stdout, p.stderr[-2000:]))
    records.append(dict(section="launch", client="warmup", wall_s=wall, cpu_s=cpu))
    for r in range(args.launch_reps):
        for name in rotate(["sequential", "batch"], r):
            for attempt in range(3):
                la = loadavg()
                failure = None
                if name == "sequential":
                    t0, cpu0 = time.perf_counter(), child_rusage()
                    walls = []
                    for i in range(8):
                        wall, _, p = timed(one, env)
                        if p.returncode != 0 or "kernel " not in p.stdout:
                            failure = (p.returncode, p.stdout + p.stderr)
                            break
                        walls.append(wall)
                    total, cpu = time.perf_counter() - t0, child_rusage() - cpu0
                    rec = dict(section="launch", client=name, round=r, loadavg=la, wall_s=total, cpu_s=cpu,
                               per_vm_s=walls)
                else:
                    total, cpu, p = timed(batch, env)
                    kernels = len(re.findall(r"^\[hello\.\d+\s*\] kernel ", p.stdout, re.M))
                    if p.returncode != 0 or kernels != 8:
                        failure = (p.returncode, p.stdout + p.stderr)
                    durations = [float(m) for m in re.findall(r"^hello\.\d+\s+0\s+([\d.]+)s", p.stderr, re.M)]
                    rec = dict(section="launch", client=name, round=r, loadavg=la, wall_s=total, cpu_s=cpu,
                               per_vm_s=durations)
                if failure is None:
                    records.append(rec)
                    break
                # Counted and shown in the report; the repetition runs again.
                records.append(dict(section="launch-failure", client=name, round=r, returncode=failure[0],
                                    output=failure[1][-3000:]))
                log("launch round %d %s FAILED (%s); again:\n%s" % (r, name, failure[0], failure[1][-1500:]))
            else:
                raise SystemExit("launch %s failed three times" % name)
            log("launch round %d %-10s %.2f s wall, %.2f s CPU (load %.2f)" % (
                r, name, records[-1]["wall_s"], records[-1]["cpu_s"], la))


def section_qemu_reads(args, tmp, records):
    """QEMU's own syscalls per query-status, counted by strace, while the raw
    client runs: shows where the floor's time goes."""
    if not shutil.which("strace"):
        log("qemu-reads: strace not installed, skipped")
        return
    for client in ["raw", "swift"]:
        qemu = QEMU(args.qemu, os.path.join(tmp, "strace-%s.sock" % client))
        out = os.path.join(tmp, "strace-%s.txt" % client)
        tracer = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(qemu.proc.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        n = 500
        argv = contender_argv(client, "rtt", args, socket=qemu.path, n=n, window=args.window, reps=1, warmup=0)
        recs, rc, err = run_json(argv, timeout=300)
        tracer.send_signal(signal.SIGINT)
        tracer.wait()
        qemu.stop()
        if rc != 0:
            raise SystemExit("qemu-reads %s failed: %s" % (client, err))
        commands = sum(x["n"] for x in recs) + 1  # + qmp_capabilities
        calls = {}
        with open(out) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 5 and parts[-1] in ("recvmsg", "sendmsg", "read", "write", "poll", "ppoll"):
                    calls[parts[-1]] = int(parts[3])
        records.append(dict(section="qemu-reads", client=client, commands=commands, calls=calls,
                            us_per_cmd_traced={x["mode"]: x["us_per_cmd"] for x in recs}))
        log("qemu-reads %s: %d commands, %s" % (client, commands, calls))


# ---------------------------------------------------------------- report

def machine_facts():
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip()
        except OSError:
            return "?"
    cpu = cpu_model()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "qemu": sh("qemu-system-x86_64 --version | head -1"),
        "swift": sh("swift --version 2>&1 | head -1"),
        "python": platform.python_version(),
        "qemu.qmp": sh("%s -m pip show qemu.qmp 2>/dev/null | sed -n 's/^Version: //p'" % shlex.quote(VENV_PY)),
        "git": sh("cd %s && git rev-parse --short HEAD && git status --porcelain | wc -l" % shlex.quote(ROOT)).replace("\n", ", dirty files: "),
    }


def fmt(x, digits=1):
    return "—" if x is None or x != x else ("%.*f" % (digits, x))


def ratio(a, b):
    return a / b if a and b and a == a and b == b else float("nan")


def report(args, facts, records, wall):
    records_spin_helps = [None]
    L = []
    A = L.append
    A("# QMP client, spawn, scale and batch: measured")
    A("")
    A("Written by `Benchmarks/run-supervision.sh` (driver `Benchmarks/supervision.py`); every figure below")
    A("comes from the run recorded here, nothing is typed in by hand. Medians unless said otherwise.")
    A("")
    A("| machine | |")
    A("| --- | --- |")
    for key in ["date", "nproc", "cpu", "os", "kernel", "qemu", "swift", "python", "qemu.qmp", "git"]:
        A("| %s | %s |" % (key, facts[key]))
    loads = [x["loadavg"] for x in records if "loadavg" in x]
    if loads:
        A("| load average (1 min) during the runs | median %.2f, min %.2f, max %.2f (2 cores: above 2 means queued work) |"
          % (median(loads), min(loads), max(loads)))
    busy = [x["host_busy_pct"] for x in records if "host_busy_pct" in x]
    steal = [x["host_steal_pct"] for x in records if "host_steal_pct" in x]
    if busy:
        A("| host CPU busy / steal during the contenders' runs (all CPUs, everyone's work, /proc/stat) | busy median %.0f%% [%.0f–%.0f], steal median %.1f%% [%.1f–%.1f] |"
          % (median(busy), min(busy), max(busy), median(steal), min(steal), max(steal)))
    A("| whole run | %s s |" % fmt(wall, 0))
    A("")
    if busy and median(busy) >= 90:
        A("**This run's host was saturated** (all CPUs busy most of the time, this benchmark's own work included):")
        A("wall times include waiting for a CPU, and ratios between contenders are less reliable than usual.")
        A("Earlier runs are in git's history of this file.")
        A("")
    A("Commands:")
    A("")
    A("```sh")
    A("bash Benchmarks/run-supervision.sh %s" % " ".join(shlex.quote(a) for a in sys.argv[1:]))
    A("# which runs:")
    A("swift build -c release --scratch-path .build-bench-supervision --product launch-bench")
    A("swift build -c release --scratch-path .build-bench-supervision --product launch")
    A("python3 -m venv .build-bench-supervision/venv && .build-bench-supervision/venv/bin/pip install qemu.qmp")
    A(".build-bench-supervision/venv/bin/python Benchmarks/supervision.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    A("# and supervision.py runs, per round, contenders like:")
    A("qemu-system-x86_64 -M none -S -nodefaults -display none -qmp unix:$TMP/rtt0.sock,server=on,wait=off")
    A(".build-bench-supervision/release/launch-bench rtt --socket $TMP/rtt0.sock --n %d --window %d --reps %d --warmup 200"
      % (args.n, args.window, args.rtt_reps))
    A(".build-bench-supervision/venv/bin/python Benchmarks/qmp_peer.py rtt --client raw|raw-noid|qemuqmp --socket $TMP/rtt0.sock --n %d --window %d --reps %d --warmup 200"
      % (args.n, args.window, args.rtt_reps))
    A(".build-bench-supervision/release/launch-bench spawn --qemu %s --dir $TMP --runs %d --warmup 1 [--transport socketpair]"
      % (args.qemu, args.spawn_runs))
    A(".build-bench-supervision/venv/bin/python Benchmarks/qmp_peer.py spawn --client raw|qemuqmp --qemu %s --dir $TMP --runs %d --warmup 1 [--transport socketpair]"
      % (args.qemu, args.spawn_runs))
    A(".build-bench-supervision/release/launch-bench scale --qemu %s --dir $TMP --count %d [--transport socketpair]" % (args.qemu, args.count))
    A(".build-bench-supervision/venv/bin/python Benchmarks/qmp_peer.py scale --client qemuqmp|raw --qemu %s --dir $TMP --count %d" % (args.qemu, args.count))
    A(".build-bench-supervision/release/launch run Profiles/hello.json            # 8 times in a row")
    A(".build-bench-supervision/release/launch batch Profiles/hello.json ... (8 copies) --jobs 2")
    A("```")
    A("")

    # ---- rtt
    rtt = [x for x in records if x.get("section") == "rtt"]
    if rtt:
        A("## 1. QMP `query-status` round trip")
        A("")
        A("One `qemu-system-x86_64 -M none -S` per round; %d rounds, the contenders' order rotating; each contender"
          % args.rtt_rounds)
        A("connects, does 200 unmeasured commands, then %d repetitions of %d commands in each mode. Microseconds per"
          % (args.rtt_reps, args.n))
        A("command (wall time / %d); median over rounds x repetitions, [min–max]." % args.n)
        A("")
        A("- **ours**: `QMP.Client.queryStatus()` (release build). *seq*: one task, one after another. *pipelined*:")
        A("  *window*: a task group keeping up to %d `queryStatus()` calls in flight; *batch*: %d at once, all" % (args.window, args.window))
        A("  answered, then the next %d." % args.window)
        A("- **ours, on the I/O thread**: the same code inside `withTaskExecutorPreference(qmp.taskExecutor)`: the")
        A("  connection's I/O thread resumes the waiting tasks itself (no wake-up of a pool thread) and sends the")
        A("  commands they issue in one round together.")
        A("- **raw** (floor): Python, blocking `socket`, greeting + `qmp_capabilities`, then `sendall` / `recv` lines;")
        A("  the same bytes QMP.Client sends (`{\"execute\":\"query-status\",\"id\":N}` + LF). *batch*: one `sendall` of")
        A("  %d lines, then read %d replies." % (args.window, args.window))
        A("- **raw-noid**: the same without `\"id\"` (10 bytes shorter), to show what the line length costs.")
        A("- **qemu.qmp**: `QMPClient.execute('query-status')`; *window*: `asyncio.gather` of all %d behind a" % args.n)
        A("  semaphore of %d; *batch*: `gather` of %d at a time." % (args.window, args.window))
        A("")
        modes = [("seq", "sequential"), ("pipe-window", "pipelined, window"), ("pipe-batch", "pipelined, batch")]
        clients = [("swift", "ours (QMP.Client)"), ("swift-io", "ours, on the I/O thread (`taskExecutor`)"),
                   ("raw", "raw socket (floor)"), ("raw-noid", "raw, no id"), ("qemuqmp", "qemu.qmp")]
        A("| client | " + " | ".join(m[1] for m in modes) + " |")
        A("| --- | " + " | ".join("---:" for _ in modes) + " |")
        med = {}
        for c, cname in clients:
            cells = []
            for m, _ in modes:
                xs = [x["us_per_cmd"] for x in rtt if x["client"] == c and x["mode"] == m]
                med[(c, m)] = median(xs) if xs else None
                cells.append("%s [%s–%s]" % (fmt(median(xs)), fmt(min(xs)), fmt(max(xs))) if xs else "—")
            A("| %s | %s |" % (cname, " | ".join(cells)))
        A("")
        # per-round paired ratios (same QEMU, adjacent in time)
        def paired(c1, m1, c2, m2):
            out = []
            for r in range(args.rtt_rounds):
                a = [x["us_per_cmd"] for x in rtt if x["round"] == r and x["client"] == c1 and x["mode"] == m1]
                b = [x["us_per_cmd"] for x in rtt if x["round"] == r and x["client"] == c2 and x["mode"] == m2]
                if a and b:
                    out.append(median(a) / median(b))
            return out
        A("Ratios (ours / other): of the medians above, and the median of per-round ratios (same QEMU, adjacent")
        A("in time; less sensitive to load drifting between rounds).")
        A("")
        A("| comparison | of medians | per-round median [min–max] |")
        A("| --- | ---: | ---: |")
        verdicts = []
        for label, c1, m1, c2, m2 in [
            ("seq: ours / raw", "swift", "seq", "raw", "seq"),
            ("pipelined: ours window / raw batch", "swift", "pipe-window", "raw", "pipe-batch"),
            ("pipelined: ours batch / raw batch", "swift", "pipe-batch", "raw", "pipe-batch"),
            ("seq: ours / qemu.qmp", "swift", "seq", "qemuqmp", "seq"),
            ("pipelined window: ours / qemu.qmp", "swift", "pipe-window", "qemuqmp", "pipe-window"),
            ("pipelined batch: ours / qemu.qmp", "swift", "pipe-batch", "qemuqmp", "pipe-batch"),
            ("seq: ours on the I/O thread / raw", "swift-io", "seq", "raw", "seq"),
            ("pipelined: ours on the I/O thread, window / raw batch", "swift-io", "pipe-window", "raw", "pipe-batch"),
            ("pipelined: ours on the I/O thread, batch / raw batch", "swift-io", "pipe-batch", "raw", "pipe-batch"),
            ("seq: ours on the I/O thread / qemu.qmp", "swift-io", "seq", "qemuqmp", "seq"),
            ("pipelined window: ours on the I/O thread / qemu.qmp", "swift-io", "pipe-window", "qemuqmp", "pipe-window"),
        ]:
            of_medians = ratio(med.get((c1, m1)), med.get((c2, m2)))
            per_round = paired(c1, m1, c2, m2)
            verdicts.append((label, of_medians))
            A("| %s | %s | %s [%s–%s] |" % (
                label, fmt(of_medians, 2), fmt(median(per_round), 2), fmt(min(per_round, default=float("nan")), 2),
                fmt(max(per_round, default=float("nan")), 2)))
        A("")
        A("The client's own CPU time per command (user + system, all threads, from `getrusage`; independent of")
        A("how long QEMU takes) and its context switches per command:")
        A("")
        A("| client | " + " | ".join("%s: CPU µs / switches" % m[1] for m in modes) + " |")
        A("| --- | " + " | ".join("---:" for _ in modes) + " |")
        for c, cname in clients:
            cells = []
            for m, _ in modes:
                xs = [x for x in rtt if x["client"] == c and x["mode"] == m and "cpu_us_per_cmd" in x]
                cells.append("%s / %s" % (fmt(median([x["cpu_us_per_cmd"] for x in xs])),
                                          fmt(median([x["csw_per_cmd"] for x in xs]), 1)) if xs else "—")
            A("| %s | %s |" % (cname, " | ".join(cells)))
        A("")
        prof = [x for x in records if x.get("section") == "profile"]
        if prof and prof[0]["children_rows"]:
            A("Where ours spends its CPU: `perf record -F 2999 -g` of one `launch-bench rtt` run (all three modes),")
            A("`perf report --children`: user-space frames with their callees included (% of all samples):")
            A("")
            A("| incl. % | object | frame |")
            A("| ---: | --- | --- |")
            for row in prof[0]["children_rows"]:
                A("| %.1f | %s | `%s` |" % (row["percent"], row["dso"], row["symbol"].replace("|", "\\|")))
            A("")
            A("and the top self-time entries: %s." % "; ".join(
                "`%s` %.1f%%" % (r["symbol"], r["percent"]) for r in prof[0]["self_rows"][:6]))
            A("")
        failures = [x for x in records if x.get("section") == "rtt-failure"]
        if failures:
            A("Round-trip runs that failed and were run again on a new QEMU: %d (%s)." % (
                len(failures), "; ".join("%s: %s" % (x["client"], x["error"][-160:]) for x in failures)))
            A("")
        pipe_gain = ratio(med.get(("raw", "seq")), med.get(("raw", "pipe-batch")))
        A("Pipelining gains little for anyone: raw sequential / raw batch = %s. See *Where the time goes* below."
          % fmt(pipe_gain, 2))
        A("")

    # ---- qemu-reads
    qr = [x for x in records if x.get("section") == "qemu-reads"]
    if qr:
        A("### Where the time goes: QEMU's side of a round trip")
        A("")
        A("`strace -f -c -p <qemu>` while a client runs %d sequential + %d batched `query-status` (tracing slows"
          % (500, 500))
        A("QEMU down several times, so only the counts matter here):")
        A("")
        names = sorted({k for x in qr for k in x["calls"]})
        A("| client | commands | " + " | ".join("%s / command" % n for n in names) + " |")
        A("| --- | ---: | " + " | ".join("---:" for _ in names) + " |")
        for x in qr:
            A("| %s | %d | %s |" % ("ours" if x["client"] == "swift" else x["client"], x["commands"], " | ".join(
                fmt(x["calls"].get(n, 0) / x["commands"], 1) for n in names)))
        A("")
        A("QEMU 7.2's QMP monitor reads its input **one byte per `recvmsg`** (`monitor_can_read()` returns 1, so the")
        A("socket chardev asks for one byte at a time), with a round of main-loop/iothread wake-ups (eventfd")
        A("`write`/`read`, `poll`) around each byte, and it takes the next command only after answering the")
        A("previous one (no `oob` capability: the monitor is suspended while a command is in flight). So the")
        A("round trip is set by QEMU and grows with the line's length; a client can only add to it. That is why")
        A("pipelining gains little, and why `raw-noid` (shorter lines) beats the raw floor with ids.")
        A("")
        spin = [x for x in records if x.get("section") == "spinner"]
        if spin:
            def sm(mode, on, client="raw"):
                return spinner_med(records, client, mode, on)
            A("Those wake-ups are slow on this VM when the other vCPU is idle. Each client, 1000 commands, 4 rounds")
            A("(the clients' order rotating), alone and then beside a process that only burns CPU")
            A("(`python3 -c 'while True: pass'`), alternating which comes first; µs per command, medians:")
            A("")
            A("| client | seq alone | seq beside a spinner | pipelined alone | pipelined beside a spinner |")
            A("| --- | ---: | ---: | ---: | ---: |")
            names = {"raw": "raw socket (pipelined: batch)", "swift": "ours (pipelined: window)",
                     "swift-io": "ours on the I/O thread (pipelined: window)", "qemuqmp": "qemu.qmp (pipelined: window)"}
            piped = {"raw": "pipe-batch"}
            for c in SPINNER_CLIENTS:
                if not any(x.get("client", "raw") == c for x in spin):
                    continue
                m = piped.get(c, "pipe-window")
                A("| %s | %s | %s | %s | %s |" % (names[c], fmt(sm("seq", False, c)), fmt(sm("seq", True, c)),
                                                 fmt(sm(m, False, c)), fmt(sm(m, True, c))))
            A("")
            if any(x.get("client") == "qemuqmp" for x in spin) and any(x.get("client") == "swift" for x in spin):
                A("On equal footing (every client beside the same spinner, so none gains from its own CPU burn),")
                A("ours / qemu.qmp: sequential %s, pipelined (window) %s; ours on the I/O thread / qemu.qmp: %s, %s;"
                  % (fmt(ratio(sm("seq", True, "swift"), sm("seq", True, "qemuqmp")), 2),
                     fmt(ratio(sm("pipe-window", True, "swift"), sm("pipe-window", True, "qemuqmp")), 2),
                     fmt(ratio(sm("seq", True, "swift-io"), sm("seq", True, "qemuqmp")), 2),
                     fmt(ratio(sm("pipe-window", True, "swift-io"), sm("pipe-window", True, "qemuqmp")), 2)))
                A("ours on the I/O thread / raw batch, pipelined: %s."
                  % fmt(ratio(sm("pipe-window", True, "swift-io"), sm("pipe-batch", True, "raw")), 2))
                A("")
            helps = sm("seq", True) < sm("seq", False) and sm("pipe-batch", True) < sm("pipe-batch", False)
            if helps:
                A("Burning CPU elsewhere made QEMU *faster* in this run: QEMU's threads then wake on busy vCPUs rather")
                A("than idle ones, and waking an idle vCPU of a VM is slow. So wall time per command depends on how busy")
                A("the host is and on how much CPU the client itself burns while it waits: a client that spins more can")
                A("look faster. That is how qemu.qmp's pipelined figures can beat the raw \"floor\", and why load swings")
                A("move every figure by tens of percent. The")
            else:
                A("In this run the spinner did not make QEMU faster in both modes: with the host's CPUs already busy it")
                A("competes with QEMU for a CPU instead. On a quieter host it can make QEMU faster (QEMU's threads then")
                A("wake on busy vCPUs, and waking an idle vCPU of a VM is slow). Either way wall time per command")
                A("depends on the host's load more than on the client. The")
            A("client's own CPU per command (table above) is the figure that measures the client alone.")
            records_spin_helps[0] = helps
            A("")

    # ---- spawn
    sp = [x for x in records if x.get("section") == "spawn"]
    if sp:
        A("## 2. Spawn to QMP-ready, and `quit` to reaped")
        A("")
        A("One QEMU at a time (`-M none -S -nodefaults -display none`), %d rounds x %d runs per contender after one"
          % (args.spawn_rounds, args.spawn_runs))
        A("unmeasured warm-up, the order rotating each round. *ready*: from just before the spawn call to")
        A("`qmp_capabilities` answered. *spawn*: the spawn call alone (fork/exec, until exec is confirmed).")
        A("*quit→reaped*: `quit` sent to the exit status collected (waitpid).")
        A("")
        A("- **ours**: `ChildProcess.spawn` (stdout/stderr to its reader thread), then — like `Machine.start` —")
        A("  stat the socket file every 2 ms (`Task.sleep`), then `QMP.Client.connect` (connect + greeting +")
        A("  negotiation); quit: `QMP.Client.quit()` then `ChildProcess.wait()`.")
        A("- **raw** (floor): `subprocess.Popen` (output to /dev/null), stat every 2 ms, blocking socket,")
        A("  greeting + `qmp_capabilities`; quit: send, read to EOF, `Popen.wait()`.")
        A("- **qemu.qmp**: `Popen`, stat every 2 ms (`asyncio.sleep`), `QMPClient.connect`; `execute('quit')`,")
        A("  `disconnect()`, `Popen.wait()`.")
        A("- **…-socketpair**: QEMU gets one end of a `socketpair(2)` as fd 0 (`-chardev socket,id=qmp,fd=0 -mon")
        A("  chardev=qmp,mode=control`); ours uses `ChildProcess.spawn(stdin:)` and `QMP.Client.connect(fileDescriptor:)`.")
        A("  No socket file, no polling, no `accept()` in QEMU.")
        A("")
        names = ["swift", "raw", "qemuqmp", "swift-socketpair", "raw-socketpair"]
        A("| contender | ready ms | [min–max] | spawn call ms | socket file seen ms | quit returned ms | quit→reaped ms | [min–max] | runs | hung |")
        A("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        smed = {}
        for n in names:
            ok = [x for x in sp if x["client"] == n and not x["hung"]]
            hung = [x for x in sp if x["client"] == n and x["hung"]]
            if not ok:
                continue
            ready = [x["ready_ms"] for x in ok]
            quit = [x["quit_reaped_ms"] for x in ok]
            smed[n] = (median(ready), median(quit))
            sock = "—" if "socketpair" in n else fmt(median([x["socket_ms"] for x in ok]))
            A("| %s | %s | %s–%s | %s | %s | %s | %s | %s–%s | %d | %d |" % (
                n.replace("swift", "ours"), fmt(median(ready)), fmt(min(ready)), fmt(max(ready)),
                fmt(median([x["spawn_ms"] for x in ok]), 2), sock, fmt(median([x["quit_ack_ms"] for x in ok]), 2),
                fmt(median(quit)), fmt(min(quit)), fmt(max(quit)), len(ok), len(hung)))
        A("")
        if "swift" in smed and "raw" in smed:
            A("Ours / raw: ready %s, quit→reaped %s. Ours-socketpair / raw-socketpair: ready %s. Ours-socketpair /"
              % (fmt(ratio(smed["swift"][0], smed["raw"][0]), 2), fmt(ratio(smed["swift"][1], smed["raw"][1]), 2),
                 fmt(ratio(smed.get("swift-socketpair", (None,))[0], smed.get("raw-socketpair", (None,))[0]), 2)))
            A("ours (socket file): ready %s. Connection attempts refused (socket file there, not yet"
              % fmt(ratio(smed.get("swift-socketpair", (None,))[0], smed["swift"][0]), 2))
            A("listening) and retried: %d for ours, %d for raw." % (
                sum(x.get("retries", 0) for x in sp if x["client"] == "swift"),
                sum(x.get("retries", 0) for x in sp if x["client"] == "raw")))
            A("")

    # ---- spawn call
    scall = [x for x in records if x.get("section") == "spawn-call"]
    if scall:
        A("### The spawn call alone (`/bin/true`)")
        A("")
        A("`ChildProcess.spawn` of `/bin/true` then `wait()`, against `subprocess.Popen` then `wait()`, %d rounds x 40"
          % args.spawn_rounds)
        A("runs, alternating:")
        A("")
        A("| spawner | spawn call ms | [min–max] | spawn + exit + reaped ms | [min–max] |")
        A("| --- | ---: | ---: | ---: | ---: |")
        cm = {}
        for n, name in [("swift", "ours: `ChildProcess.spawn`"), ("raw", "Python `subprocess.Popen`")]:
            xs = [x for x in scall if x["client"] == n]
            if not xs:
                continue
            a, b = [x["spawn_ms"] for x in xs], [x["reaped_ms"] for x in xs]
            cm[n] = (median(a), median(b))
            A("| %s | %s | %s–%s | %s | %s–%s |" % (name, fmt(median(a), 2), fmt(min(a), 2), fmt(max(a), 2),
                                                 fmt(median(b), 2), fmt(min(b), 2), fmt(max(b), 2)))
        A("")
        if len(cm) == 2:
            A("Ours / Popen: spawn call %s, spawn to reaped %s. The shim (`Sources/CLaunchShim/shim.c`, `perform()`)"
              % (fmt(ratio(cm["swift"][0], cm["raw"][0]), 1), fmt(ratio(cm["swift"][1], cm["raw"][1]), 1)))
            A("uses `vfork()` on Linux, as Python's `_posixsubprocess` does. The request also crosses to the shim's")
            A("spawner thread and back; `ChildProcess` then hands the child's output pipe and its pidfd to the")
            A("launcher's one I/O thread, which reads the output and reaps the child.")
            A("")

    # ---- scale
    sc = [x for x in records if x.get("section") == "scale"]
    if sc:
        A("## 3. %d QEMUs at once: to QMP-ready, then all `quit`" % args.count)
        A("")
        A("One fresh supervisor process per run, %d rounds per contender, order rotating. Each first starts and" % args.scale_rounds)
        A("stops one QEMU (warm-up: one-time costs are not per VM), then reads `VmHWM`/`VmRSS`/`Threads` from")
        A("`/proc/self/status`, starts %d QEMUs concurrently and brings each to QMP-ready, checks `query-status` on"
          % args.count)
        A("all, then quits all and reaps them. Peak threads: sampled every 5 ms by an extra thread (not counted).")
        A("A run in which a QEMU hung (see below) is not timed; the round is run again.")
        A("")
        A("- **ours**: one task per VM in a task group (the `startQEMU` path of section 2), then `quit()` +")
        A("  `wait()` per VM in a task group.")
        A("- **qemu.qmp**: one Python process, `Popen` x %d, then `asyncio.gather` of `QMPClient.connect`s;" % args.count)
        A("  `gather` of quits, then `Popen.wait()` each.")
        A("- **raw**: one Python thread, `Popen` x %d, then blocking connect + negotiate to each in turn." % args.count)
        A("")
        A("| supervisor | all ready s | all reaped after quit s | peak RSS growth (VmHWM) KiB | per VM KiB | RSS at ready − before, per VM KiB | threads before → at ready (peak) | runs | hung runs |")
        A("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
        for n in ["swift", "swift-socketpair", "qemuqmp", "raw"]:
            ok = [x for x in sc if x["client"] == n and not x["hung"]]
            hung = [x for x in sc if x["client"] == n and x["hung"]]
            if not ok:
                continue
            growth = [x["hwm_after_kib"] - x["hwm_before_kib"] for x in ok]
            at_ready = [(x["rss_at_ready_kib"] - x["rss_before_kib"]) / x["count"] for x in ok]
            A("| %s | %s | %s | %s | %s | %s | %d → %d (%d) | %d | %d |" % (
                n.replace("swift", "ours"), fmt(median([x["ready_s"] for x in ok]), 3),
                fmt(median([x["shutdown_s"] for x in ok]), 3), fmt(median(growth), 0),
                fmt(median(growth) / args.count, 0), fmt(median(at_ready), 0),
                median([x["threads_before"] for x in ok]), median([x["threads_at_ready"] for x in ok]),
                max(x["threads_peak"] for x in ok), len(ok), len(hung)))
        ours = [x for x in sc if x["client"] == "swift" and not x["hung"]]
        if ours:
            per_vm = median([x["hwm_after_kib"] - x["hwm_before_kib"] for x in ours]) / args.count
            A("")
            A("Supervisor memory: %s per VM (peak RSS growth / %d)."
              % (fmt(per_vm, 0) + " KiB", args.count))
            tpv = median([(x["threads_at_ready"] - x["threads_before"]) / x["count"] for x in ours])
            A("Threads per VM in ours: %s (QMP.Client: one I/O thread per connection; every child's output and"
              % fmt(tpv, 1))
            A("reaping go to the launcher's one I/O thread), all gone after the shutdown (threads after: %s)."
              % ", ".join(str(x["threads_after"]) for x in ours))
        A("")

    # ---- hangs
    hung = [x for x in records if x.get("hung")]
    starts = [x for x in records if x.get("section") == "spawn"]
    scale_runs = [x for x in records if x.get("section") == "scale"]
    A("## QEMU 7.2 sometimes hangs on a new QMP connection")
    A("")
    hg = [x for x in records if x.get("section") == "hang"]
    if hg:
        A("Counted: the %d-QEMU start of section 3, %d times per client, order rotating:" % (args.count, args.hang_runs))
        A("")
        A("| client | runs with a hung QEMU | hung QEMUs / QMP connections |")
        A("| --- | ---: | ---: |")
        for n in ["swift", "raw", "qemuqmp", "swift-socketpair"]:
            xs = [x for x in hg if x["client"] == n]
            if xs:
                A("| %s | %d / %d | %d / %d |" % (n.replace("swift", "ours"), sum(1 for x in xs if x["hung_vms"]), len(xs),
                                               sum(x["hung_vms"] for x in xs), len(xs) * args.count))
        A("")
    A("Also in this run: spawn section, hung starts per contender: %s; scale section, runs with a hung VM: %s." % (
        ", ".join("%s %d/%d" % (n.replace("swift", "ours"), sum(1 for x in starts if x["client"] == n and x["hung"]),
                                sum(1 for x in starts if x["client"] == n))
                  for n in ["swift", "raw", "qemuqmp", "swift-socketpair", "raw-socketpair"]),
        ", ".join("%s %d/%d" % (n.replace("swift", "ours"), sum(1 for x in scale_runs if x["client"] == n and x["hung"]),
                                sum(1 for x in scale_runs if x["client"] == n))
                  for n in ["swift", "swift-socketpair", "qemuqmp", "raw"])))
    A("")
    seen = sorted({x["client"] for x in hg + starts + scale_runs if x.get("hung") or x.get("hung_vms")})
    A("In this run, hung QMP handshakes were seen with: %s." % (", ".join(n.replace("swift", "ours") for n in seen) or "none"))
    A("")
    A("What it is (found while writing this benchmark, by hand, and not re-run by the script): QEMU 7.2 accepts")
    A("the QMP connection and sends the greeting, but never answers `qmp_capabilities`, and from then on ignores")
    A("SIGTERM too (only SIGKILL ends it). It happened with every client (ours, raw Python, qemu.qmp), more")
    A("often when many QEMUs start at once on a loaded host, and not when the client connects only once QEMU")
    A("has been up for a while. `gdb -p <qemu> -batch -ex 'thread apply all bt'` on such a QEMU shows its main")
    A("thread blocked in `accept4()` on the QMP listening socket (`qemu_accept` ← `qio_channel_socket_accept` ←")
    A("`g_main_context_dispatch` ← `main_loop_wait`), while the monitor's I/O thread has already accepted the")
    A("connection. With the main loop stuck, the QMP dispatcher (which runs in it) never runs the command and")
    A("the signal is never handled. For a moment both threads watch the listener while the monitor moves to")
    A("its I/O thread; the qemu-devel patch \"monitor/qmp: cleanup SocketChardev listener sources early to avoid")
    A("fd handling race\" (November 2025) closes that window. `ss -xp` on a hung QEMU shows the last byte (the")
    A("LF) of the client's `qmp_capabilities` line still unread: QEMU parsed the command and queued it.")
    A("")
    A("A launcher avoids it by giving QEMU no listening socket for QMP: one end of a `socketpair(2)` passed as")
    A("`-chardev socket,id=qmp,fd=N -mon chardev=qmp,mode=control`, the other to")
    A("`QMP.Client.connect(fileDescriptor:)`. `Machine.start` does so (QEMU gets the monitor as its fd 3). The")
    A("benchmark's clients give up after a 5 s handshake and SIGKILL such a QEMU.")
    A("")

    # ---- launch
    la = [x for x in records if x.get("section") == "launch" and x["client"] != "warmup"]
    if la:
        A("## 4. `launch run` x 8 in a row against `launch batch` of 8, `--jobs 2`")
        A("")
        A("Release `launch` (`.build-bench-supervision/release/launch`), `Profiles/hello.json` (microvm, TCG here, virtiofs")
        A("share, runs a command). One unmeasured warm-up run first (the KVM probe and the caches are warm).")
        A("%d repetitions each, alternating. Wall time of the whole set, and CPU time (user + system of all" % args.launch_reps)
        A("children, from `getrusage(RUSAGE_CHILDREN)`).")
        A("")
        A("| mode | wall s (median) | [min–max] | per VM s (wall / 8) | CPU s (median) | reps |")
        A("| --- | ---: | ---: | ---: | ---: | ---: |")
        lm = {}
        for n, name in [("sequential", "8 x `launch run`"), ("batch", "`launch batch` x 8 `--jobs 2`")]:
            xs = [x for x in la if x["client"] == n]
            if not xs:
                continue
            w = [x["wall_s"] for x in xs]
            lm[n] = median(w)
            A("| %s | %s | %s–%s | %s | %s | %d |" % (name, fmt(median(w), 2), fmt(min(w), 2), fmt(max(w), 2),
                                                   fmt(median(w) / 8, 2), fmt(median([x["cpu_s"] for x in xs]), 2), len(xs)))
        A("")
        lf = [x for x in records if x.get("section") == "launch-failure"]
        if lf:
            A("Failed repetitions (run again): %d." % len(lf))
            for x in lf:
                A("")
                A("```")
                A("%s round %d, exit %s:" % (x["client"], x["round"], x["returncode"]))
                A(x["output"][-1200:].rstrip())
                A("```")
            A("")
        if len(lm) == 2:
            A("batch / sequential wall time: %s (a speed-up of %sx with 2 jobs on %s cores)."
              % (fmt(ratio(lm["batch"], lm["sequential"]), 2), fmt(ratio(lm["sequential"], lm["batch"]), 2),
                 facts["nproc"]))
            A("Under TCG each guest is a busy host thread, so 2 jobs on 2 cores can at best halve the wall time, and")
            A("only when nothing else runs; the per-VM times inside a batch are longer than alone.")
        A("")

    # ---- verdicts and notes
    A("## Summary and notes")
    A("")
    if rtt:
        for label, value in verdicts:
            A("- %s = %s" % (label, fmt(value, 2)))
    if sc and ours:
        A("- supervisor RSS per VM = %s KiB" % fmt(per_vm, 0))
    A("")
    if rtt:
        def cpu(c, m):
            return median([x["cpu_us_per_cmd"] for x in rtt if x["client"] == c and x["mode"] == m and "cpu_us_per_cmd" in x])
        prof = [x for x in records if x.get("section") == "profile"]
        def incl(name):
            if not prof:
                return float("nan")
            return max([r["percent"] for r in prof[0]["children_rows"] if r["symbol"].startswith(name)], default=float("nan"))
        A("Round trip. In wall time ours is at %s x the raw floor sequentially and %s x pipelined (window; %s x batch);"
          % (fmt(verdicts[0][1], 2), fmt(verdicts[1][1], 2), fmt(verdicts[2][1], 2)))
        seq_rounds = paired("swift", "seq", "raw", "seq")
        A("round by round the sequential ratio ranged %s–%s: QEMU sets the pace (one byte per main-loop pass, see"
          % (fmt(min(seq_rounds, default=float("nan")), 2), fmt(max(seq_rounds, default=float("nan")), 2)))
        A("above) and the host's load moves it more than the client does. The client's own CPU shows the real difference: ours")
        A("uses %s µs per command sequentially against the raw Python loop's %s (x %s), and %s µs pipelined against"
          % (fmt(cpu("swift", "seq")), fmt(cpu("raw", "seq")), fmt(ratio(cpu("swift", "seq"), cpu("raw", "seq")), 1),
             fmt(cpu("swift", "pipe-window"))))
        A("%s (x %s). Why: every reply is read by the connection's I/O thread and handed to a thread of the"
          % (fmt(cpu("raw", "pipe-batch")), fmt(ratio(cpu("swift", "pipe-window"), cpu("raw", "pipe-batch")), 1)))
        A("concurrency pool to resume the caller, so each command costs two thread wake-ups where the raw loop")
        A("has one: in the profile `swift_task_enqueueGlobalImpl` (waking a pool thread: dispatch semaphore,")
        A("`sem_post`, futex) is %s%% of all samples inclusive, `Connection.run()` (the I/O thread) %s%%, the JSON"
          % (fmt(incl("swift_task_enqueueGlobalImpl")), fmt(incl("Connection.run"))))
        lock = max([r["percent"] for r in (prof[0]["self_rows"] if prof else [])
                    if r["symbol"].startswith("_MutexHandle._lockSlow")], default=None)
        A("parser %s%%, and the connection lock's contended path (`_MutexHandle._lockSlow`, callers and the I/O"
          % fmt(incl("JSONParser.parseValue")))
        A("thread at once) %s of self time. The kernel's context-switch path (`finish_task_switch`) dominates"
          % ("%.1f%%" % lock if lock is not None else "under 1%"))
        A("self time. Against")
        A("qemu.qmp, ours is %s sequentially (ours / qemu.qmp = %s); qemu.qmp uses %s x ours' CPU sequentially and"
          % ("faster" if verdicts[3][3] else "slower", fmt(verdicts[3][1], 2),
             fmt(ratio(cpu("qemuqmp", "seq"), cpu("swift", "seq")), 1)))
        A("%s x pipelined (batch). Pipelined wall time: ours / qemu.qmp = %s (window), %s (batch)%s"
          % (fmt(ratio(cpu("qemuqmp", "pipe-batch"), cpu("swift", "pipe-batch")), 1),
             fmt(verdicts[4][1], 2), fmt(verdicts[5][1], 2),
             "; qemu.qmp comes out ahead there although it burns more CPU per command" if not (verdicts[4][3] and verdicts[5][3])
             else ". Read that with care"))
        if records_spin_helps[0]:
            A("(most likely because qemu.qmp keeps a CPU busy while it waits, which on this VM speeds QEMU up: see the")
            A("spinner experiment), so that comparison measures the host's idle wake-up latency more than the clients.")
        else:
            A("(wall time here moves with the host's load more than with the client: see the spinner experiment).")
        A("`QMP.Client.taskExecutor` removes the second wake-up: inside `withTaskExecutorPreference(qmp.taskExecutor)`")
        A("the I/O thread resumes the caller itself and sends what the resumed tasks send in one `send(2)`. On the")
        A("I/O thread ours uses %s µs of CPU per command sequentially and %s pipelined (window), with %s and %s"
          % (fmt(cpu("swift-io", "seq")), fmt(cpu("swift-io", "pipe-window")),
             fmt(median([x["csw_per_cmd"] for x in rtt if x["client"] == "swift-io" and x["mode"] == "seq"]), 1),
             fmt(median([x["csw_per_cmd"] for x in rtt if x["client"] == "swift-io" and x["mode"] == "pipe-window"]), 1)))
        A("context switches per command; wall time: %s x the raw floor sequentially, %s x pipelined (window)."
          % (fmt(ratio(med.get(("swift-io", "seq")), med.get(("raw", "seq"))), 2),
             fmt(ratio(med.get(("swift-io", "pipe-window")), med.get(("raw", "pipe-batch"))), 2)))
        A("")
    if sp and "swift" in smed and "raw" in smed:
        A("Spawn to QMP-ready: ours %s ms against the raw floor's %s (x %s); quit→reaped %s against %s (x %s)."
          % (fmt(smed["swift"][0]), fmt(smed["raw"][0]), fmt(ratio(smed["swift"][0], smed["raw"][0]), 2),
             fmt(smed["swift"][1]), fmt(smed["raw"][1]), fmt(ratio(smed["swift"][1], smed["raw"][1]), 2)))
        A("QEMU's own start (%s ms from the spawn call to the socket file, raw) dominates."
          % fmt(median([x["socket_ms"] for x in sp if x["client"] == "raw" and not x["hung"]])))
        if scall and len(cm) == 2:
            r = ratio(cm["swift"][0], cm["raw"][0])
            A("The spawn call alone (`/bin/true`): ours / Popen = %s in this run (both `vfork()`; what is left is"
              " the hop to the shim's spawner thread and back)." % fmt(r, 1))
        A("The 2 ms socket-file poll costs half its interval on average; the socketpair transport needs no poll.")
        A("")
    # Only this run's figures: earlier runs are in git's history of this file.
    A("Everything here ran on a shared 2-core VM with other jobs (see the load and busy figures at the top):")
    A("single figures move by tens of percent between rounds; compare medians and per-round ratios, and")
    A("re-run `bash Benchmarks/run-supervision.sh` rather than trusting one number.")
    A("")
    return "\n".join(L) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qemu", default=shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64")
    parser.add_argument("--only", default="rtt,qemu-reads,spawn,spawn-call,scale,hang,launch")
    parser.add_argument("--hang-runs", type=int, default=12, help="32-QEMU starts per contender for the hang count")
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a look, not a result")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--rtt-rounds", type=int, default=8)
    parser.add_argument("--rtt-reps", type=int, default=2)
    parser.add_argument("--spawn-rounds", type=int, default=5)
    parser.add_argument("--spawn-runs", type=int, default=6)
    parser.add_argument("--scale-rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--launch-reps", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "RESULTS-supervision.md"))
    parser.add_argument("--json", default=os.path.join(SCRATCH, "supervision-records.json"))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--report-only", metavar="JSON",
                        help="write the report again from a records file of an earlier run (no measuring)")
    args = parser.parse_args()
    if args.report_only:
        with open(args.report_only) as f:
            saved = json.load(f)
        out, no_write = args.out, args.no_write
        args = argparse.Namespace(**saved["args"])
        sys.argv[1:] = saved.get("argv", [])
        text = report(args, saved["facts"], saved["records"], saved.get("wall", float("nan")))
        print(text)
        if not no_write:
            with open(out, "w") as f:
                f.write(text)
        return
    if args.quick:
        args.rtt_rounds, args.rtt_reps, args.spawn_rounds, args.spawn_runs = 2, 1, 2, 3
        args.scale_rounds, args.launch_reps, args.hang_runs = 1, 1, 2
    only = set(args.only.split(","))
    for path in [BENCH, VENV_PY] + ([LAUNCH] if "launch" in only else []):
        if not os.path.exists(path):
            raise SystemExit("missing %s: run Benchmarks/run-supervision.sh" % rel(path))
    facts = machine_facts()
    records = []
    t0 = time.monotonic()
    # Short socket paths: well under the 107-byte sun_path limit.
    tmp = tempfile.mkdtemp(prefix="b6-", dir="/tmp")
    try:
        if "rtt" in only:
            section_rtt(args, tmp, records)
        if "qemu-reads" in only:
            section_qemu_reads(args, tmp, records)
            spinner_effect(args, tmp, records)
            section_profile(args, tmp, records)
        if "spawn" in only:
            section_spawn(args, tmp, records)
        if "spawn-call" in only:
            section_spawn_call(args, records)
        if "scale" in only:
            section_scale(args, tmp, records)
        if "hang" in only:
            section_hang(args, tmp, records)
        if "launch" in only:
            section_launch(args, records)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"facts": facts, "args": vars(args), "argv": sys.argv[1:], "wall": time.monotonic() - t0,
                       "records": records}, f, indent=1)
    text = report(args, facts, records, time.monotonic() - t0)
    print(text)
    if not args.no_write:
        with open(args.out, "w") as f:
            f.write(text)
        log("wrote %s and %s" % (rel(args.out), rel(args.json)))
        if os.path.abspath(args.out) == os.path.abspath(os.path.join(ROOT, "Benchmarks", "RESULTS-supervision.md")):
            splice_into_benchmarks(text)


BENCHMARKS_HEADER = "# QMP client, spawn, 32 VMs and batch (from `bash Benchmarks/run-supervision.sh`)"


def splice_into_benchmarks(text):
    """BENCHMARKS.md carries these figures after the boot figures (Benchmarks/boot.py
    writes the same section from RESULTS-supervision.md): replace that section now, so the
    file is current whichever script ran last."""
    path = os.path.join(ROOT, "BENCHMARKS.md")
    try:
        with open(path) as f:
            current = f.read()
    except OSError:
        return
    head = current.split(BENCHMARKS_HEADER, 1)[0].rstrip("\n")
    body = text.split("\n", 1)[1] if "\n" in text else ""
    with open(path, "w") as f:
        f.write(head + "\n" + BENCHMARKS_HEADER + "\n\n" + body)
    log("updated the QMP and supervision section of %s" % rel(path))


if __name__ == "__main__":
    main()
