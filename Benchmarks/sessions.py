#!/usr/bin/env python3
"""Guest sessions benchmark: many commands in one booted guest, measured side by side.

    python3 Benchmarks/sessions.py                    # all three parts (about 10 to 15 min under TCG)
    python3 Benchmarks/sessions.py --boots 20         # fewer separate boots in part a
    python3 Benchmarks/sessions.py --only rtt --no-write
    python3 Benchmarks/sessions.py --help

a. `commands`: one session running 100 trivial commands (`true`) against separate
   boots (`GuestKit.run` of `true` each), interleaved round by round;
b. `rtt`: the per-command round trip of `GuestSession.run(["true"])` against the
   floor, a hand-written exchange on `launch.ctl` with plain blocking reads in an
   identically booted guest, batches of each alternating;
c. `scale`: threads and RSS of the launcher process per running guest, at 1 and 16
   guests at once (each a fresh process).

The Swift side is `launch-bench session-vs-boots | session-rtt | session-scale`
(Benchmarks/Sources/launch-bench/Sessions.swift). It prints tables and writes its
section of BENCHMARKS.md (`## Guest sessions`); it never fails on a number.
See Benchmarks/README.md.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys

from bench_host import build_with_retries, cpu_model
from benchmarks_md import existing_section, write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRATCH = os.path.join(ROOT, ".build-bench")
BENCH = os.path.join(SCRATCH, "release", "launch-bench")
BUILD_CMD = ["swift", "build", "-c", "release", "--scratch-path", ".build-bench", "--product", "launch-bench"]
PROFILE_REL = "Profiles/hello.json"
SECTION = "sessions"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def build(skip):
    if skip and os.access(BENCH, os.X_OK):
        return
    log("building: " + shlex.join(BUILD_CMD))
    build_with_retries(BUILD_CMD, ROOT, log)


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def bench(argv, extra_env=None):
    """Runs launch-bench; returns its JSON lines (stderr passes through)."""
    env = dict(os.environ, LAUNCH_CACHE_DIR=os.path.join(SCRATCH, "launch-cache"), **(extra_env or {}))
    cmd = [BENCH] + argv
    log("$ " + shlex.join(cmd))
    r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"launch-bench {argv[0]} failed (exit {r.returncode})")
    return [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]


def machine_facts():
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    cpu = cpu_model()
    return {"nproc": os.cpu_count(), "cpu": cpu, "uname": platform.release(), "qemu": qemu}


def largest_anonymous(smaps_path):
    """The largest anonymous mapping in a /proc/PID/smaps copy: (resident KiB, size KiB, header line)."""
    best, header, size, anon = (0, 0, ""), None, 0, 0
    try:
        with open(smaps_path) as f:
            for line in f:
                first = line.split(" ", 1)[0]
                if "-" in first and all(c in "0123456789abcdef-" for c in first):
                    if header and anon > best[0]:
                        best = (anon, size, header)
                    header, size, anon = line.strip(), 0, 0
                elif line.startswith("Size:"):
                    size = int(line.split()[1])
                elif line.startswith("Anonymous:"):
                    anon = int(line.split()[1])
        if header and anon > best[0]:
            best = (anon, size, header)
    except OSError:
        return None
    return best


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="commands,rtt,scale", help="parts to run: commands,rtt,scale (default all)")
    ap.add_argument("--commands", type=int, default=100, help="a: commands per session (default 100)")
    ap.add_argument("--boots", type=int, default=100, help="a: separate boots in all (default 100)")
    ap.add_argument("--rounds", type=int, default=4, help="a: rounds, each one session then boots/rounds boots (default 4)")
    ap.add_argument("--batches", type=int, default=20, help="b: batches per contender (default 20)")
    ap.add_argument("--batch", type=int, default=25, help="b: commands per batch (default 25)")
    ap.add_argument("--guests", default="1,16", help="c: guest counts (default 1,16)")
    ap.add_argument("--scale-reps", type=int, default=2, help="c: fresh processes per guest count (default 2)")
    ap.add_argument("--memory", default="256M", help="c: guest memory (default 256M)")
    ap.add_argument("--also-slots", type=int, default=4,
                    help="c: also one run of 1 guest with this many command slots (withSession's default 4; 0 = none)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print the tables only")
    ap.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    opts = ap.parse_args()
    parts = set(opts.only.split(","))

    build(opts.no_build)
    facts = machine_facts()
    argv_line = "python3 Benchmarks/sessions.py" + "".join(f" {a}" for a in sys.argv[1:])
    # The section's head, then one delimited subsection per part, so a run of some
    # parts (--only) replaces those and keeps the others' latest figures.
    md = ["## Guest sessions", ""]
    md.append("Generated by `python3 Benchmarks/sessions.py` (Swift side: `launch-bench session-*`, "
              "`Benchmarks/Sources/launch-bench/Sessions.swift`; see `Benchmarks/README.md`). Guest: `" + PROFILE_REL +
              "` as `launch run` boots it (microvm, TCG, PVH vmlinux, the virtiofs share mounted), one command slot. "
              "A benchmark on a shared 2-core machine with other builds and guests running: compare the side-by-side "
              "ratios, not the absolute figures. Build: `" + shlex.join(BUILD_CMD) + "`; every command below runs with "
              "`LAUNCH_CACHE_DIR=.build-bench/launch-cache`. Each part says when, on what and how it ran.")
    md.append("")
    parts_md = {}
    record = {}
    out = []

    def provenance(load_before, load_after=None):
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        loads = f"load average (1 min) {load_before} before" + (f", {load_after} after" if load_after else "")
        return (f"- ran {when} with `{argv_line}`; machine: `nproc` {facts['nproc']} ({facts['cpu']}), `uname -r` "
                f"{facts['uname']}, {facts['qemu']}; {loads}.")

    # ---------------------------------------------------------------- a
    if "commands" in parts:
        load0 = loadavg()
        argv = ["session-vs-boots", "--profile", PROFILE_REL, "--commands", str(opts.commands),
                "--boots", str(opts.boots), "--rounds", str(opts.rounds)]
        rows = bench(argv)
        load1 = loadavg()
        sessions = [r for r in rows if r["kind"] == "session"]
        boots = [r["wall_s"] for r in rows if r["kind"] == "boot"]
        per_cmd = [float(x) for r in sessions for x in r["per_command_ms"].split()]
        total = med([r["total_s"] for r in sessions])
        boot = med(boots)
        n = opts.commands
        t = ["| contender | runs | median | min | max |", "| --- | ---: | ---: | ---: | ---: |"]
        t.append(f"| one session, {n} × `true`: call to return (boot, {n} commands, poweroff) | {len(sessions)} | "
                 f"{total:.2f} s | {min(r['total_s'] for r in sessions):.2f} s | {max(r['total_s'] for r in sessions):.2f} s |")
        t.append(f"| … of which boot to ready | {len(sessions)} | {med([r['ready_s'] for r in sessions]):.2f} s | "
                 f"{min(r['ready_s'] for r in sessions):.2f} s | {max(r['ready_s'] for r in sessions):.2f} s |")
        t.append(f"| … of which the {n} commands | {len(sessions)} | {med([r['commands_s'] for r in sessions]):.2f} s | "
                 f"{min(r['commands_s'] for r in sessions):.2f} s | {max(r['commands_s'] for r in sessions):.2f} s |")
        t.append(f"| … one command in the session (`GuestSession.run([\"true\"])`) | {len(per_cmd)} | {med(per_cmd):.1f} ms | "
                 f"{min(per_cmd):.1f} ms | {max(per_cmd):.1f} ms |")
        t.append(f"| a separate boot per command (`GuestKit.run` of `true`) | {len(boots)} | {boot:.2f} s | "
                 f"{min(boots):.2f} s | {max(boots):.2f} s |")
        lines = [f"- {n} commands in one session: {total:.2f} s in all (median of {len(sessions)} sessions), "
                 f"median {med(per_cmd):.1f} ms per command once booted.",
                 f"- {len(boots)} separate boots (not {n}: " if len(boots) != n else f"- {len(boots)} separate boots: ",
                 ]
        if len(boots) != n:
            lines[1] += (f"the run was kept short; {n} would take about {n * boot:.0f} s): median {boot:.2f} s each, "
                         f"so {n} commands as {n} boots ≈ {n * boot:.0f} s.")
        else:
            lines[1] += f"median {boot:.2f} s each, {sum(boots):.0f} s in all."
        record["commands"] = f"{total:.2f} s / {boot:.2f} s ({len(boots)}) / {n * boot / total:.0f}x"
        lines.append(f"- {n} boots / one session of {n} commands: **{n * boot / total:.0f}x** (medians); per command, "
                     f"a boot / a command in a session: {boot * 1000 / med(per_cmd):.0f}x.")
        lines.append(f"- interleaved: {opts.rounds} rounds, each one session then its share of the boots; one unmeasured "
                     f"`GuestKit.run` first.")
        lines.append(provenance(load0, load1))
        section = [f"### a. {n} commands in one session against separate boots", "", "```sh",
                   "LAUNCH_CACHE_DIR=.build-bench/launch-cache .build-bench/release/launch-bench " + shlex.join(argv), "```", "",
                   "\n".join(t), ""] + lines + [""]
        parts_md["commands"] = section
        out += section

    # ---------------------------------------------------------------- b
    if "rtt" in parts:
        load0 = loadavg()
        argv = ["session-rtt", "--profile", PROFILE_REL, "--batches", str(opts.batches), "--batch", str(opts.batch)]
        rows = bench(argv)
        load1 = loadavg()
        by = {"session": [r for r in rows if r["kind"] == "session"], "floor": [r for r in rows if r["kind"] == "floor"]}
        all_ms = {k: [float(x) for r in v for x in r["times_ms"].split()] for k, v in by.items()}
        floor_by_batch = {r["batch"]: r for r in by["floor"]}
        paired = [r["median_ms"] / floor_by_batch[r["batch"]]["median_ms"] for r in by["session"] if r["batch"] in floor_by_batch]
        ratio = med(all_ms["session"]) / med(all_ms["floor"])
        t = ["| contender | commands | median ms | p10 ms | p90 ms | min ms | client CPU µs / command | context switches / command |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for k, label in (("session", "`GuestSession.run([\"true\"])`"), ("floor", "floor: blocking write + read on `launch.ctl`")):
            xs = sorted(all_ms[k])
            q = statistics.quantiles(xs, n=10)
            t.append(f"| {label} | {len(xs)} | {med(xs):.2f} | {q[0]:.2f} | {q[-1]:.2f} | {xs[0]:.2f} | "
                     f"{med([r['cpu_us_per_command'] for r in by[k]]):.0f} | {med([r['switches_per_command'] for r in by[k]]):.1f} |")
        record["rtt"] = f"{med(all_ms['session']):.1f} / {med(all_ms['floor']):.1f} / {ratio:.2f}x ({med(paired):.2f}x)"
        lines = [f"- session / floor, per-command round trip (medians of all commands): **{ratio:.2f}x**; "
                 f"median of per-batch ratios "
                 f"{med(paired):.2f}x (range {min(paired):.2f} to {max(paired):.2f}).",
                 f"- {opts.batches} batches of {opts.batch} commands each, alternating (which goes first alternates), "
                 f"after {10} unmeasured commands each; both guests booted and idle side by side the whole time.",
                 provenance(load0, load1),
                 "- the floor: the same `GuestKit.prepare(profile, options:, sessionSlots: 1)` + `Machine.start` "
                 "(with `guestPorts: prepared.guestPorts`), the setup sent on `launch.ctl`, `ready` read, then per "
                 "command one `write(2)` of `run 0 12\\nset -- true\\n` (the bytes `GuestSession` sends) and "
                 "`read(2)`s up to the `exit 0 0 0 0` line, on a thread of its own. Client CPU is the whole process's "
                 "(`getrusage`) over a batch, so it includes the idle session's reader threads for the floor too."]
        section = [f"### b. Per-command round trip: `GuestSession.run` against the floor", "", "```sh",
                   "LAUNCH_CACHE_DIR=.build-bench/launch-cache .build-bench/release/launch-bench " + shlex.join(argv), "```", "",
                   "\n".join(t), ""] + lines + [""]
        batch_t = ["| batch | session median ms | floor median ms | ratio | load |", "| ---: | ---: | ---: | ---: | ---: |"]
        for r in by["session"]:
            f = floor_by_batch.get(r["batch"])
            if f:
                batch_t.append(f"| {r['batch'] + 1} | {r['median_ms']:.2f} | {f['median_ms']:.2f} | "
                               f"{r['median_ms'] / f['median_ms']:.2f} | {r['load']:.2f} |")
        section += ["Per batch:", "", "\n".join(batch_t), ""]
        parts_md["rtt"] = section
        out += section

    # ---------------------------------------------------------------- c
    if "scale" in parts:
        counts = [int(x) for x in opts.guests.split(",")]
        results = {c: [] for c in counts}
        argvs = {}
        smaps = {}
        for rep in range(opts.scale_reps):
            for c in (counts if rep % 2 == 0 else list(reversed(counts))):
                argv = ["session-scale", "--profile", PROFILE_REL, "--guests", str(c), "--memory", opts.memory]
                argvs[c] = argv
                load0 = loadavg()
                # The first run of each count also copies its /proc/self/smaps while all run.
                path = os.path.join(SCRATCH, f"sessions-smaps-{c}.txt")
                r = bench(argv, {"LAUNCH_BENCH_SMAPS": path} if c not in smaps else None)[0]
                smaps.setdefault(c, largest_anonymous(path))
                r["load"] = load0
                results[c].append(r)
        extra = None
        if opts.also_slots:
            argv = ["session-scale", "--profile", PROFILE_REL, "--guests", "1", "--memory", opts.memory,
                    "--slots", str(opts.also_slots)]
            argvs["slots"] = argv
            load0 = loadavg()
            extra = bench(argv)[0]
            extra["load"] = load0
        t = ["| guests | runs | threads before → all running | threads per guest | VmRSS before → all running (KiB) "
             "| RSS per guest (KiB) | of which anonymous (RssAnon) per guest (KiB) | all up after (s) | threads after | load at start |",
             "| ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | --- | --- |"]
        for c in counts:
            rs = results[c]
            per_thr = med([(r["threads_running"] - r["threads_before"]) / c for r in rs])
            per_rss = med([(r["rss_running_kib"] - r["rss_before_kib"]) / c for r in rs])
            per_anon = med([(r["anon_running_kib"] - r["anon_before_kib"]) / c for r in rs])
            t.append(f"| {c} | {len(rs)} | " + ", ".join(f"{r['threads_before']} → {r['threads_running']}" for r in rs)
                     + f" | {per_thr:.1f} | " + ", ".join(f"{r['rss_before_kib']} → {r['rss_running_kib']}" for r in rs)
                     + f" | {per_rss:.0f} | {per_anon:.0f} | " + ", ".join(f"{r['all_up_s']:.1f}" for r in rs) + " | "
                     + ", ".join(str(r["threads_after"]) for r in rs) + " | " + ", ".join(r["load"] for r in rs) + " |")
        if extra:
            r = extra
            t.append(f"| 1, with {opts.also_slots} slots | 1 | {r['threads_before']} → {r['threads_running']} | "
                     f"{r['threads_running'] - r['threads_before']:.1f} | {r['rss_before_kib']} → {r['rss_running_kib']} | "
                     f"{r['rss_running_kib'] - r['rss_before_kib']:.0f} | {r['anon_running_kib'] - r['anon_before_kib']:.0f} | "
                     f"{r['all_up_s']:.1f} | {r['threads_after']} | {r['load']} |")
        kinds = results[counts[-1]][-1]
        lines = [f"- each run a fresh `launch-bench` process: one warm-up session first (one-time costs are not per "
                 f"guest), then `Threads` and `VmRSS` from `/proc/self/status`; then N `GuestKit.withSession`s at once "
                 f"({opts.memory} guests, `timeouts.boot` raised to 600 s: {max(counts)} TCG guests boot at once on "
                 f"{facts['nproc']} cores), each runs `true` once and waits until all are up; read then (the largest of "
                 f"5 samples 100 ms apart), and after all have ended.",
                 f"- thread names with {counts[-1]} guests running (digits dropped): `{kinds['thread_kinds_running']}`; "
                 f"before: `{kinds['thread_kinds_before']}`.",
                 "- one slot per guest (what `GuestKit.run` and `launch run` use) unless the row says otherwise; "
                 "QEMU and virtiofsd are child processes, not counted here."]
        if len(counts) >= 2:
            lo, hi = counts[0], counts[-1]
            marginal = med([r["rss_running_kib"] for r in results[hi]]) - med([r["rss_running_kib"] for r in results[lo]])
            marginal_anon = med([r["anon_running_kib"] for r in results[hi]]) - med([r["anon_running_kib"] for r in results[lo]])
            record["scale"] = (f"{med([(r['threads_running'] - r['threads_before']) / hi for r in results[hi]]):.1f} / "
                               f"{med([(r['rss_running_kib'] - r['rss_before_kib']) / lo for r in results[lo]]):.0f} / "
                               f"{marginal / (hi - lo):.0f}")
            lines.append(f"- each guest beyond the first ({lo} → {hi} guests, medians): {marginal / (hi - lo):.0f} KiB of "
                         f"RSS ({marginal_anon / (hi - lo):.0f} KiB anonymous) and "
                         f"{(med([r['threads_running'] for r in results[hi]]) - med([r['threads_running'] for r in results[lo]])) / (hi - lo):.1f} threads.")
        big = smaps.get(counts[0])
        if big and big[0]:
            # "kernel": "auto" boots the newest /boot/vmlinuz-*; GuestKit.prepare reads it whole to inspect it.
            kernels = sorted(glob.glob("/boot/vmlinuz-*"), key=os.path.getmtime)
            kernel_kib = os.path.getsize(kernels[-1]) // 1024 if kernels else None
            lines.append(f"- the largest anonymous mapping while {counts[0]} guest{'s' if counts[0] > 1 else ''} ran "
                         f"(`/proc/self/smaps`, copied by `LAUNCH_BENCH_SMAPS=FILE`): {big[0]} KiB resident of "
                         f"{big[1]} KiB (`{' '.join(big[2].split()[:2])}`); it stays after the guests have ended "
                         f"(the threads-after column is back to the start, RSS is not: `rss_after_kib` in the JSON)"
                         + (f"; for comparison, the bzImage `GuestKit.prepare` inspects, `{kernels[-1]}`, is {kernel_kib} KiB."
                            if kernel_kib else "."))
        section = ["### c. Threads and RSS of the launcher per running guest", "", "```sh"]
        for key in argvs:
            section.append("LAUNCH_CACHE_DIR=.build-bench/launch-cache .build-bench/release/launch-bench " + shlex.join(argvs[key]))
        section += ["```", "", "\n".join(t), ""] + lines + [""]
        parts_md["scale"] = section
        out += section

    print("\n".join(out))
    # This run's key figures (earlier runs are in git's history of BENCHMARKS.md).
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md += ["### This run's key figures", "",
           "The parts below hold the latest figures of each (a part this run didn't measure is `-` here).", "",
           "| date | load (1 min) at the end | a: one session of N commands / a boot (boots) / N boots ÷ session "
           "| b: session ms / floor ms / ratio (per-batch median) | c: threads per guest / RSS KiB at 1 guest / "
           "RSS KiB per further guest |",
           "| --- | ---: | --- | --- | --- |",
           f"| {when} | {loadavg()} | {record.get('commands', '-')} | {record.get('rtt', '-')} | {record.get('scale', '-')} |", ""]
    if not opts.no_write:
        write_section(opts.output, SECTION, "\n".join(md), legacy_heading="## Guest sessions")
        for part in ("commands", "rtt", "scale"):
            if part in parts_md:
                write_section(opts.output, f"{SECTION}.{part}", "\n".join(parts_md[part]))
        log(f"wrote the Guest sessions section of {opts.output}")


if __name__ == "__main__":
    main()
