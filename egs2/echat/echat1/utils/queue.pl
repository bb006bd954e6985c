#!/usr/bin/env bash
# Grid Engine (qsub) back-end with run.pl's interface:
#   utils/queue.pl [--gpu N] [--mem 16G] [--num_threads N] [--name NAME] [--num_nodes N] JOB=1:4 log cmd...
# --num_nodes N asks the "mpi" parallel environment for N slots (espnet2.bin.launch runs
# `queue.pl --num_nodes N log mpirun -np N ...` for multi-node training).
# Written for this recipe; extra qsub options through $QUEUE_EXTRA (e.g. "-q all.q").
set -euo pipefail
gpu=0; mem=""; threads=1; nodes=1; name=""
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --gpu) gpu=$2 ;; --mem) mem=$2 ;; --num_threads|--num-threads) threads=$2 ;; --max-jobs-run) ;;
    --num_nodes|--num-nodes) nodes=$2 ;; --name) name=$2 ;;
    *) echo "queue.pl: unknown option $1" >&2; exit 1 ;;
  esac
  shift 2
done
range=""; if [[ $1 =~ ^([A-Za-z_]+)=([0-9]+):([0-9]+)$ ]]; then jobvar=${BASH_REMATCH[1]}; range="${BASH_REMATCH[2]}-${BASH_REMATCH[3]}"; shift; fi
log=$1; shift
cmd=$(printf '%q ' "$@")
mkdir -p "$(dirname "$log")"
opts=(-sync y -V -cwd -j y)
if [ "$nodes" != 1 ]; then opts+=(-pe mpi "$nodes"); else opts+=(-pe smp "$threads"); fi
[ -n "$name" ] && opts+=(-N "$name")
[ "$gpu" != 0 ] && opts+=(-l "gpu=$gpu")
[ -n "$mem" ] && opts+=(-l "mem_free=$mem")
if [ -n "$range" ]; then
  opts+=(-t "$range")
  script="c=\"${cmd//$jobvar/\$SGE_TASK_ID}\"; eval \"\$c\" > \"${log//$jobvar/\$SGE_TASK_ID}\" 2>&1"
else
  script="$cmd > '$log' 2>&1"
fi
# shellcheck disable=SC2086
echo "$script" | qsub "${opts[@]}" ${QUEUE_EXTRA:-} -o /dev/null
