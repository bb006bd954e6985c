"""A token2wav attached to Speech2Response: whole replies, streamed replies, the CLI."""

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml
from espnet2.fileio.read_text import read_2columns_text

from espnet2_echat.inference import Speech2Response
from espnet2_echat.inference.speech2response import FIRST_HOP_LEN
from espnet2_echat.inference.batch_decode import decode_data_dir
from espnet2_echat.tasks.token2wav import Token2WavTask

pytestmark = pytest.mark.reference

CONF = Path(__file__).resolve().parents[2] / "conf" / "token2wav" / "train_tiny.yaml"
DECODE = dict(do_sample=False, max_new_tokens=5, speech_ngram_blocking=False)


def samples(n_tokens: int) -> int:
    """Waveform length of n 25 Hz tokens at 22.05 kHz (256-sample frames)."""
    return int(n_tokens / 25 * 22050 / 256) * 256


@pytest.fixture(scope="module")
def t2w_dir(tmp_path_factory):
    """A randomly initialised tiny token2wav (stand-in vocoder): config.yaml + model.pth."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("t2w")
    model_conf = yaml.safe_load(CONF.read_text(encoding="utf-8"))["model_conf"]
    parser = Token2WavTask.get_parser()
    model = Token2WavTask.build_model(parser.parse_args(["--model_conf", str(model_conf)]))
    t = np.arange(22050) / 22050
    wav = torch.from_numpy((0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32))
    prompt_tokens = torch.tensor([1, 2, 3, 4] * 5)
    prompt = model.prompt_from_wav(wav, 22050, prompt_token=prompt_tokens)
    model.store_prompt(prompt)
    model_conf.update(prompt_num_frames=prompt.prompt_feat.shape[1], prompt_num_tokens=20)
    with (out / "config.yaml").open("w") as f:
        yaml.safe_dump(Token2WavTask.default_config(model_conf), f)
    torch.save(model.state_dict(), out / "model.pth")
    return out


@pytest.fixture(scope="module")
def voiced(converted_dir, t2w_dir):
    """The fixture LLM with the tiny token2wav attached."""
    return Speech2Response(
        converted_dir / "config.yaml",
        converted_dir / "model.pth",
        token2wav_train_config=t2w_dir / "config.yaml",
        token2wav_model_file=t2w_dir / "model.pth",
    )


def test_reply_is_voiced(voiced, wavs):
    out = voiced(speech=wavs[0].numpy(), task="s2s", max_new_speech_tokens=30, **DECODE)
    assert out.sample_rate == 22050 and out.wav.dtype == np.float32
    assert len(out.wav) == samples(len(out.speech_token)) > 0
    text_only = voiced(speech=wavs[0].numpy(), task="asr", do_sample=False, max_new_tokens=3)
    assert text_only.wav is None


def test_streamed_audio_starts_before_the_reply_ends(voiced, wavs):
    """Without overlap decoding pauses for each chunk, so audio comes before the last tokens
    on every run (with overlap where it comes depends on timing: see the next test)."""
    chunks = list(
        voiced.stream(
            speech=wavs[1].numpy(),
            task="s2s",
            max_new_speech_tokens=90,
            synthesis_nthreads=0,
            **DECODE,
        )
    )
    kinds = [
        "wav" if c.wav is not None else "speech" if c.speech_token else "other" for c in chunks
    ]
    assert "wav" in kinds
    assert kinds.index("wav") < max(i for i, k in enumerate(kinds) if k == "speech")
    final = chunks[-1].final
    assert final.wav is not None
    assert len(final.wav) == sum(len(c.wav) for c in chunks if c.wav is not None)
    assert abs(len(final.wav) - samples(len(final.speech_token))) < 2 * 256 * 4


def test_cli_writes_wav_scp(voiced, wavs, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    soundfile.write(data / "a.wav", wavs[2].numpy(), 16000)
    (data / "wav.scp").write_text(f"uttA {data / 'a.wav'}\n")
    out = decode_data_dir(
        voiced,
        [f"{data / 'wav.scp'},speech,sound"],
        str(tmp_path / "dec"),
        "s2s",
        max_new_speech_tokens=20,
        **DECODE,
    )
    scp = read_2columns_text(out / "wav.scp")
    tokens = read_2columns_text(out / "speech_token")["uttA"].split()
    wav, fs = soundfile.read(scp["uttA"])
    assert fs == 22050 and len(wav) == samples(len(tokens))


def test_reference_compat_reaches_the_token2wav(voiced, converted_dir, t2w_dir):
    """``reference_compat=True`` is a preset: the token2wav it loads streams as the reference
    (34-frame flow cache, first hop of the reference), not only the LLM parts."""
    compat = Speech2Response(
        converted_dir / "config.yaml",
        converted_dir / "model.pth",
        reference_compat=True,
        token2wav_train_config=t2w_dir / "config.yaml",
        token2wav_model_file=t2w_dir / "model.pth",
    )
    assert compat.token2wav.reference_compat and not voiced.token2wav.reference_compat
    assert compat.token2wav.first_token_hop_len is None  # the reference's first hop (50)
    assert voiced.token2wav.first_token_hop_len == FIRST_HOP_LEN
    assert compat.quirks.all_on and not voiced.quirks.token2wav_reference_streaming


def test_streamed_audio_equals_the_unstreamed_audio(voiced, wavs):
    """A reply within the first chunk (< hop + overlap tokens) streams exactly the offline
    audio; a longer one streams exactly the chunked synthesis of its final tokens (audio
    does not depend on when tokens arrived during decoding), which differs from offline
    synthesis only by CosyVoice's chunk-boundary cross-fades: same length within 4 frames."""
    speech = wavs[1].numpy()
    first_chunk = voiced.token2wav.first_token_hop_len + 20
    short = dict(DECODE, max_new_speech_tokens=first_chunk - 5)
    final = list(voiced.stream(speech=speech, task="s2s", **short))[-1].final
    offline = voiced(speech=speech, task="s2s", **short)
    assert final.speech_token == offline.speech_token and len(final.speech_token) > 3
    np.testing.assert_array_equal(final.wav, offline.wav)

    long = dict(DECODE, max_new_speech_tokens=3 * first_chunk)
    final = list(voiced.stream(speech=speech, task="s2s", **long))[-1].final
    offline = voiced(speech=speech, task="s2s", **long)
    assert final.speech_token == offline.speech_token
    assert len(final.speech_token) > first_chunk + voiced.token2wav.first_token_hop_len
    chunked = np.concatenate(list(voiced.token2wav.stream([final.speech_token])))
    np.testing.assert_array_equal(final.wav, chunked)
    assert abs(len(final.wav) - len(offline.wav)) < 4 * 256


def _events(chunks):
    """(kind, payload) of each streamed chunk."""
    out = []
    for c in chunks:
        if c.wav is not None:
            out.append(("wav", c.wav))
        elif c.speech_token:
            out.append(("speech", list(c.speech_token)))
        elif c.final is not None:
            out.append(("final", c.final))
        else:
            out.append(("text", c.text))
    return out


def test_overlapped_synthesis_streams_the_same_audio_in_order(voiced, wavs):
    """Synthesis on its own thread beside decoding yields the same text and speech-token
    events in the same order as the paused stream, the same audio chunks, each after the
    speech tokens it was made from.

    Both synthesise on 1 thread, so the audio is bitwise equal: with other thread counts
    the flow's mel differs by float32 round-off, which the Griffin-Lim stand-in vocoder's
    phase search amplifies to ~0.3 in single samples (seen: 1 vs 2 threads, both paused)."""
    speech = wavs[1].numpy()
    opts = dict(task="s2s", max_new_speech_tokens=110, **DECODE)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        paused = _events(voiced.stream(speech=speech, synthesis_nthreads=0, **opts))
        overlapped = _events(voiced.stream(speech=speech, synthesis_nthreads=1, **opts))
        assert torch.get_num_threads() == 1  # the caller's threads are left as they were
    finally:
        torch.set_num_threads(before)
    assert [e for e in overlapped if e[0] in ("text", "speech")] == [
        e for e in paused if e[0] in ("text", "speech")
    ]
    assert overlapped[-1][0] == "final" and paused[-1][0] == "final"
    wav_p = [w for k, w in paused if k == "wav"]
    wav_o = [w for k, w in overlapped if k == "wav"]
    assert len(wav_p) == len(wav_o) >= 3
    for a, b in zip(wav_p, wav_o):
        np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(overlapped[-1][1].wav, np.concatenate(wav_o))

    def speech_before_each_wav(events):
        counts, seen = [], 0
        for kind, payload in events:
            seen += len(payload) if kind == "speech" else 0
            if kind == "wav":
                counts.append(seen)
        return counts

    # the paused stream yields each chunk as soon as its tokens exist: never earlier
    assert all(
        o >= p for o, p in zip(speech_before_each_wav(overlapped), speech_before_each_wav(paused))
    )


@pytest.mark.parametrize("synthesis_nthreads", [0, 1])
def test_closing_the_stream_early_leaves_no_synthesiser_running(voiced, wavs, synthesis_nthreads):
    """A client gone mid-reply: closing the generator stops the synthesis thread at once."""
    stream = voiced.stream(
        speech=wavs[1].numpy(),
        task="s2s",
        max_new_speech_tokens=110,
        synthesis_nthreads=synthesis_nthreads,
        **DECODE,
    )
    for chunk in stream:
        if chunk.speech_token:
            break
    assert any(t.name == "echat-voice" for t in threading.enumerate())
    stream.close()
    assert not any(t.name == "echat-voice" for t in threading.enumerate())
