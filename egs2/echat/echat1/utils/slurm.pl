#!/usr/bin/env bash
# Submit a (array) job to Slurm with run.pl's interface and wait for it:
#   utils/slurm.pl [--gpu N] [--mem 16G] [--num_threads N] [--time 2-00:00:00] [--partition P]
#                  [--num_nodes N] [--name NAME] JOB=1:4 log cmd...
# --gpu N asks each node for N GPUs (--gres gpu:N); --num_nodes N runs one task per node (the
# way espnet2.bin.launch starts multi-node training: `slurm.pl --num_nodes N log srun ...`).
# Each array task runs `cmd` with JOB replaced by its index and writes its own log.
# Written for this recipe (the ESPnet wheel does not ship Kaldi's utils/); extra sbatch options
# can be given through $SLURM_EXTRA (e.g. "--account=foo").
set -euo pipefail
gpu=0; mem=""; threads=1; time_limit=""; partition=""; nodes=1; name=""
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --gpu) gpu=$2 ;; --mem) mem=$2 ;; --num_threads|--num-threads) threads=$2 ;;
    --time) time_limit=$2 ;; --partition) partition=$2 ;; --max-jobs-run) ;;
    --num_nodes|--num-nodes) nodes=$2 ;; --name) name=$2 ;;
    *) echo "slurm.pl: unknown option $1" >&2; exit 1 ;;
  esac
  shift 2
done
range=""; if [[ $1 =~ ^([A-Za-z_]+)=([0-9]+):([0-9]+)$ ]]; then jobvar=${BASH_REMATCH[1]}; range="${BASH_REMATCH[2]}-${BASH_REMATCH[3]}"; shift; fi
log=$1; shift
cmd=$(printf '%q ' "$@")
mkdir -p "$(dirname "$log")"
opts=(--parsable --wait --cpus-per-task "$threads")
[ "$gpu" != 0 ] && opts+=(--gres "gpu:$gpu")
[ -n "$mem" ] && opts+=(--mem "$mem")
[ -n "$time_limit" ] && opts+=(--time "$time_limit")
[ -n "$partition" ] && opts+=(--partition "$partition")
[ "$nodes" != 1 ] && opts+=(--nodes "$nodes" --ntasks-per-node 1)
[ -n "$name" ] && opts+=(--job-name "$name")
if [ -n "$range" ]; then
  opts+=(--array "$range")
  script="log=\"${log//$jobvar/\$SLURM_ARRAY_TASK_ID}\"; c=\"${cmd//$jobvar/\$SLURM_ARRAY_TASK_ID}\"; eval \"\$c\" > \"\$log\" 2>&1"
  out_log="${log//$jobvar/%a}.slurm"
else
  script="$cmd > '$log' 2>&1"; out_log="$log.slurm"
fi
# shellcheck disable=SC2086
sbatch "${opts[@]}" ${SLURM_EXTRA:-} -o "$out_log" --wrap "$script"
