# Job runners used by run.sh: ${train_cmd}, ${cuda_cmd}, ${decode_cmd} (one interface for every backend):
#   ${cuda_cmd} [--gpu N] [--mem M] [--time T] [--num_threads K] [--max_jobs_run K] JOB=1:N log.JOB.log cmd... JOB
# Pick the backend with RELLM_CMD_BACKEND=local|slurm (default local), or put site settings in an
# ignored cmd.local.sh next to run.sh (sourced last, so it may redefine any of the three).
# Slurm options: conf/slurm.conf, plus an ignored conf/slurm.local.conf for partitions and accounts.
# Every recipe's cmd.sh is a link to egs/TEMPLATE/cmd.sh (test/consistency checks it).

cmd_backend=${RELLM_CMD_BACKEND:-local}
case "${cmd_backend}" in
    local)  # this machine; --gpu N gives each task N GPUs of its own; --mem/--time have no effect
        train_cmd="utils/run.py"
        cuda_cmd="utils/run.py"
        decode_cmd="utils/run.py"
        ;;
    slurm)  # one sbatch array job per call; waits for it and checks every task
        train_cmd="utils/slurm.py --config conf/slurm.conf"
        cuda_cmd="utils/slurm.py --config conf/slurm.conf"
        decode_cmd="utils/slurm.py --config conf/slurm.conf"
        ;;
    *)
        echo "ERROR: RELLM_CMD_BACKEND=${cmd_backend}: expected 'local' or 'slurm'" >&2
        return 1
        ;;
esac

if [ -f cmd.local.sh ]; then
    . ./cmd.local.sh
fi
