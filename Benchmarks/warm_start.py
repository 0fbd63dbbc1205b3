#!/usr/bin/env python3
"""Warm start benchmark: cold against warm `launch run Profiles/hello.json -- true`
(warm = restored from a snapshot instead of booted), the floor (the same state file
restored by a hand-run QEMU), the snapshot's size and the time to make it, and 8 warm
runs through `launch batch --jobs 2`, side by side in one run on this machine.

A benchmark, not a timed test: it prints a table and writes its section of
BENCHMARKS.md; it fails only when a run gives the wrong result.

    python3 Benchmarks/warm_start.py                  # 10 cold, 10 warm, 10 floor, 3 saves, 1 batch of 8
    python3 Benchmarks/warm_start.py --runs 5 --no-write

See Benchmarks/README.md for what is timed.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from bench_host import build_with_retries, cpu_model
from benchmarks_md import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRATCH = os.path.join(ROOT, ".build-bench")
LAUNCH = os.path.join(SCRATCH, "release", "launch")
PROFILE_REL = "Profiles/hello.json"
BUILD_CMD = ["swift", "build", "-c", "release", "--scratch-path", ".build-bench", "--product", "launch"]
CACHE = os.path.join(SCRATCH, "warm-cache")
SECTION = "warm_start.py"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def env():
    e = dict(os.environ)
    e["LAUNCH_CACHE_DIR"] = CACHE
    return e


def launch(args, check_restored=None):
    """Runs `launch ARGS` from the repository; returns (seconds, stderr)."""
    start = time.monotonic()
    r = subprocess.run([LAUNCH] + args, cwd=ROOT, env=env(), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    took = time.monotonic() - start
    if r.returncode != 0:
        sys.exit(f"launch {shlex.join(args)} exited {r.returncode}:\n{r.stderr}")
    if check_restored is not None and ("snapshot: restoring the saved guest" in r.stderr) != check_restored:
        sys.exit(f"launch {shlex.join(args)}: expected {'a restore' if check_restored else 'a boot'}:\n{r.stderr}")
    return took, r.stderr


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def floor_run(argv, state):
    """QEMU started by hand with the warm plan's argv and `-incoming "exec:cat STATE"`; the
    clock runs from its spawn until the restored guest answers on launch.ctl (`ready`, after
    the same kind of run snippet the launcher sends: clock, seed, hostname, mounts), then on
    to QEMU's exit after `true` ran and the guest powered off."""
    run = tempfile.mkdtemp(prefix="lwf-", dir="/tmp")
    old = argv_runtime(argv)
    args = [a.replace(old, run) for a in argv]
    args = [a for a in args if a != "-S"] + ["-incoming", "exec:cat " + shlex.quote(state)]
    start = time.monotonic()
    qemu = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    socks = {}
    for name in ["console", "port0", "port1", "port2", "port3"]:
        path = f"{run}/{name}.sock"
        for _ in range(5000):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                socks[name] = s
                break
            except OSError:
                s.close()
                time.sleep(0.002)
        if name not in socks:
            qemu.kill()
            sys.exit(f"floor: {path} never accepted a connection: {qemu.stderr.read().decode()[-2000:]}")
    # The guest was saved stopped, so QEMU 7.2 leaves it paused once loaded: `cont` over QMP.
    qmp = socket.socket(socket.AF_UNIX)
    for _ in range(5000):
        try:
            qmp.connect(f"{run}/qmp.sock")
            break
        except OSError:
            time.sleep(0.002)
    qf = qmp.makefile("rw")
    qf.readline()

    def execute(command):
        qf.write(json.dumps({"execute": command}) + "\n")
        qf.flush()
        while True:
            reply = json.loads(qf.readline())
            if "event" not in reply:
                return reply

    execute("qmp_capabilities")
    while execute("query-status").get("return", {}).get("status") == "inmigrate":
        time.sleep(0.002)
    execute("cont")
    ctl = socks["port0"]
    for name, s in socks.items():
        if name != "port0":
            s.setblocking(False)
    now = int(time.time())
    go = (f"date -s @{now} > /dev/null\necho {os.urandom(32).hex()} > /dev/urandom\necho floor > /proc/sys/kernel/hostname && echo floor > /etc/hostname\n"
          f"echo {os.urandom(16).hex()} > /etc/machine-id\n"
          "mkdir -p /mnt/shared && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 shared /mnt/shared || { echo 'error - mount' >&5; poweroff -f; }\n")
    ctl.sendall(f"{len(go.encode())}\n".encode() + go.encode())
    answered = wait_line(ctl, socks, "ready")
    t_ready = time.monotonic() - start
    script = "stdin_mode=port\nset -- true\n"
    ctl.sendall(f"run 0 {len(script)}\n".encode() + script.encode())
    socks["port1"].setblocking(True)
    socks["port1"].sendall(b"0\n")
    socks["port1"].setblocking(False)
    wait_line(ctl, socks, "exit 0")
    ctl.sendall(b"poweroff\n")
    while qemu.poll() is None:
        drain(socks)
        time.sleep(0.002)
    t_exit = time.monotonic() - start
    for s in list(socks.values()) + [qmp]:
        s.close()
    shutil.rmtree(run, ignore_errors=True)
    if qemu.returncode != 0 or not answered:
        sys.exit(f"floor: QEMU exited {qemu.returncode}: {qemu.stderr.read().decode()[-2000:]}")
    return t_ready, t_exit


def key_argv(state):
    """The exact argv the snapshot was made with, from the key stored beside it (its runtime
    dir is RUNTIME there), less the launcher's own QMP connection (an fd the floor has not)."""
    with open(state[:-len(".state")] + ".json") as f:
        key = json.load(f)["key"]
    line = next(l for l in key.splitlines() if l.startswith("argv "))
    argv = shlex.split(line[len("argv "):])
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("-chardev", "-mon") and i + 1 < len(argv) and ("id=control" in argv[i + 1] or "chardev=control" in argv[i + 1]):
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def argv_runtime(argv):
    return "RUNTIME"


def drain(socks):
    for name, s in socks.items():
        if name == "port0":
            continue
        try:
            while s.recv(65536):
                pass
        except (BlockingIOError, OSError):
            pass


def wait_line(ctl, socks, prefix, limit=120):
    ctl.settimeout(0.005)
    buf = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = ctl.recv(4096)
            if not chunk:
                return False
            buf += chunk
            if any(l.startswith(prefix.encode()) for l in buf.split(b"\n")):
                return True
        except socket.timeout:
            drain(socks)
    return False


def snapshot_files():
    folder = os.path.join(CACHE, "snapshots")
    return {(n, os.stat(os.path.join(folder, n)).st_ino) for n in os.listdir(folder) if n.endswith(".state")}


def med(xs):
    return statistics.median(xs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="cold, warm and floor runs each (interleaved)")
    p.add_argument("--saves", type=int, default=3, help="snapshots made (--snapshot refresh) for the save time")
    p.add_argument("--no-build", action="store_true", help="use the release launch as it is")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    a = p.parse_args()

    if not (a.no_build and os.access(LAUNCH, os.X_OK)):
        log("building: " + shlex.join(BUILD_CMD))
        build_with_retries(BUILD_CMD, ROOT, log)
    shutil.rmtree(CACHE, ignore_errors=True)
    load_start = loadavg()

    log("warm-up: a cold run fills the cache (PVH vmlinux, initramfs, KVM verdict)")
    launch(["run", PROFILE_REL, "--", "true"])
    saves, sizes = [], []
    state = None
    for i in range(a.saves):
        _, err = launch(["run", PROFILE_REL, "--snapshot", "refresh", "--", "true"], check_restored=False)
        m = re.search(r"snapshot: saved the booted guest in ([0-9.]+) (ms|s) \(.*?, (/\S+\.state)\)", err)
        if not m:
            sys.exit("no 'snapshot: saved' line:\n" + err)
        saves.append(float(m.group(1)) / (1000 if m.group(2) == "ms" else 1))
        state = m.group(3)
        sizes.append(os.path.getsize(state))
    argv = key_argv(state)

    cold, warm, floor_ready, floor_exit = [], [], [], []
    for i in range(a.runs):
        log(f"round {i + 1}/{a.runs} (load {loadavg():.2f})")
        cold.append(launch(["run", PROFILE_REL, "--snapshot", "off", "--", "true"], check_restored=False)[0])
        warm.append(launch(["run", PROFILE_REL, "--snapshot", "auto", "--", "true"], check_restored=True)[0])
        r, e = floor_run(argv, state)
        floor_ready.append(r)
        floor_exit.append(e)

    log("batch: one unmeasured batch makes its own snapshot (no crash capture: another key), then 8 jobs, --jobs 2")
    batch_args = ["batch", PROFILE_REL, "--snapshot", "auto", "--jobs", "2"]
    launch(batch_args + ["-c", "true"])
    report = os.path.join(SCRATCH, "warm-batch.json")
    before = snapshot_files()
    batch_wall, _ = launch(batch_args + sum([["-c", "true"] for _ in range(8)], []) + ["--json", report])
    with open(report) as f:
        jobs = json.load(f)
    job_seconds = [j["durationSeconds"] for j in jobs["jobs"]]
    # launch batch logs no info lines: a job that booted would have saved its snapshot anew
    # (a rename: a new inode), so unchanged state files mean every job restored.
    if snapshot_files() != before:
        sys.exit("a batch job saved a snapshot: it booted instead of restoring")
    load_end = loadavg()

    facts = (f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
             f"{subprocess.run(['qemu-system-x86_64', '--version'], capture_output=True, text=True).stdout.split(chr(10))[0]}")
    rows = [
        ("cold `launch run Profiles/hello.json --snapshot off -- true`", med(cold), cold),
        ("warm `launch run Profiles/hello.json --snapshot auto -- true`", med(warm), warm),
        ("floor: hand-run QEMU `-incoming \"exec:cat STATE\"`, spawn to `ready`", med(floor_ready), floor_ready),
        ("floor: the same, spawn to QEMU's exit after `true` and poweroff", med(floor_exit), floor_exit),
    ]
    lines = [f"## Warm start (`Benchmarks/warm_start.py`)", "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {facts}. "
             f"TCG (KVM is broken here). **The machine was shared with other engineers' builds and guests**: "
             f"load average {load_start:.2f} at the start, {load_end:.2f} at the end. Medians of {a.runs} interleaved rounds.", "",
             "| what | median | runs (s) |", "| --- | ---: | --- |"]
    for name, m, xs in rows:
        lines.append(f"| {name} | {m:.2f} s | {' '.join(f'{x:.2f}' for x in xs)} |")
    lines += ["", f"**Warm is {med(cold) / med(warm):.1f}x faster than cold** (median cold / median warm).", "",
              f"Snapshot: {med(sizes) / 1e6:.0f} MB for the 512 MiB guest; saving it (QMP stop, migrate to a temporary file, "
              f"wait, cont, rename) took {' '.join(f'{s:.2f}' for s in saves)} s (median {med(saves):.2f} s), inside the cold run that makes it.", "",
              f"`launch batch Profiles/hello.json --snapshot auto --jobs 2` with 8 `-c true` jobs, every one restored (no state file was made anew meanwhile): "
              f"{batch_wall:.2f} s wall for all 8; per job {' '.join(f'{x:.2f}' for x in job_seconds)} s.", "",
              "Commands: `python3 Benchmarks/warm_start.py` (release build in `.build-bench`, its own cache "
              "`.build-bench/warm-cache` via `LAUNCH_CACHE_DIR`).",
              "", "The ratio depends on the load: cold runs suffer more from a busy host than warm ones; a restored QEMU starts "
              "with an empty TCG translation cache, so the guest-side steps (the run's snippet, the command, the power-off) "
              "cost more than in a booted guest."]
    body = "\n".join(lines)
    print(body)
    if not a.no_write:
        write_section(os.path.join(ROOT, "BENCHMARKS.md"), SECTION, body)


if __name__ == "__main__":
    main()
