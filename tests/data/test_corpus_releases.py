"""Every supported corpus prepares from a miniature replica of its release layout
(``tests/corpus_replicas.py``) through the recipe's ``local/data.sh``, into data dirs with the
right utterances, texts, labels and roles; a failing or missing corpus does not stop the
others."""

import os
import subprocess
from pathlib import Path

import pytest

from espnet2_echat.data.datadir import read_kaldi_map, validate_data_dir
from tests.corpus_replicas import make_replicas

RECIPE = Path(__file__).resolve().parents[2] / "egs2" / "echat" / "echat1"


def data_sh(datadir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """Run local/data.sh as stage 1 does, with the corpus roots in the environment."""
    full_env = {**os.environ, **{k: "" for k in ("LIBRISPEECH", "LIBRITTS", "AISHELL",
                "COMMONVOICE", "MELD", "VOCALSOUND", "SEEDTTS_EVAL", "VOICEBENCH",
                "TEXT_DIALOGUE", "ECHAT")}, **env}
    cmd = [". ./path.sh && local/data.sh --datadir " + str(datadir) + " " + " ".join(args)]
    return subprocess.run(["bash", "-c", *cmd], cwd=RECIPE, env=full_env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("replicas")
    env, expected = make_replicas(root)
    out = data_sh(root / "data", env, "--asterisk_utts", "0")
    assert out.returncode == 0, out.stdout + out.stderr
    return root / "data", expected, out.stdout + out.stderr


def test_every_corpus_prepares_with_its_content(prepared):
    data, expected, _ = prepared
    roles = read_kaldi_map(data / "set_roles")
    assert sorted(roles) == sorted(expected)
    for name, exp in expected.items():
        d = data / name
        assert validate_data_dir(d, require_speech_tokens=False,
                                 require_targets=exp.role != "test") == [], name
        assert roles[name] == exp.role, name
        exp.check(d)


def test_release_specifics(prepared):
    data, _, log = prepared
    # LibriTTS stays 24 kHz and Common Voice 48 kHz mp3 until the format stage resamples
    assert next(iter(read_kaldi_map(data / "commonvoice_en_train" / "wav.scp").values())).endswith(".mp3")
    # MELD's clips are video: a pipe that decodes the audio track
    wav = next(iter(read_kaldi_map(data / "meld_test" / "wav.scp").values()))
    assert wav.startswith("ffmpeg ") and wav.endswith("|") and "output_repeated_splits_test" in wav
    # left-out items are reported with their count and reason, never silently
    logs = {p.name: p.read_text() for p in (data / "log").glob("*.log")}
    assert "1 item(s) left out: no clip under train_splits/" in logs["meld.log"]
    assert "1 item(s) left out: no age or gender label" in logs["commonvoice.log"]
    assert "1 item(s) left out: no transcript" in logs["aishell.log"]
    assert "1 item(s) left out: empty question or reply" in logs["text_dialogue.log"]
    # the subset without reference answers is kept, without a reply file
    assert not (data / "voicebench_alpacaeval" / "reply").exists()
    assert read_kaldi_map(data / "voicebench_sd_qa_usa" / "reply") == {
        "voicebench_sd_qa_usa-0000000": "Paris"}


def test_failing_and_missing_corpora_do_not_stop_the_others(tmp_path):
    env, expected = make_replicas(tmp_path, only=("LIBRISPEECH", "MELD", "VOCALSOUND"))
    csv = Path(env["MELD"]) / "MELD.Raw" / "dev_sent_emo.csv"
    csv.write_text(csv.read_text().replace(",neutral,neutral,", ",bored,neutral,"))
    env["VOCALSOUND"] = ""  # a root left empty
    out = data_sh(tmp_path / "data", env, "--asterisk_utts", "0")
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert "skip vocalsound: VOCALSOUND is empty in db.sh" in text
    assert "FAILED meld" in text and "bad row" in text
    assert "failed: meld" in text
    roles = read_kaldi_map(tmp_path / "data" / "set_roles")
    assert {n for n in roles if n.startswith("librispeech_")} == {
        n for n in expected if n.startswith("librispeech_")}
    # a re-run keeps the prepared corpus and retries only the failed one
    again = data_sh(tmp_path / "data", env, "--asterisk_utts", "0")
    assert "librispeech: already prepared" in again.stdout + again.stderr
    assert "FAILED meld" in again.stdout + again.stderr
