"""echat.sh's training and decoding stages through the cluster job runners, exercised: fake
``sbatch``/``srun``/``qsub``/``mpirun``/``ssh`` on PATH record their arguments and run the
job here (srun and mpirun once per node, with the environment the real ones give), so the
stages complete; the trainer and decoder are stand-ins (a ``--python`` wrapper) that record
their arguments and environment, everything else (``espnet2.bin.launch``, the data-dir
helpers) is the real thing.

What must reach the runner: the GPU request (``--gres=gpu:N`` / ``-l gpu=N`` from
``conf/slurm.conf`` / ``conf/queue.conf``), the node count (``--nodes N`` / ``-pe mpi N``),
one training process per node with ESPnet's launcher options, and one ssh call per rank
for ``--host``; decoding with ``--gpu_inference true`` asks for one GPU per job.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "egs2" / "echat" / "echat1"

# Each fake writes one JSON line per call ({"tool", "argv", "env"}) to $FAKE_RECORD.
RECORD = r'''
record() { python3 - "$FAKE_RECORD" "$@" <<'PY'
import json, os, sys
keys = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_NUM_NODES", "SLURM_ARRAY_TASK_ID",
        "SGE_TASK_ID", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"tool": sys.argv[2], "argv": sys.argv[3:],
                        "env": {k: os.environ[k] for k in keys if k in os.environ}}) + "\n")
PY
}
'''
FAKES = {
    # sbatch --wait: run the --wrap script (per array index), with the node count in the env
    "sbatch": r'''
record sbatch "$@"
nodes=1; array=""; wrap=""
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) nodes=$2; shift ;; --array) array=${2%%%*}; shift ;; --wrap) wrap=$2; shift ;;
    -o|--job-name|--time|--mem-per-cpu|--cpus-per-task|--ntasks-per-node|--partition) shift ;;
  esac; shift
done
rc=0
for i in $(if [ -n "$array" ]; then seq ${array%-*} ${array#*-}; else echo 1; fi); do
  SLURM_ARRAY_TASK_ID=$i SLURM_JOB_NUM_NODES=$nodes bash -c "$wrap" || rc=1
done
echo 12345; exit $rc
''',
    # srun: one task per node of the job, with Slurm's step environment
    "srun": r'''
record srun "$@"
[ "$1" = --export=ALL ] && shift
n=${SLURM_JOB_NUM_NODES:-1}; pids=()
for r in $(seq 0 $((n - 1))); do
  SLURM_PROCID=$r SLURM_NTASKS=$n SLURM_NODEID=$r SLURM_LOCALID=0 SLURM_STEP_NUM_NODES=$n \
    SLURM_STEP_NODELIST=localhost "$@" & pids+=($!)
done
rc=0; for p in "${pids[@]}"; do wait $p || rc=1; done; exit $rc
''',
    # qsub -sync y: the script comes on stdin, run once per -t index
    "qsub": r'''
record qsub "$@"
range=""; while [ $# -gt 0 ]; do [ "$1" = -t ] && range=$2; shift; done
script=$(cat); rc=0
for i in $(if [ -n "$range" ]; then seq ${range%-*} ${range#*-}; else echo 1; fi); do
  SGE_TASK_ID=$i bash -c "$script" || rc=1
done; exit $rc
''',
    # mpirun -np N cmd: N copies with Open MPI's rank variables
    "mpirun": r'''
record mpirun "$@"
[ "$1" = -np ] && { n=$2; shift 2; } || n=1; pids=()
for r in $(seq 0 $((n - 1))); do
  OMPI_COMM_WORLD_RANK=$r OMPI_COMM_WORLD_SIZE=$n OMPI_COMM_WORLD_LOCAL_RANK=0 "$@" & pids+=($!)
done
rc=0; for p in "${pids[@]}"; do wait $p || rc=1; done; exit $rc
''',
    # ssh HOST CMD: run CMD here
    "ssh": r'''
record ssh "$@"
shift; exec bash -c "$*"
''',
}
# the recipe's --python: trainer and decoder stand-ins, the rest real
STAND_IN = r'''
case "$1 $2" in
  "-m espnet2_echat.bin.echat_train"|"-m espnet2_echat.bin.echat_inference")
    record python "$@"; exit 0 ;;
esac
exec "$REAL_PYTHON" "$@"
'''


@pytest.fixture
def cluster(tmp_path):
    """PATH with the fakes, the stand-in python, a dump dir of one stage-1 training set,
    one valid set and one ASR test set; returns a runner of echat.sh and the call log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {**FAKES, "python": STAND_IN}.items():
        (bin_dir / name).write_text("#!/usr/bin/env bash\n" + RECORD + body)
        (bin_dir / name).chmod(0o755)
    for name in ("train_asr", "valid_asr", "test_asr"):
        d = tmp_path / "dump" / name
        d.mkdir(parents=True)
        (d / "task").write_text("u1 <TRANSCRIBE>\n")
        (d / "text").write_text("u1 hello\n")
        (d / "wav.scp").write_text("u1 /dev/null\n")
    record = tmp_path / "calls.jsonl"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_RECORD": str(record),
           "REAL_PYTHON": sys.executable}

    def run(backend: str, *args: str):
        record.write_text("")
        exp = tmp_path / f"exp_{backend}_{len(list(tmp_path.glob('exp_*')))}"
        cmd = ["./echat.sh", "--python", str(bin_dir / "python"), "--dumpdir",
               str(tmp_path / "dump"), "--expdir", str(exp), "--train_sets", "train_asr",
               "--valid_sets", "valid_asr", "--test_sets", "test_asr", *args]
        out = subprocess.run(cmd, cwd=RECIPE, env={**env, "cmd_backend": backend},
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        calls = [json.loads(line) for line in record.read_text().splitlines()]
        return calls, exp

    return run


def _calls(calls, tool):
    return [c for c in calls if c["tool"] == tool]


def _option(argv, name):
    return argv[argv.index(name) + 1]


def _trainers(calls):
    return [c for c in _calls(calls, "python") if "espnet2_echat.bin.echat_train" in c["argv"]]


def test_slurm_training_on_two_nodes_with_two_gpus_each(cluster):
    calls, exp = cluster("slurm", "--stage", "5", "--stop_stage", "5", "--ngpu", "2",
                         "--num_nodes", "2")
    (sbatch,) = _calls(calls, "sbatch")
    argv = sbatch["argv"]
    assert "--gres=gpu:2" in argv                      # conf/slurm.conf: option gpu=*
    assert _option(argv, "--nodes") == "2" and _option(argv, "--ntasks-per-node") == "1"
    assert _option(argv, "--job-name") == "echat_stage1_understanding"
    assert "srun" in _option(argv, "--wrap")
    (srun,) = _calls(calls, "srun")
    trainers = _trainers(calls)
    assert sorted(c["env"]["SLURM_PROCID"] for c in trainers) == ["0", "1"]  # one per node
    for c in trainers:
        a = c["argv"]
        assert _option(a, "--ngpu") == "2" and _option(a, "--dist_launcher") == "slurm"
        assert _option(a, "--multiprocessing_distributed") == "true"
        assert _option(a, "--dist_init_method").startswith(f"file://{exp}/echat_stage1_understanding/.dist_init_")
        assert _option(a, "--output_dir") == f"{exp}/echat_stage1_understanding"
    assert (exp / "echat_stage1_understanding" / ".done").exists()


def test_sge_training_on_two_nodes_with_two_gpus_each(cluster):
    calls, exp = cluster("sge", "--stage", "5", "--stop_stage", "5", "--ngpu", "2",
                         "--num_nodes", "2")
    (qsub,) = _calls(calls, "qsub")
    argv = " ".join(qsub["argv"])
    assert "-l gpu=2" in argv                          # conf/queue.conf: option gpu=*
    assert "-pe mpi 2" in argv and "-pe smp" not in argv
    assert "-N echat_stage1_understanding" in argv
    (mpirun,) = _calls(calls, "mpirun")
    assert mpirun["argv"][:2] == ["-np", "2"]
    trainers = _trainers(calls)
    assert sorted(c["env"]["OMPI_COMM_WORLD_RANK"] for c in trainers) == ["0", "1"]
    for c in trainers:
        assert _option(c["argv"], "--ngpu") == "2"
        assert _option(c["argv"], "--dist_launcher") == "mpi"
    assert (exp / "echat_stage1_understanding" / ".done").exists()


def test_ssh_hosts_get_one_call_per_rank(cluster):
    calls, exp = cluster("local", "--stage", "5", "--stop_stage", "5", "--ngpu", "2",
                         "--host", "node-a,node-b")
    ssh = _calls(calls, "ssh")
    assert sorted(c["argv"][0] for c in ssh) == ["node-a", "node-a", "node-b", "node-b"]
    trainers = _trainers(calls)
    ranks = sorted(int(_option(c["argv"], "--dist_rank")) for c in trainers)
    assert ranks == [0, 1, 2, 3]
    for c in trainers:
        a = c["argv"]
        assert _option(a, "--dist_world_size") == "4" and _option(a, "--ngpu") == "1"
        assert _option(a, "--local_rank") in ("0", "1")


@pytest.mark.parametrize("backend, request_text", [("slurm", "--gres=gpu:1"), ("sge", "-l gpu=1")])
def test_gpu_inference_reaches_the_scheduler(cluster, tmp_path, backend, request_text):
    model = tmp_path / "m" / "model.pth"
    calls, _ = cluster(backend, "--stage", "9", "--stop_stage", "9", "--skip_train", "true",
                       "--pretrained_model", str(model), "--gpu_inference", "true",
                       "--inference_nj", "2")
    (submit,) = _calls(calls, "sbatch" if backend == "slurm" else "qsub")
    assert request_text in " ".join(submit["argv"])
    decoders = [c for c in _calls(calls, "python")
                if "espnet2_echat.bin.echat_inference" in c["argv"]]
    assert len(decoders) == 2  # the array job ran both decoding jobs
    assert all(_option(c["argv"], "--ngpu") == "1" for c in decoders)
    calls, _ = cluster(backend, "--stage", "9", "--stop_stage", "9", "--skip_train", "true",
                       "--pretrained_model", str(tmp_path / "n" / "model.pth"))
    (submit,) = _calls(calls, "sbatch" if backend == "slurm" else "qsub")
    asked = [a for a in submit["argv"] if a.startswith(("--gres", "gpu="))]
    assert not asked, asked  # no GPU asked for a CPU decode
