"""The format stage's job (ESPnet's format_wav_scp): files of any rate/format, pipes, ark
entries and segments become 16 kHz mono wavs; unreadable entries are listed with a reason."""

import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile
from scipy import signal

from espnet2_echat.bin.format_wav_scp import main as format_main
from espnet2_echat.data.datadir import read_kaldi_map


def tone(fs: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(fs * seconds)) / fs
    return 0.3 * np.sin(2 * np.pi * freq * t)


def peak_hz(wav: np.ndarray, fs: int) -> float:
    spec = np.abs(np.fft.rfft(wav))
    return float(np.argmax(spec) * fs / len(wav))


@pytest.fixture
def scp(tmp_path):
    """One entry of each kind, plus two that cannot be read."""
    src = tmp_path / "src"
    src.mkdir()
    soundfile.write(src / "a16k.wav", tone(16000, 0.5), 16000, subtype="PCM_16")
    soundfile.write(src / "b24k.wav", np.stack([tone(24000, 0.5)] * 2, 1), 24000)
    soundfile.write(src / "c48k.mp3", tone(48000, 0.5), 48000, format="MP3")
    soundfile.write(src / "d44k.flac", tone(44100, 0.5, 880.0), 44100, format="FLAC")
    pcm = (tone(8000, 0.5) * 32767).astype(np.int16)
    kaldiio.save_ark(str(src / "e.ark"), {"e": (8000, pcm)}, scp=str(src / "e.scp"))
    ark_entry = read_kaldi_map(src / "e.scp")["e"]
    lines = {
        "a": str(src / "a16k.wav"),
        "b": str(src / "b24k.wav"),
        "c": str(src / "c48k.mp3"),
        "d": str(src / "d44k.flac"),
        "e": ark_entry,
        "f": f"sox {src / 'b24k.wav'} -t wav -r 16000 -c 1 - |",
        "g": str(src / "missing.wav"),
        "h": "false |",
    }
    path = tmp_path / "wav.scp"
    path.write_text("".join(f"{k} {v}\n" for k, v in sorted(lines.items())))
    return path


def test_every_kind_of_entry_becomes_16k_mono(scp, tmp_path, capsys):
    out = tmp_path / "out"
    assert format_main([str(scp), str(out)]) == 0
    assert "format_wav_scp: done 6, skipped 0, failed 2 in " in capsys.readouterr().err
    written = read_kaldi_map(out / "wav.scp")
    assert sorted(written) == list("abcdef")
    lengths = read_kaldi_map(out / "utt2num_samples")
    for utt, path in written.items():
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), utt
        wav, _ = soundfile.read(path)
        assert int(lengths[utt]) == len(wav)
        assert abs(len(wav) - 8000) <= 1200, utt  # 0.5 s (mp3 adds encoder padding)
        assert abs(peak_hz(wav, 16000) - (880.0 if utt == "d" else 440.0)) < 5, utt
    # 16 kHz input is copied sample for sample
    a_in, _ = soundfile.read(Path(scp).parent / "src" / "a16k.wav", dtype="int16")
    a_out, _ = soundfile.read(written["a"], dtype="int16")
    assert np.array_equal(a_in, a_out)
    # 24 kHz resampled as scipy's polyphase filter does it (stereo averaged first)
    b_out, _ = soundfile.read(written["b"])
    expect = signal.resample_poly(tone(24000, 0.5), 2, 3)
    assert np.max(np.abs(b_out - expect)) < 2e-4
    dropped = read_kaldi_map(out / "dropped")
    assert sorted(dropped) == ["g", "h"]
    assert "does not exist" in dropped["g"] and "pipe exited with 1" in dropped["h"]


def test_segments_cut_the_recording(tmp_path):
    rec = np.concatenate([tone(16000, 0.5, 300.0), tone(16000, 0.5, 1200.0)])
    soundfile.write(tmp_path / "rec.flac", rec, 16000, format="FLAC")
    (tmp_path / "wav.scp").write_text(f"r1 {tmp_path / 'rec.flac'}\n")
    (tmp_path / "segments").write_text("r1-a r1 0.0 0.5\nr1-b r1 0.5 1.0\nr1-c r1 0.9 3.0\nr2-a r2 0 1\n")
    out = tmp_path / "out"
    assert format_main([str(tmp_path / "wav.scp"), str(out), "--segments",
                        str(tmp_path / "segments")]) == 0
    written = read_kaldi_map(out / "wav.scp")
    assert sorted(written) == ["r1-a", "r1-b"]
    a, _ = soundfile.read(written["r1-a"])
    b, _ = soundfile.read(written["r1-b"])
    assert len(a) == len(b) == 8000
    assert abs(peak_hz(a, 16000) - 300) < 5 and abs(peak_hz(b, 16000) - 1200) < 5
    dropped = read_kaldi_map(out / "dropped")
    assert "outside recording r1" in dropped["r1-c"] and "r2 is not in" in dropped["r2-a"]


@pytest.mark.skipif(subprocess.run(["which", "ffmpeg"], capture_output=True).returncode,
                    reason="ffmpeg is not installed (make setup installs it)")
def test_mp4_pipe_as_meld_writes_it(tmp_path):
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "local"))
    from meld import ffmpeg_pipe

    from tests.corpus_replicas import write_mp4

    clip = write_mp4(tmp_path / "dia 1_utt0.mp4", "hello there")  # a space in the path
    (tmp_path / "wav.scp").write_text(f"m1 {ffmpeg_pipe(clip)}\n")
    assert format_main([str(tmp_path / "wav.scp"), str(tmp_path / "out")]) == 0
    info = soundfile.info(read_kaldi_map(tmp_path / "out" / "wav.scp")["m1"])
    assert (info.samplerate, info.channels) == (16000, 1) and info.duration > 0.3


def test_history_turn_audio_is_formatted(tmp_path, capsys):
    import json

    soundfile.write(tmp_path / "u24k.wav", tone(24000, 0.5), 24000)
    turn = {"user_wav": str(tmp_path / "u24k.wav"), "user_text": "hi", "reply": "hello",
            "speech_token": [1, 2]}
    bad = dict(turn, reply_wav=str(tmp_path / "missing.wav"))
    (tmp_path / "history").write_text(
        f"u1 {json.dumps([turn, turn])}\nu2 {json.dumps([bad])}\n")
    jobs = tmp_path / "jobs"
    jobs.write_text(f"{tmp_path / 'history'} {tmp_path / 'out'} history\n")
    assert format_main(["--jobs_file", str(jobs)]) == 0
    turns = json.loads(read_kaldi_map(tmp_path / "out" / "history")["u1"])
    assert turns[0]["user_wav"] == turns[1]["user_wav"] != turn["user_wav"]  # formatted once
    info = soundfile.info(turns[0]["user_wav"])
    assert (info.samplerate, info.channels) == (16000, 1) and turns[0]["reply"] == "hello"
    dropped = read_kaldi_map(tmp_path / "out" / "dropped")
    assert list(dropped) == ["u2"] and "history turn 0 reply_wav" in dropped["u2"]
    assert "format_wav_scp: done 1, skipped 0, failed 1 in " in capsys.readouterr().err
