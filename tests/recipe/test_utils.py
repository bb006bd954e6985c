"""The recipe's own Kaldi-style utils: option parsing and the local job runner."""

import subprocess
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[2] / "egs2" / "echat" / "echat1"

SCRIPT = """set -euo pipefail
stage=1; use_lora=false; name=x
. utils/parse_options.sh
echo "stage=$stage use_lora=$use_lora name=$name rest=$*"
"""


def _bash(script, *args):
    return subprocess.run(["bash", "-c", script, "test", *args], cwd=RECIPE,
                          capture_output=True, text=True)


def test_parse_options_sets_known_variables():
    out = _bash(SCRIPT, "--stage", "3", "--use-lora", "true", "--name", "a b", "pos")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "stage=3 use_lora=true name=a b rest=pos"


def test_parse_options_rejects_unknown_and_bad_booleans():
    out = _bash(SCRIPT, "--bogus", "1")
    assert out.returncode != 0 and "invalid option --bogus" in out.stderr
    out = _bash(SCRIPT, "--use_lora", "maybe")
    assert out.returncode != 0 and "must be true or false" in out.stderr


def test_run_pl_array_job_and_failures(tmp_path):
    ok = subprocess.run([str(RECIPE / "utils/run.pl"), "JOB=1:3", str(tmp_path / "ok.JOB.log"),
                         "echo", "job", "JOB"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    for j in (1, 2, 3):
        log = (tmp_path / f"ok.{j}.log").read_text()
        assert f"job {j}\n" in log and "status=0" in log
    bad = subprocess.run([str(RECIPE / "utils/run.pl"), "JOB=1:2", str(tmp_path / "f.JOB.log"),
                          "test", "JOB", "-eq", "1"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "1 / 2 jobs failed" in bad.stderr and "f.2.log" in bad.stderr
