# Job runners: local (run.pl), slurm (slurm.pl) or sge (queue.pl), as ESPnet's cmd.sh; the
# scheduler options come from conf/slurm.conf / conf/queue.conf. Usage in the recipe:
#   ${train_cmd} [--gpu N] JOB=1:N log.JOB.log command ...
# Multi-node training goes through espnet2.bin.launch (--num_nodes with slurm or sge, or
# --host h1,h2 over ssh).
cmd_backend=${cmd_backend:-local}
case ${cmd_backend} in
    local) export train_cmd="run.pl" cuda_cmd="run.pl" decode_cmd="run.pl" ;;
    slurm) export train_cmd="slurm.pl --config conf/slurm.conf" cuda_cmd="slurm.pl --config conf/slurm.conf" \
               decode_cmd="slurm.pl --config conf/slurm.conf" ;;
    sge)   export train_cmd="queue.pl --config conf/queue.conf" cuda_cmd="queue.pl --config conf/queue.conf" \
               decode_cmd="queue.pl --config conf/queue.conf" ;;
    *) echo "cmd.sh: unknown cmd_backend=${cmd_backend}" >&2; return 1 ;;
esac
