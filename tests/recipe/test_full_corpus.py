"""README's full-size commands, run as shown on espeak-ng replicas of every corpus's release
layout: stages 1-4 with --corpus full give validated 16 kHz data dirs with the right
utterances and labels, and stage 5 trains the tiny model on them for a few steps."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import soundfile

from espnet2_echat.data.datadir import read_kaldi_map, validate_data_dir
from tests.corpus_replicas import make_replicas

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "egs2" / "echat" / "echat1"
MARK = "<!-- tested: tests/recipe/test_full_corpus.py -->"

pytestmark = pytest.mark.slow


def readme_commands() -> list:
    """The ./run.sh lines of the README block marked as tested by this file."""
    text = (ROOT / "README.md").read_text()
    block = text.split(MARK, 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    cmds = [shlex.split(line) for line in block.splitlines() if line.startswith("./run.sh")]
    assert len(cmds) == 2 and all("--corpus" in c for c in cmds)
    return cmds


@pytest.fixture(scope="module")
def recipe(module_tmp):
    work = module_tmp("full")
    env, expected = make_replicas(work / "corpora")
    # one unreadable recording: the format stage must drop and report it, not stop
    broken = next(Path(env["LIBRISPEECH"]).glob("LibriSpeech/train-clean-100/*/*/*-0001.flac"))
    broken.write_bytes(b"not audio")
    expected["librispeech_train_clean_100"].texts.pop(broken.stem)
    expected["librispeech_train_clean_100"].labels["utt2gender"].pop(broken.stem)
    run_env = {**os.environ, **env, "OMP_NUM_THREADS": "1"}
    # where this test writes, and a small stand-in tokenizer; the README's options come first,
    # so everything it shows is what runs (later options only redirect outputs)
    extra = ["--datadir", str(work / "data"), "--dumpdir", str(work / "dump"), "--expdir",
             str(work / "exp"), "--standin_vocab_size", "16", "--nj", "2",
             "--local_data_opts", "--asterisk_utts 0"]
    outs = []
    for cmd in readme_commands():
        out = subprocess.run(cmd + extra, cwd=RECIPE, env=run_env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
        outs.append(out.stdout + out.stderr)
    return work, expected, outs, broken.stem


def test_data_dirs_of_every_corpus(recipe):
    work, expected, outs, broken = recipe
    dump = work / "dump"
    for name, exp in expected.items():
        d = dump / name
        assert (d / ".done").exists(), name
        tokens = exp.role != "test"
        assert validate_data_dir(d, speech_token_vocab=16, expected_fs=16000,
                                 require_speech_tokens=tokens, require_targets=tokens) == [], name
        exp.check(d)
        dropped = read_kaldi_map(d / "dropped") if (d / "dropped").stat().st_size else {}
        if name == "librispeech_train_clean_100":
            assert list(dropped) == [broken] and "wav.scp: cannot read" in dropped[broken]
            assert f"{name}: 2 utterances, 1 kept, 1 dropped" in outs[0]
        else:
            assert dropped == {}, name
        if (d / "wav.scp").exists():
            for path in read_kaldi_map(d / "wav.scp").values():
                info = soundfile.info(path)
                assert (info.samplerate, info.channels) == (16000, 1), (name, path)
    # TTS data (LibriTTS, 24 kHz) got speech tokens from a stand-in trained on it
    tts = read_kaldi_map(dump / "libritts_train_clean_100" / "speech_token")
    assert len(tts) == 2 and all(0 <= int(t) < 16 for v in tts.values() for t in v.split())
    assert "training the STAND-IN k-means speech tokenizer (K=16) on" in outs[0]
    assert re.search(r"STAND-IN.*libritts_train_clean_100", outs[0])


def test_stage5_trains_on_the_understanding_sets(recipe):
    work, expected, outs, _ = recipe
    exp = work / "exp" / "echat_stage1_understanding"
    assert (exp / "valid.loss.ave.pth").exists() and (exp / ".done").exists()
    line = next(ln for ln in outs[1].splitlines() if "trains on:" in ln)
    trains = set(line.split("trains on:")[1].split(";")[0].split())
    stage1 = {n for n, e in expected.items() if e.role == "train" and e.task in (
        "<TRANSCRIBE>", "<TRANSCRIBE> <AGE> <GENDER>", "<TRANSCRIBE> <EMOTION>", "<CAPTION>")}
    assert trains == stage1
    log = (exp / "train.log").read_text()
    assert "1epoch results" in log and "status=0" in log
