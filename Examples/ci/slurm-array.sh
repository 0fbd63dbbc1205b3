#!/usr/bin/env bash
# Slurm job array: shard K of N per array task. Submit from the repository's root:
#   sbatch --array=0-3 Examples/ci/slurm-array.sh Jobs/smoke.json reports
# then, when the array is done (sbatch --dependency=afterany:JOBID, or squeue empty):
#   launch report merge reports/shard-*.xml -o reports/all.xml --manifest Jobs/smoke.json
# --shard auto reads SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT and SLURM_ARRAY_TASK_MIN
# (so --array=1-4 works too). LAUNCH may name the launch binary (default: .build/release/launch).
#SBATCH --job-name=guest-suite
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
manifest=${1:?usage: slurm-array.sh MANIFEST REPORT-DIR}
reports=${2:?usage: slurm-array.sh MANIFEST REPORT-DIR}
launch=${LAUNCH:-.build/release/launch}
mkdir -p "$reports"
# The guest's exit code is launch's; a failing job still writes both reports.
exec "$launch" batch "$manifest" --shard auto --jobs "${SLURM_CPUS_PER_TASK:-1}" \
    --junit "$reports/shard-$SLURM_ARRAY_TASK_ID.xml" --json "$reports/shard-$SLURM_ARRAY_TASK_ID.json"
