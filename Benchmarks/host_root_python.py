#!/usr/bin/env python3
"""Cost of the host's root filesystem as the guest's userland: wall time of

  busybox    launch run Profiles/hello.json -- true                                  (the busybox guest)
  host-root  launch run Profiles/hello.json --rootfs host -- PYTHON -c pass          (host's /, read-only)
  vng        vng --run KERNEL --disable-kvm --exec 'PYTHON -c pass'                  (virtme-ng, PyPI)

interleaved (one of each per round, so a load change hits all alike), several rounds,
medians and ratios side by side. TCG (this machine's KVM is broken); the profile's share
is kept in every launch run. Results go to stdout as a Markdown table (and JSON with --json).

    python3 Benchmarks/host_root_python.py                    # 7 rounds, vng 3 of them
    python3 Benchmarks/host_root_python.py --rounds 3 --no-vng
    python3 Benchmarks/host_root_python.py --python python3   # whatever PATH says (here: a pyenv shim)

PYTHON defaults to /usr/bin/python3: on this machine `python3` on PATH is a pyenv shim (a bash
script that runs pyenv, dozens of processes before Python starts), which would measure pyenv.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRATCH = os.path.join(ROOT, ".build-bench")
LAUNCH = os.path.join(SCRATCH, "release", "launch")
VENV = os.path.join(SCRATCH, "venv")
PROFILE = os.path.join(ROOT, "Profiles", "hello.json")
BUILD_CMD = ["swift", "build", "-c", "release", "--scratch-path", ".build-bench", "--product", "launch"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ensure_launch(path):
    if path:
        return path
    if not os.access(LAUNCH, os.X_OK):
        log("building: " + " ".join(BUILD_CMD))
        subprocess.run(BUILD_CMD, cwd=ROOT, check=True)
    return LAUNCH


def ensure_vng():
    vng = os.path.join(VENV, "bin", "vng")
    if not os.access(vng, os.X_OK):
        log(f"installing virtme-ng into {VENV}")
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "virtme-ng"], check=True)
    env = dict(os.environ)
    # vng runs virtme-run through the shell: the venv's bin must be on PATH.
    env["PATH"] = os.path.join(VENV, "bin") + os.pathsep + env.get("PATH", "")
    version = subprocess.run([vng, "--version"], capture_output=True, text=True, env=env).stdout.strip()
    return vng, env, version


def timed(argv, env=None, cwd=None):
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    return time.monotonic() - t0, r


def newest_kernel():
    kernels = sorted((os.path.join("/boot", k) for k in os.listdir("/boot") if k.startswith("vmlinuz-")), key=os.path.getmtime)
    return kernels[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--vng-rounds", type=int, default=3, help="rounds that also run vng (it takes ~25 s each)")
    ap.add_argument("--no-vng", action="store_true")
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--launch", help="a launch binary to use instead of the release build")
    ap.add_argument("--json", action="store_true")
    opts = ap.parse_args()

    launch = ensure_launch(opts.launch)
    kernel = newest_kernel()
    contenders = {
        "busybox": [launch, "run", "-q", "--accel", "tcg", PROFILE, "--", "true"],
        "host-root": [launch, "run", "-q", "--accel", "tcg", PROFILE, "--rootfs", "host", "--", opts.python, "-c", "pass"],
    }
    envs = {"busybox": None, "host-root": None}
    vng_version = None
    if not opts.no_vng:
        vng, vng_env, vng_version = ensure_vng()
        contenders["vng"] = [vng, "--run", kernel, "--disable-kvm", "--exec", f"{opts.python} -c pass"]
        envs["vng"] = vng_env

    # One warm-up each: caches (initramfs, vmlinux, the accelerator verdict) and page cache.
    for name, argv in contenders.items():
        t, r = timed(argv, env=envs[name], cwd=ROOT)
        if r.returncode != 0:
            sys.exit(f"{name} failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
        log(f"warm-up {name}: {t:.2f} s")

    times = {name: [] for name in contenders}
    for round_ in range(opts.rounds):
        for name, argv in contenders.items():
            if name == "vng" and round_ >= opts.vng_rounds:
                continue
            t, r = timed(argv, env=envs[name], cwd=ROOT)
            if r.returncode != 0:
                sys.exit(f"{name} failed in round {round_} (exit {r.returncode}):\n{r.stderr[-2000:]}")
            times[name].append(t)
            log(f"round {round_ + 1} {name}: {t:.2f} s")

    med = {name: statistics.median(ts) for name, ts in times.items()}
    base = med["busybox"]
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"Host root as the guest's userland, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, TCG, load average {' '.join(load)} at the end; `{opts.python} -c pass`"
          + (f"; {vng_version}" if vng_version else "") + ".\n")
    print("| contender | command | runs | median | min | max | / busybox guest |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    labels = {
        "busybox": "`launch run P -- true`",
        "host-root": f"`launch run P --rootfs host -- {opts.python} -c pass`",
        "vng": f"`vng --run KERNEL --disable-kvm --exec '{opts.python} -c pass'`",
    }
    for name, ts in times.items():
        print(f"| {name} | {labels[name]} | {len(ts)} | {med[name]:.2f} s | {min(ts):.2f} s | {max(ts):.2f} s | {med[name] / base:.2f}x |")
    if "vng" in med:
        print(f"\nhost-root against vng: {med['host-root'] / med['vng']:.2f}x (vng {med['vng'] / med['host-root']:.1f}x slower)")
    if opts.json:
        print(json.dumps({"times": times, "medians": med, "vng": vng_version, "python": opts.python}, indent=2))


if __name__ == "__main__":
    main()
