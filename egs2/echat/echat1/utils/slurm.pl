#!/usr/bin/env bash
# Submit a (array) job to Slurm with run.pl's interface and wait for it:
#   utils/slurm.pl [--config conf/slurm.conf] [--gpu N] [--mem 16G] [--num_threads N]
#                  [--num_nodes N] [--name NAME] [--time T] [--max-jobs-run N] JOB=1:4 log cmd...
# Options become sbatch options through the config file (ESPnet's conf/slurm.conf format,
# default conf/slurm.conf): e.g. --gpu 2 -> --gres=gpu:2, --num_nodes 2 -> --nodes 2
# --ntasks-per-node 1 (espnet2.bin.launch runs `slurm.pl --num_nodes N log srun ...` for
# multi-node training). Each array task runs `cmd` with JOB replaced by its index and writes
# its own log. Written for this recipe (the ESPnet wheel does not ship Kaldi's utils/).
set -euo pipefail
. "$(dirname "$0")/job_conf.sh"
job_conf_parse conf/slurm.conf "$@"
job_conf_apply "${job_conf}" "${job_opts[@]}"
read -ra submit <<< "${job_conf_command}"
opts=(--parsable --wait "${job_conf_opts[@]}")
setup="cd $(printf '%q' "${PWD}"); if [ -f path.sh ]; then . ./path.sh; fi"
if [ -n "${job_var}" ]; then
  opts+=(--array "${job_start}-${job_end}${job_max_run:+%${job_max_run}}")
  script="${setup}; log=\"${job_log//${job_var}/\$SLURM_ARRAY_TASK_ID}\"; c=\"${job_cmd//${job_var}/\$SLURM_ARRAY_TASK_ID}\"; eval \"\$c\" > \"\$log\" 2>&1"
  out_log="${job_log//${job_var}/%a}.slurm"
else
  script="${setup}; ${job_cmd} > '${job_log}' 2>&1"; out_log="${job_log}.slurm"
fi
"${submit[@]}" "${opts[@]}" -o "${out_log}" --wrap "${script}"
