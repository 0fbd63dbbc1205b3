#!/usr/bin/env bash
# The QMP client and supervision benchmarks in one go: builds the release binaries and the Python venv
# under .build-bench-supervision/ (git-ignored), then runs Benchmarks/supervision.py, which writes
# Benchmarks/RESULTS-supervision.md. Arguments go to supervision.py (--quick, --only rtt,spawn,
# --no-write, --help, ...).
#
#   bash Benchmarks/run-supervision.sh            # the full run, about 10 to 15 minutes
#   bash Benchmarks/run-supervision.sh --quick    # a look, about 3 minutes
#
# Needs: swift, qemu-system-x86_64, python3 with venv, network access to PyPI once
# (qemu.qmp), and for the launch section what `launch` needs (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SCRATCH=.build-bench-supervision

for tool in swift qemu-system-x86_64 python3; do
    command -v "$tool" >/dev/null || { echo "run-supervision: $tool is not installed" >&2; exit 1; }
done

echo "run-supervision: building launch-bench and launch (release, --scratch-path $SCRATCH)" >&2
swift build -c release --scratch-path "$SCRATCH" --product launch-bench >&2
swift build -c release --scratch-path "$SCRATCH" --product launch >&2

if [ ! -x "$SCRATCH/venv/bin/python" ]; then
    echo "run-supervision: creating $SCRATCH/venv" >&2
    python3 -m venv "$SCRATCH/venv"
fi
if ! "$SCRATCH/venv/bin/python" -c 'import qemu.qmp' 2>/dev/null; then
    echo "run-supervision: installing qemu.qmp from PyPI into $SCRATCH/venv" >&2
    "$SCRATCH/venv/bin/pip" install --quiet qemu.qmp
fi

exec "$SCRATCH/venv/bin/python" Benchmarks/supervision.py "$@"
