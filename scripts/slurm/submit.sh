#!/usr/bin/env bash
# Featurizes on a Slurm cluster: an array job of N tasks, each `featurizer --shard auto` (one
# N-th of the parts), then a finishing run that starts once every task has succeeded
# (--dependency=afterok), checks every part and writes features/_SUCCESS.
#
#   scripts/slurm/submit.sh N [featurizer flags...]
#   scripts/slurm/submit.sh 8 --work-dir /shared/work --weights /shared/resnet50-0676ba61.pth
#
# Run it from the folder the jobs should start in, on a filesystem every node sees; the jobs'
# logs (featurize-JOB_TASK.out) land there. FEATURIZER names the binary (default
# target/release/featurizer); SUBMIT_ARGS adds sbatch options to both jobs (e.g.
# SUBMIT_ARGS="--partition=cpu --cpus-per-task=8"). Prints the two job ids.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tasks=${1:?usage: submit.sh N [featurizer flags...]}
shift
read -ra extra <<< "${SUBMIT_ARGS:-}"
array=$(sbatch --parsable "${extra[@]}" --array=1-"$tasks" "$here/featurize.sbatch" "$@")
array=${array%%;*}
finish=$(sbatch --parsable "${extra[@]}" --dependency=afterok:"$array" --kill-on-invalid-dep=yes \
  --job-name=featurize-finish --output=featurize-finish-%j.out --export=ALL,SHARD=1/1 \
  "$here/featurize.sbatch" "$@")
echo "array job ${array} (${tasks} tasks), finishing job ${finish%%;*}"
