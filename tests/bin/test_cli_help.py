"""Every CLI under espnet2_echat/bin answers --help, and none imports nltk or g2p_en for it.

ESPnet's ``espnet2.train.preprocessor`` (also pulled by ``espnet2.train.collate_fn``)
imports g2p_en and nltk, which cost seconds and try the network for nltk data on every
start; the CLIs import them only when they run. The time of each --help is reported (run
pytest with ``-s``), not asserted: the shared test machines are too noisy for that.
"""

import subprocess
import sys
import time

import pytest

from tests.helpers import REPO_ROOT

CLIS = sorted(
    p.stem for p in (REPO_ROOT / "espnet2_echat" / "bin").glob("*.py") if p.stem != "__init__"
)
PROBE = """
import runpy, sys
sys.argv = [{name!r}, "--help"]
try:
    runpy.run_module("espnet2_echat.bin." + {name!r}, run_name="__main__")
except SystemExit as e:
    code = e.code or 0
else:
    code = 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("nltk", "g2p_en"))
print("HEAVY_MODULES", " ".join(heavy[:5]), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.slow
def test_every_cli_help_is_light():
    times, problems = {}, []
    for name in CLIS:
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(name=name)],
            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        )
        times[name] = time.perf_counter() - start
        heavy = out.stderr.rsplit("HEAVY_MODULES", 1)[-1].strip()
        if out.returncode != 0 or "usage" not in out.stdout.lower():
            problems.append(f"{name}: exit {out.returncode}: {out.stderr[-500:]}")
        elif heavy:
            problems.append(f"{name}: --help imported {heavy}")
    print("\n--help wall time per CLI (s):")
    for name, seconds in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {name:32s} {seconds:6.2f}")
    assert len(CLIS) > 20 and not problems, "\n".join(problems)
