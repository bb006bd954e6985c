#!/usr/bin/env bash
# Grid Engine (qsub) back-end with run.pl's interface, waiting for the job (-sync y):
#   utils/queue.pl [--config conf/queue.conf] [--gpu N] [--mem 16G] [--num_threads N]
#                  [--num_nodes N] [--name NAME] JOB=1:4 log cmd...
# Options become qsub options through the config file (ESPnet's conf/queue.conf format,
# default conf/queue.conf): e.g. --gpu 2 -> -l gpu=2, --num_nodes 2 -> -pe mpi 2
# (espnet2.bin.launch runs `queue.pl --num_nodes N log mpirun -np N ...` for multi-node
# training; there --num_threads is left out: one parallel environment per job).
set -euo pipefail
. "$(dirname "$0")/job_conf.sh"
job_conf_parse conf/queue.conf "$@"
nodes=1
for kv in "${job_opts[@]}"; do [ "${kv%%=*}" = num_nodes ] && nodes=${kv#*=}; done
if [ "${nodes}" != 1 ]; then  # SGE takes one -pe: the mpi one
  kept=(); for kv in "${job_opts[@]}"; do [ "${kv%%=*}" = num_threads ] || kept+=("${kv}"); done
  job_opts=("${kept[@]}")
fi
job_conf_apply "${job_conf}" "${job_opts[@]}"
read -ra submit <<< "${job_conf_command}"
opts=(-sync y "${job_conf_opts[@]}")
setup="cd $(printf '%q' "${PWD}"); if [ -f path.sh ]; then . ./path.sh; fi"
if [ -n "${job_var}" ]; then
  opts+=(-t "${job_start}-${job_end}")
  [ -n "${job_max_run}" ] && opts+=(-tc "${job_max_run}")
  script="${setup}; c=\"${job_cmd//${job_var}/\$SGE_TASK_ID}\"; eval \"\$c\" > \"${job_log//${job_var}/\$SGE_TASK_ID}\" 2>&1"
else
  script="${setup}; ${job_cmd} > '${job_log}' 2>&1"
fi
# shellcheck disable=SC2086
echo "${script}" | "${submit[@]}" "${opts[@]}" ${QUEUE_EXTRA:-} -o /dev/null
