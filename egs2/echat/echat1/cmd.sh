# Job runners: local (run.pl), slurm (slurm.pl) or sge (queue.pl). Usage in the recipe:
#   ${train_cmd} [--gpu N] JOB=1:N log.JOB.log command ...
cmd_backend=${cmd_backend:-local}
case ${cmd_backend} in
    local) export train_cmd="run.pl" cuda_cmd="run.pl" decode_cmd="run.pl" ;;
    slurm) export train_cmd="slurm.pl" cuda_cmd="slurm.pl" decode_cmd="slurm.pl" ;;
    sge)   export train_cmd="queue.pl" cuda_cmd="queue.pl" decode_cmd="queue.pl" ;;
    *) echo "cmd.sh: unknown cmd_backend=${cmd_backend}" >&2; return 1 ;;
esac
