"""What the benchmark scripts share about this host: building what they run, and
naming the CPU they ran on."""

import subprocess
import sys
import time


def build_with_retries(cmd, root, log):
    """Runs the build command `cmd` in `root`; on a failure (a concurrent edit on a
    shared machine, say) waits a minute and tries again, three times in all."""
    for attempt in range(3):
        r = subprocess.run(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode == 0:
            return
        log(r.stdout[-3000:])
        if attempt < 2:
            log("build failed (a concurrent edit?); retrying in 60 s")
            time.sleep(60)
    sys.exit("build failed")


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or "?"."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"
