"""Every CLI under espnet2_echat/bin answers --help fast, without its heavy imports.

The heavy modules (torch, transformers, ESPnet's task/trainer modules, nltk and g2p_en that
ESPnet's preprocessor pulls, gradio, librosa, scipy) are imported only after the arguments
are parsed. The ESPnet-task CLIs print their parser's stored text (``espnet2_echat.task_help``),
which is checked here against the live parser. One subprocess runs every CLI's ``--help``
and reports the modules it imported; the wall time of each ``--help`` in its own process
is reported as a table (run pytest with ``-s``), not asserted: shared machines are noisy.
"""

import json
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO_ROOT

CLIS = sorted(
    p.stem for p in (REPO_ROOT / "espnet2_echat" / "bin").glob("*.py") if p.stem != "__init__"
)
HEAVY = (
    "torch", "torchaudio", "transformers", "espnet2.tasks", "espnet2.train.preprocessor",
    "nltk", "g2p_en", "gradio", "librosa", "scipy",
)
# Runs each CLI's --help in one process, in turn; after each, the heavy modules that
# appeared are charged to that CLI (the first CLI that imports one fails the test).
ALL_IN_ONE = """
import contextlib, io, json, runpy, sys, time
heavy, out, seen = {heavy!r}, {{}}, set()
for name in {clis!r}:
    {inject}
    sys.argv = [name + ".py", "--help"]
    stdout, start = io.StringIO(), time.perf_counter()
    try:
        with contextlib.redirect_stdout(stdout):
            runpy.run_module("espnet2_echat.bin." + name, run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code or 0
    loaded = sorted(h for h in heavy if h in sys.modules and h not in seen)
    seen.update(loaded)
    out[name] = {{"code": code, "usage": "usage:" in stdout.getvalue(),
                 "seconds": time.perf_counter() - start, "heavy": loaded}}
print(json.dumps(out))
"""


def test_no_cli_imports_heavy_modules_for_help(tmp_path, monkeypatch):
    """No CLI imports a heavy module for --help. A task CLI whose stored help is stale
    (``tasks/*.py`` edited since it was written) builds its parser once: it is reported and
    left out of the check until ``python -m espnet2_echat.task_help`` rewrites the text."""
    from espnet2_echat.task_help import TASK_CLIS, stored_help

    monkeypatch.setenv("ECHAT_CACHE_DIR", str(tmp_path))
    stale = [cli for cli in TASK_CLIS if stored_help(cli) is None]
    proc = subprocess.run(
        [sys.executable, "-c", ALL_IN_ONE.format(heavy=HEAVY, clis=CLIS, inject="pass")],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = [
        f"{name}: exit {r['code']}, usage printed: {r['usage']}, heavy imports: {r['heavy']}"
        for name, r in report.items()
        if r["code"] != 0 or not r["usage"] or (r["heavy"] and name not in stale)
    ]
    if stale:
        print(f"\nstale stored --help (run `python -m espnet2_echat.task_help`): {stale}")
    print("\n--help in one process, seconds per CLI (imports shared with earlier CLIs):")
    for name, r in report.items():
        print(f"  {name:32s} {r['seconds']:6.2f}")
    assert len(report) == len(CLIS) > 20 and not problems, "\n".join(problems)


def test_no_heavy_module_check_can_fail():
    """The probe sees a heavy import: importing torch is charged to the CLI that did it."""
    inject = f"if name == {CLIS[1]!r}: import torch"
    proc = subprocess.run(
        [sys.executable, "-c", ALL_IN_ONE.format(heavy=HEAVY, clis=CLIS[:3], inject=inject)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [report[name]["heavy"] for name in CLIS[:3]] == [[], ["torch"], []]


@pytest.mark.parametrize("cli", ["echat_train", "token2wav_train"])
def test_stored_task_help_is_the_parsers(cli):
    """The stored --help text, when its stamp says it is current, equals what the task's
    ESPnet parser prints now. A task module edited since makes the stamp stale: the CLI
    then answers --help with the (slow) real parser, and this test skips saying so."""
    from espnet2_echat.task_help import HELP_DIR, live_help, stored_help

    assert (HELP_DIR / f"{cli}.txt").is_file()
    stored = stored_help(cli)
    if stored is None:
        pytest.skip(f"stored --help of {cli} is stale (ESPnet or tasks/*.py changed): "
                    "run `python -m espnet2_echat.task_help`")
    assert stored == live_help(cli), (
        f"{cli}'s options changed: run `python -m espnet2_echat.task_help` to rewrite its help"
    )


def test_stored_help_only_for_help_alone(capsys, tmp_path, monkeypatch):
    """--help alone prints the stored text; a stale one is replaced by the parser's, kept in
    the cache for the next call; any other command line goes to the real parser."""
    from espnet2_echat import task_help

    monkeypatch.setenv("ECHAT_CACHE_DIR", str(tmp_path))
    task_help.answer_help("echat_train", ["--config", "x.yaml", "--help"])  # not --help alone
    with pytest.raises(SystemExit) as e:
        task_help.answer_help("echat_train", ["--help"])
    assert e.value.code == 0 and "usage: echat_train.py" in capsys.readouterr().out
    monkeypatch.setenv("ECHAT_CACHE_DIR", str(tmp_path / "fresh"))
    monkeypatch.setattr(task_help, "stored_help", lambda cli: None)  # stale
    monkeypatch.setattr(task_help, "live_help", lambda cli: "usage: live\n")
    for _ in range(2):
        with pytest.raises(SystemExit):
            task_help.answer_help("echat_train", ["-h"])
        assert capsys.readouterr().out == "usage: live\n"
    assert [p.read_text() for p in (tmp_path / "fresh" / "task_help").iterdir()] == ["usage: live\n"]


@pytest.mark.slow
def test_report_help_wall_time_per_cli():
    """Each CLI's ``python -m ... --help`` in its own process: reported, exit 0 asserted."""
    times, failed = {}, []
    for name in CLIS:
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", f"espnet2_echat.bin.{name}", "--help"],
            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        )
        times[name] = time.perf_counter() - start
        if out.returncode != 0 or "usage" not in out.stdout.lower():
            failed.append(f"{name}: exit {out.returncode}: {out.stderr[-300:]}")
    print("\n--help wall time per CLI, own process (s):")
    for name, seconds in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {name:32s} {seconds:6.2f}")
    assert not failed, "\n".join(failed)
