"""``python -m espnet2_echat.bin.echat_inference`` end to end on a small data dir."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from espnet2.fileio.read_text import read_2columns_text

from espnet2_echat.inference import Request
from espnet2_echat.inference.batch_decode import decode_data_dir
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.reference

FIXTURE_BUDGET = ["--do_sample", "false", "--max_new_tokens", "20", "--max_new_speech_tokens", "30"]


def _key(i: int) -> str:
    """Data-dir key of the golden set's utterance ``i``."""
    return f"g{i:03d}"


def _keys(wavs) -> list:
    """Every key of :func:`data_dir`, sorted as the decode files are."""
    return [_key(i) for i in range(len(wavs))] + ["tone"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, wavs):
    """The golden set's utterances (keys ``g000``, ``g001``, ... in its order) and a
    generated 22.05 kHz tone (``tone``, sorted last), as a wav.scp."""
    root = tmp_path_factory.mktemp("data")
    lines = []
    for i, wav in enumerate(wavs):
        path = root / f"{_key(i)}.wav"
        sf.write(path, wav.numpy(), 16000, subtype="FLOAT")
        lines.append(f"{_key(i)} {path}")
    t = np.arange(int(22050 * 1.5)) / 22050
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * np.linspace(0, 1, t.size)).astype(np.float32)
    sf.write(root / "tone.wav", tone, 22050, subtype="FLOAT")
    lines.append(f"tone {root / 'tone.wav'}")
    (root / "wav.scp").write_text("\n".join(lines) + "\n")
    (root / "text").write_text("utt1 Hello there.\nutt2 How are you today?\n")
    return root


def test_cli_s2s_reproduces_the_fixture(data_dir, converted_dir, expected, fixed_s2r, wavs, tmp_path):
    out = tmp_path / "decode"
    cmd = [
        sys.executable,
        "-m",
        "espnet2_echat.bin.echat_inference",
        "--train_config",
        str(converted_dir / "config.yaml"),
        "--model_file",
        str(converted_dir / "model.pth"),
        "--data_path_and_name_and_type",
        f"{data_dir / 'wav.scp'},speech,sound",
        "--output_dir",
        str(out),
        "--task",
        "s2s",
        "--batch_size",
        "2",
        "--speech_ngram_blocking",
        "false",
        *FIXTURE_BUDGET,
    ]
    subprocess.run(cmd, check=True, cwd=REPO_ROOT, timeout=240)
    token_int = read_2columns_text(out / "token_int")
    speech = read_2columns_text(out / "speech_token")
    text = read_2columns_text(out / "text")
    assert list(text) == _keys(wavs)
    assert not (out / "think").exists()
    compared = 0
    for i, utt in enumerate(expected["utterances"]):
        spec = utt.get("tasks", {}).get("s2s")
        if spec is None:
            continue
        assert token_int[_key(i)].split() == [str(x) for x in spec["text_part_ids"][:-1]]
        assert speech[_key(i)].split() == [str(x) for x in spec["speech_part_ids"]]
        compared += 1
    assert compared, "the golden set decoded no utterance as s2s"
    # the generated tone (22.05 kHz, resampled) gives what the Python API gives
    tone, fs = sf.read(data_dir / "tone.wav", dtype="float32")
    api = fixed_s2r(
        speech=tone,
        fs=fs,
        task="s2s",
        do_sample=False,
        max_new_tokens=20,
        max_new_speech_tokens=30,
        speech_ngram_blocking=False,
    )
    assert token_int["tone"].split() == [str(x) for x in api.token_int]
    assert speech["tone"].split() == [str(x) for x in api.speech_token]
    assert text["tone"] == " ".join(api.text.split())


def test_decode_skips_finished_and_writes_think(data_dir, fixed_s2r, wavs, tmp_path, monkeypatch):
    out = tmp_path / "decode"
    keys = tmp_path / "keys"
    done = _keys(wavs)[-2]  # the golden set's last utterance is decoded first
    keys.write_text(f"{done} x\n")
    options = dict(do_sample=False, max_new_tokens=4, max_new_speech_tokens=4)
    inputs = [f"{data_dir / 'wav.scp'},speech,sound"]
    decode_data_dir(fixed_s2r, inputs, str(out), "s2t_chat", "tag", key_file=str(keys), **options)
    first = (out / "text").read_text()
    seen = []
    original = fixed_s2r.batch

    def counting(requests, *args, **kwargs):
        seen.append(len(requests))
        return original(requests, *args, **kwargs)

    monkeypatch.setattr(fixed_s2r, "batch", counting)
    decode_data_dir(fixed_s2r, inputs, str(out), "s2t_chat", "tag", batch_size=8, **options)
    assert seen == [len(_keys(wavs)) - 1]  # one was done
    text = read_2columns_text(out / "text")
    assert list(text) == _keys(wavs)
    assert first.startswith(f"{done} ") and first in (out / "text").read_text()
    assert list(read_2columns_text(out / "think")) == list(text)
    assert not (out / "speech_token").exists()


def test_decode_tts_from_text(data_dir, fixed_s2r, tmp_path):
    out = decode_data_dir(
        fixed_s2r,
        [f"{data_dir / 'text'},text,text"],
        str(tmp_path / "tts"),
        "tts",
        do_sample=False,
        max_new_speech_tokens=6,
    )
    speech = read_2columns_text(out / "speech_token")
    api = fixed_s2r.batch(
        [Request(text="Hello there.")], task="tts", do_sample=False, max_new_speech_tokens=6
    )[0]
    assert speech["utt1"].split() == [str(x) for x in api.speech_token]
    assert list(speech) == ["utt1", "utt2"]


def test_bad_data_spec_is_named(fixed_s2r, tmp_path):
    with pytest.raises(ValueError, match="PATH,NAME,TYPE"):
        decode_data_dir(fixed_s2r, ["wav.scp,speech"], str(tmp_path), "asr")
    with pytest.raises(ValueError, match="needs a 'question' input"):
        decode_data_dir(fixed_s2r, [f"{tmp_path}/wav.scp,speech,sound"], str(tmp_path), "t2t")


def test_decode_with_history(data_dir, fixed_s2r, wavs, tmp_path):
    """A data dir's ``history`` (JSON turns) gives the same decode as the API's turns."""
    import json

    from espnet2_echat.inference import Turn

    turn = {
        "user_wav": str(data_dir / f"{_key(0)}.wav"),
        "user_text": "hi",
        "reply": "Hello there.",
        "speech_token": [1, 2, 3],
    }
    (tmp_path / "history").write_text(f"{_key(1)} {json.dumps([turn])}\n")
    options = dict(do_sample=False, max_new_tokens=5, max_new_speech_tokens=5)
    out = decode_data_dir(
        fixed_s2r,
        [f"{data_dir / 'wav.scp'},speech,sound", f"{tmp_path / 'history'},history,text"],
        str(tmp_path / "dec"),
        "s2s",
        key_file=str(tmp_path / "history"),
        **options,
    )
    audio = fixed_s2r.encode_audio([wavs[0]])[0]
    turns = [Turn(fixed_s2r.layout.text("Hello there."), [1, 2, 3], audio, "hi")]
    api = fixed_s2r(speech=wavs[1].numpy(), task="s2s", history=turns, **options)
    assert read_2columns_text(out / "token_int")[_key(1)].split() == [str(i) for i in api.token_int]
    assert read_2columns_text(out / "speech_token")[_key(1)].split() == [
        str(i) for i in api.speech_token
    ]
    alone = fixed_s2r(speech=wavs[1].numpy(), task="s2s", **options)
    assert alone.ids != api.ids  # the history changed the prompt


def test_batches_are_filled_longest_first(data_dir, fixed_s2r, tmp_path, monkeypatch):
    inputs = [f"{data_dir / 'wav.scp'},speech,sound"]
    options = dict(do_sample=False, max_new_tokens=4, max_new_speech_tokens=4)
    decode_data_dir(fixed_s2r, inputs, str(tmp_path / "one"), "asr", batch_size=1, **options)
    seen = []
    original = fixed_s2r.batch

    def recording(requests, *args, **kwargs):
        seen.append([len(r.speech) / r.fs for r in requests])
        return original(requests, *args, **kwargs)

    monkeypatch.setattr(fixed_s2r, "batch", recording)
    decode_data_dir(fixed_s2r, inputs, str(tmp_path / "two"), "asr", batch_size=2, **options)
    durations = [d for batch in seen for d in batch]
    assert [len(b) for b in seen] == [2, 2] and durations == sorted(durations, reverse=True)
    for name in ("text", "token_int"):  # same answers, in utterance order
        assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text()


def test_one_model_load_decodes_every_job_of_a_list(data_dir, converted_dir, fixed_s2r, tmp_path, monkeypatch):
    """--jobs: one process, one model load, several data dirs (as the recipe's stage 9 runs
    it); each dir's outputs equal a decode of that dir alone."""
    from espnet2_echat.inference import batch_decode

    options = dict(do_sample=False, max_new_tokens=4, max_new_speech_tokens=6)
    keys = tmp_path / "keys"
    keys.write_text("tone\n")
    jobs = tmp_path / "jobs"
    jobs.write_text(
        f"# comment\n{tmp_path / 'a'} asr none {keys} {data_dir / 'wav.scp'},speech,sound\n\n"
        f"{tmp_path / 'b'} tts none - {data_dir / 'text'},text,text\n"
    )
    loads = []
    original = batch_decode.Speech2Response.__init__

    def counting(self, *args, **kwargs):
        loads.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(batch_decode.Speech2Response, "__init__", counting)
    summaries = batch_decode.inference(
        jobs=str(jobs), train_config=str(converted_dir / "config.yaml"),
        model_file=str(converted_dir / "model.pth"), **options,
    )
    assert len(loads) == 1 and [s.num_utts for s in summaries] == [1, 2]
    alone = decode_data_dir(fixed_s2r, [f"{data_dir / 'wav.scp'},speech,sound"],
                            str(tmp_path / "a1"), "asr", key_file=str(keys), **options)
    assert (tmp_path / "a" / "text").read_text() == (alone / "text").read_text()
    alone = decode_data_dir(fixed_s2r, [f"{data_dir / 'text'},text,text"], str(tmp_path / "b1"),
                            "tts", **options)
    assert (tmp_path / "b" / "speech_token").read_text() == (alone / "speech_token").read_text()


@pytest.mark.parametrize(
    "line, message",
    [
        ("out asr none -", "expected OUTPUT_DIR TASK THINK KEY_FILE PATH,NAME,TYPE"),
        ("out nosuchtask none - w.scp,speech,sound", "task"),
        ("out t2t none - w.scp,speech,sound", "needs a 'question' input"),
        ("out asr none - w.scp,speech", "PATH,NAME,TYPE"),
    ],
)
def test_a_bad_job_line_is_named_before_any_decoding(tmp_path, line, message):
    from espnet2_echat.inference.batch_decode import read_decode_jobs

    jobs = tmp_path / "jobs"
    jobs.write_text(f"o asr none - w.scp,speech,sound\n{line}\n")
    with pytest.raises(ValueError, match=f"{jobs}:2: .*{message}"):
        read_decode_jobs(str(jobs))


def test_one_prompt_is_refused_for_a_list_of_several_tasks(tmp_path):
    """--prompt is an instruction of one task: with jobs of two tasks it is refused before
    any model loads (the model files here do not exist)."""
    from espnet2_echat.inference.batch_decode import inference

    jobs = tmp_path / "jobs"
    jobs.write_text("a asr none - w.scp,speech,sound\nb gender none - w.scp,speech,sound\n")
    with pytest.raises(ValueError, match="lists several tasks"):
        inference(jobs=str(jobs), prompt="Say it.", train_config="none.yaml", model_file="none.pth")
