"""Decoding under bad input: the API refuses NaN/inf and options out of range and scales
integer PCM; a missing model file is an error; batch decoding keeps every good utterance,
lists each bad one with its reason, exits 1 with a one-line summary, refuses a re-run with
other settings, and a run killed half-way ends, re-run, with each utterance exactly once."""

import numpy as np
import pytest
import soundfile as sf
import torch

from espnet2_echat.inference import batch_decode
from espnet2_echat.inference.audio_input import as_float_waveform
from espnet2_echat.inference.batch_decode import decode_data_dir
from espnet2_echat.inference.settings import default_options

pytestmark = pytest.mark.reference
SHORT = dict(do_sample=False, max_new_tokens=3)

BAD_ARRAYS = {
    "nan": np.array([0.1, np.nan] * 4000, dtype=np.float32),
    "inf": np.array([0.1, np.inf] * 4000, dtype=np.float64),
    "complex": np.ones(8000, dtype=np.complex64),
    "bool": np.ones(8000, dtype=bool),
    "object": np.array([0.1] * 8000, dtype=object),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_api_refuses_bad_samples(fixed_s2r, case):
    with pytest.raises(ValueError, match=r"request 0: .*(NaN or infinite|expected float or integer PCM)"):
        fixed_s2r(speech=BAD_ARRAYS[case], fs=16000, task="asr", **SHORT)


INT_CASES = {  # dtype, scale factor, offset: samples / scale - offset (as soundfile reads)
    "int16": (np.int16, 32768.0, 0),
    "int32": (np.int32, 2.0**31, 0),
    "uint8": (np.uint8, 128.0, 1),
}


@pytest.mark.parametrize("case", sorted(INT_CASES))
def test_api_scales_integer_pcm(fixed_s2r, wavs, case):
    dtype, scale, offset = INT_CASES[case]
    ints = np.round((wavs[0].numpy() + offset) * scale).clip(np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    expected = torch.from_numpy(ints.astype(np.float64) / scale - offset).float()
    got = fixed_s2r.prepare_waveform(ints, 16000, 0)
    assert torch.allclose(got, expected, atol=1e-6)
    assert (got - wavs[0]).abs().max() < 2.0 / scale  # the same audio, not off by 2**15


@pytest.mark.parametrize("fs", [0, -16000, 16000.5])
def test_api_refuses_bad_sample_rates(fixed_s2r, wavs, fs):
    with pytest.raises(ValueError, match="sample rate must be a positive integer"):
        fixed_s2r(speech=wavs[0].numpy(), fs=fs, task="asr", **SHORT)


BAD_OPTIONS = {
    "top_p_zero": (dict(top_p=0.0), "top_p=0.0 is out of range"),
    "top_p_big": (dict(top_p=1.5), "top_p=1.5 is out of range"),
    "temperature_zero": (dict(temperature=0.0), "temperature=0.0 is out of range"),
    "temperature_nan": (dict(temperature=float("nan")), "temperature=nan"),
    "top_k_negative": (dict(top_k=-1), "top_k=-1 is out of range"),
    "max_new_tokens_zero": (dict(max_new_tokens=0), "max_new_tokens=0 is out of range"),
    "repetition_penalty": (dict(repetition_penalty=-1.0), "repetition_penalty=-1.0"),
    "min_over_max": (dict(min_new_tokens=9, max_new_tokens=3), "min_new_tokens=9 exceeds"),
    "unknown": (dict(beam_size=4), "unknown decoding options"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_options_out_of_range_are_refused(case):
    options, message = BAD_OPTIONS[case]
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        default_options("asr").updated(options)


def test_no_model_file_is_an_error_not_random_weights(converted_dir, tmp_path):
    from espnet2_echat.bin.echat_inference import main
    from espnet2_echat.inference import Speech2Response

    with pytest.raises(FileNotFoundError, match="no model file given .*random_init=True"):
        Speech2Response(converted_dir / "config.yaml", None)
    with pytest.raises(FileNotFoundError, match="nothing.pth does not exist"):
        Speech2Response(converted_dir / "config.yaml", tmp_path / "nothing.pth")
    (tmp_path / "q").write_text("u1 Hi.\n")
    with pytest.raises(FileNotFoundError, match="no model file given"):
        main(["--train_config", str(converted_dir / "config.yaml"), "--task", "t2t",
              "--data_path_and_name_and_type", f"{tmp_path}/q,question,text",
              "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "text").exists()


@pytest.fixture
def data(tmp_path, wavs):
    """Five utterances; c is a missing file, d is not audio, ../e is an unsafe id."""
    d = tmp_path / "data"
    d.mkdir()
    for u in ("a", "b", "f"):
        sf.write(d / f"{u}.wav", wavs[0].numpy(), 16000)
    (d / "d.wav").write_bytes(b"RIFF not really")
    lines = [f"a {d}/a.wav", f"b {d}/b.wav", f"c {d}/missing.wav", f"d {d}/d.wav", f"f {d}/f.wav"]
    (d / "wav.scp").write_text("\n".join(lines) + "\n")
    return d


@pytest.mark.parametrize("batch_size", [1, 3])
def test_decode_keeps_good_utterances_and_lists_bad_ones(fixed_s2r, data, tmp_path, batch_size):
    out = decode_data_dir(fixed_s2r, [f"{data}/wav.scp,speech,sound"], str(tmp_path / "o"),
                          "asr", batch_size=batch_size, **SHORT)
    decoded = [ln.split()[0] for ln in (out / "text").read_text().splitlines()]
    assert decoded == ["a", "b", "f"]
    errors = dict(ln.split(" ", 1) for ln in (out / "errors").read_text().splitlines())
    assert sorted(errors) == ["c", "d"]
    assert "missing.wav" in errors["c"] and "utterance c" in errors["c"]
    assert "d.wav" in errors["d"]


def test_cli_exits_1_with_a_summary_line(converted_dir, data, tmp_path, capsys):
    from espnet2_echat.bin.echat_inference import main

    args = ["--train_config", str(converted_dir / "config.yaml"), "--model_file",
            str(converted_dir / "model.pth"), "--task", "asr", "--do_sample", "false",
            "--max_new_tokens", "2", "--data_path_and_name_and_type",
            f"{data}/wav.scp,speech,sound", "--output_dir", str(tmp_path / "o")]
    rc = main(args)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 1
    assert last.startswith("echat_inference: done 3, skipped 0, failed 2 in ")
    assert "3 of 5 utterances decoded, 2 failed" in last
    # a re-run skips the decoded utterances and tries the failed ones again
    assert main(args) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("echat_inference: done 0, skipped 3, failed 2 in ")


def test_unsafe_id_is_listed_not_written(fixed_s2r, data, tmp_path):
    (data / "wav.scp").write_text(f"../evil {data}/a.wav\na {data}/a.wav\n")
    out = decode_data_dir(fixed_s2r, [f"{data}/wav.scp,speech,sound"], str(tmp_path / "o"), "asr", **SHORT)
    assert (out / "text").read_text().startswith("a ")
    assert (out / "errors").read_text().startswith("../evil utterance id contains a path separator")


@pytest.mark.parametrize("change", [dict(task="emotion"), dict(think="tag", task="s2t_chat"), dict(model="other")])
def test_rerun_with_other_settings_is_refused(fixed_s2r, data, tmp_path, change, monkeypatch):
    spec = [f"{data}/wav.scp,speech,sound"]
    out = tmp_path / "o"
    (data / "wav.scp").write_text(f"a {data}/a.wav\n")
    decode_data_dir(fixed_s2r, spec, str(out), "asr", **SHORT)
    before = (out / "text").read_text()
    if "model" in change:
        monkeypatch.setattr(fixed_s2r, "model_file", "/elsewhere/model.pth")
    task, think = change.get("task", "asr"), change.get("think", "none")
    with pytest.raises(ValueError, match=f"{out} was decoded with other settings"):
        decode_data_dir(fixed_s2r, spec, str(out), task, think, **SHORT)
    assert (out / "text").read_text() == before


def test_decode_killed_half_way_then_rerun_gives_each_utterance_once(fixed_s2r, data, tmp_path, monkeypatch):
    """Killed in the middle of a batch's append (token_int written, text not) and with a
    torn last line in text; the re-run repairs, decodes the rest, and each id is there once."""
    for u in "bcdeg":
        sf.write(data / f"{u}.wav", np.zeros(8000, dtype=np.float32) + 0.01, 16000)
    (data / "wav.scp").write_text("".join(f"{u} {data}/{u}.wav\n" for u in "abcdefg"))
    spec, out = [f"{data}/wav.scp,speech,sound"], tmp_path / "o"
    real, calls = batch_decode._append, []

    def killed_on_third(out_dir, keys, responses, task, think):
        calls.append(keys)
        if len(calls) == 3:
            (out_dir / "token_int").open("a").write(f"{keys[0]} 1 2 3\n")
            (out_dir / "text").open("a").write(f"{keys[0]} torn li")
            raise KeyboardInterrupt
        real(out_dir, keys, responses, task, think)

    monkeypatch.setattr(batch_decode, "_append", killed_on_third)
    with pytest.raises(KeyboardInterrupt):
        decode_data_dir(fixed_s2r, spec, str(out), "asr", batch_size=2, **SHORT)
    monkeypatch.setattr(batch_decode, "_append", real)
    decode_data_dir(fixed_s2r, spec, str(out), "asr", batch_size=2, **SHORT)
    for name in ("text", "token_int"):
        ids = [ln.split(" ", 1)[0] for ln in (out / name).read_text().splitlines()]
        assert ids == list("abcdefg"), name
    assert "torn" not in (out / "text").read_text()


def test_as_float_waveform_keeps_float_input():
    x = np.linspace(-1, 1, 100, dtype=np.float64)
    assert np.array_equal(as_float_waveform(x), x.astype(np.float32))
