"""echat.sh's interface: --help lists every option with its default, every listed option is
accepted, the header's stage table matches the stages the code runs, and the asr.sh-style
skip gates leave their stages out."""

import re
import subprocess
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[2] / "egs2" / "echat" / "echat1"
SCRIPT = (RECIPE / "echat.sh").read_text()


def options() -> dict:
    block = SCRIPT.split("# <options>", 1)[1].split("# </options>", 1)[0]
    found = {}
    for line in block.splitlines():
        m = re.match(r'^([a-z0-9_]+)=("[^"]*"|\S*)', line)
        if m:
            found[m.group(1)] = m.group(2).strip('"')
    return found


def echat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["./echat.sh", *args], cwd=RECIPE, capture_output=True, text=True,
                          timeout=120)


def test_help_lists_every_option_with_its_default():
    out = echat("--help")
    assert out.returncode == 0
    text = out.stdout + out.stderr
    opts = options()
    # the options asr.sh users type
    for name in ("train_set", "train_sets", "valid_set", "valid_sets", "test_sets", "skip_data_prep",
                 "skip_train", "skip_eval", "skip_packing", "skip_upload_hf", "num_nodes", "nj",
                 "ngpu", "gpu_inference", "inference_nj", "stage", "stop_stage", "skip_stages"):
        assert name in opts, name
    for name, default in opts.items():
        shown = f'"{default}"' if (default == "" or " " in default) else default
        assert f"--{name} ({shown})" in text, name
    # every variable the script parses is in the block (nothing undocumented)
    head = SCRIPT.split(". utils/parse_options.sh", 1)[0]
    assigned = set(re.findall(r"^([a-z0-9_]+)=", head, re.M))
    assert assigned - set(opts) <= {"SECONDS", "help_message"}


def test_every_option_is_accepted():
    args = []
    for name, default in options().items():
        args += [f"--{name}", default]
    out = echat(*args, "--stage", "3", "--stop_stage", "1", "--train_sets", "a", "--test_sets", "b")
    assert out.returncode == 0, out.stderr
    assert "train: a" in out.stdout and "test:  b" in out.stdout


def test_header_stage_table_matches_the_code():
    header = SCRIPT.split("set -euo pipefail", 1)[0]
    table = dict(re.findall(r"(\d+) ([a-z0-9].*?)(?=\s{2,}\d+ |\s*$)", header, re.M))
    assert sorted(map(int, table)) == list(range(1, 13))
    logged = {}
    for n, text in re.findall(r'log "Stage (\d+): ([^"$]*)', SCRIPT):
        logged.setdefault(n, text)
    for n in range(1, 13):
        assert f"run_stage {n}" in SCRIPT or n == 5 and "train_stage 5" in SCRIPT, n
        words = set(re.findall(r"[a-z]+", table[str(n)].lower())) - {"the", "of", "and", "every"}
        assert words & set(re.findall(r"[a-z]+", logged[str(n)].lower())), (n, table[str(n)])


def test_skip_gates_leave_their_stages_out(tmp_path):
    common = ["--datadir", str(tmp_path / "d"), "--dumpdir", str(tmp_path / "u"), "--expdir",
              str(tmp_path / "e"), "--train_sets", "x", "--test_sets", "y"]
    out = echat(*common, "--stage", "1", "--stop_stage", "4", "--skip_data_prep", "true")
    assert out.returncode == 0, out.stderr
    assert "Stage " not in out.stdout
    out = echat(*common, "--stage", "9", "--stop_stage", "12", "--skip_eval", "true",
                "--skip_packing", "true", "--skip_upload_hf", "true")
    assert out.returncode == 0, out.stderr
    assert "Stage " not in out.stdout
    out = echat(*common, "--stage", "1", "--stop_stage", "4", "--skip_stages", "1 2 3 4")
    assert out.returncode == 0 and "Stage " not in out.stdout


def test_gpu_inference_asks_the_job_runner_for_a_gpu(tmp_path):
    """Stage 9 with --gpu_inference true: each decoding job requests one GPU from the job
    runner (run.pl logs the request; slurm.pl/queue.pl turn it into --gres/-l gpu) and
    decodes with --ngpu 1. The decoder itself is a stand-in that records its arguments."""
    import os

    dump = tmp_path / "dump" / "some_test_set"
    dump.mkdir(parents=True)
    (dump / "task").write_text("u1 <TRANSCRIBE>\n")
    (dump / "text").write_text("u1 hello\n")
    fake = tmp_path / "python"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'if [[ " $* " == *" espnet2_echat.bin.echat_inference "* ]]; then echo "ARGS $*"; exit 0; fi\n'
        f'exec {os.environ.get("PYTHON", "python3")} "$@"\n'
    )
    fake.chmod(0o755)
    logs = {}
    for flag in ("true", "false"):
        exp = tmp_path / f"exp_{flag}"
        out = echat("--stage", "9", "--stop_stage", "9", "--skip_train", "true",
                    "--pretrained_model", str(exp / "m" / "model.pth"), "--python", str(fake),
                    "--dumpdir", str(tmp_path / "dump"), "--expdir", str(exp),
                    "--test_sets", "some_test_set", "--gpu_inference", flag)
        assert out.returncode == 0, out.stdout + out.stderr
        logs[flag] = (exp / "m" / "decode_model" / "logdir" / "inference.1.log").read_text()
    assert "# Requested: --gpu 1" in logs["true"] and "--ngpu 1" in logs["true"]
    jobs = (exp / "m" / "decode_model" / "logdir" / "jobs.1").read_text().split()
    assert jobs[1:3] == ["asr", "none"]  # the task from the set's own task file
    assert "Requested" not in logs["false"] and "--ngpu 0" in logs["false"]
