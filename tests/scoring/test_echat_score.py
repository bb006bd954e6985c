"""echat_score end to end on small data + decode dirs written here, and RESULTS.md."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet2_echat.scoring.results import write_results_md
from espnet2_echat.scoring.score_decode import ScoreOptions, score_decode_dir
from espnet2_echat.scoring.task_spec import CLI_TASKS, resolve_task, spec_from_tag

REPO = Path(__file__).resolve().parents[2]
TAIL = "我应该综合用户的语义和副语言信息给出专业且对应的回答"
SECRET = "sk-never-print-me"


def write_dir(path: Path, files: dict) -> Path:
    """Write Kaldi-style ``uttid value`` files (sorted by utterance)."""
    path.mkdir(parents=True, exist_ok=True)
    for name, entries in files.items():
        with open(path / name, "w", encoding="utf-8") as f:
            f.writelines(f"{u} {v}\n" for u, v in sorted(entries.items()))
    return path


def test_task_resolution():
    assert spec_from_tag("<TRANSCRIBE>") == CLI_TASKS["asr"]
    assert spec_from_tag("<CAPTION>") == CLI_TASKS["event"]
    assert spec_from_tag("<S2TCHAT> <TEXT2TOKEN> <THINK>").name == "s2s"
    assert spec_from_tag("<S2TCHAT> <THINKER>").name == "s2t_chat"
    assert spec_from_tag("<TEXT2TOKEN>").name == "tts"
    both = spec_from_tag("<TRANSCRIBE> <AGE> <GENDER>")
    assert (both.name, both.transcribe, both.labels) == (
        "asr+age+gender",
        True,
        ("age", "gender"),
    )
    with pytest.raises(ValueError, match="u2"):
        resolve_task({"u1": "<TRANSCRIBE>", "u2": "<EMOTION>"}, ["u1", "u2"])
    assert (
        resolve_task(
            {"u1": "<TRANSCRIBE>", "u2": "<EMOTION>"}, ["u1", "u2"], "emotion"
        ).name
        == "emotion"
    )


def test_asr_set(tmp_path):
    data = write_dir(
        tmp_path / "test_clean",
        {
            "wav.scp": {"s1-a": "/x/a.wav", "s1-b": "/x/b.wav", "s2-c": "/x/c.wav"},
            "utt2spk": {"s1-a": "s1", "s1-b": "s1", "s2-c": "s2"},
            "text": {
                "s1-a": "THE CAT SAT ON THE MAT",
                "s1-b": "HELLO WORLD",
                "s2-c": "GOOD MORNING",
            },
            "task": {u: "<TRANSCRIBE>" for u in ("s1-a", "s1-b", "s2-c")},
        },
    )
    # decode lost s2-c: 2 deletions; s1-a: 1 sub + 1 del; s1-b: right -> 4 errors / 10 words
    decode = write_dir(
        tmp_path / "decode",
        {"text": {"s1-a": "the cat sit on mat", "s1-b": "hello, world!"}},
    )
    out = tmp_path / "score"
    res = score_decode_dir(data, decode, out, ScoreOptions())
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == res
    assert (res["task"], res["num_utts"]) == ("asr", 3)
    assert res["metrics"]["wer"] == pytest.approx(40.0)
    assert res["metrics"]["missing_outputs"] == 1.0
    trn = (out / "score_wer" / "hyp.trn").read_text(encoding="utf-8")
    assert "(s1-s1-a)" in trn and "(s2-s2-c)" in trn  # ESPnet's (spk-utt) ids
    assert "Sum/Avg" in (out / "score_wer" / "result.txt").read_text(encoding="utf-8")
    assert (out / "results.md").read_text(encoding="utf-8").startswith("### asr")
    # only the decoded keys: s1-a (2 errors / 6) and s1-b (0 / 2)
    (tmp_path / "keys").write_text("s1-a\ns1-b\n")
    res = score_decode_dir(
        data, decode, tmp_path / "s2", ScoreOptions(key_file=tmp_path / "keys")
    )
    assert res["num_utts"] == 2 and res["metrics"]["wer"] == pytest.approx(25.0)
    assert res["metrics"]["missing_outputs"] == 0.0


def test_emotion_set(tmp_path):
    utts = ["u1", "u2", "u3", "u4"]
    data = write_dir(
        tmp_path / "meld",
        {
            "wav.scp": {u: f"/x/{u}.wav" for u in utts},
            "task": {u: "<EMOTION>" for u in utts},
            "utt2emotion": {
                "u1": "<HAPPY>",
                "u2": "<HAPPY>",
                "u3": "<SAD>",
                "u4": "<ANGRY>",
            },
        },
    )
    decode = write_dir(
        tmp_path / "decode",
        {"text": {"u1": "<HAPPY>", "u2": "<SAD>", "u3": "<sad>", "u4": "none"}},
    )
    out = tmp_path / "score"
    m = score_decode_dir(data, decode, out, ScoreOptions())["metrics"]
    assert m["emotion_accuracy"] == pytest.approx(50.0)
    assert m["emotion_macro_f1"] == pytest.approx(100 * 4 / 9)
    assert (out / "confusion_emotion.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "keys").write_text("u1\nu3\n")  # both right
    opts = ScoreOptions(key_file=tmp_path / "keys")
    m = score_decode_dir(data, decode, tmp_path / "s2", opts)["metrics"]
    assert m["emotion_accuracy"] == 100.0


def test_s2s_tag_think_cli_with_judge(tmp_path, stub):
    utts = ["u1", "u2"]
    data = write_dir(
        tmp_path / "echat_eval",
        {
            "wav.scp": {u: f"/x/{u}.wav" for u in utts},
            "text": {"u1": "我今天很难过", "u2": "I feel great today"},
            "task": {u: "<S2TCHAT> <TEXT2TOKEN> <THINK>" for u in utts},
            "reply": {"u1": "别难过，我陪着你。", "u2": "That is wonderful to hear"},
            "reply_emotion": {"u1": "<安慰鼓励>", "u2": "<开心>"},
            "utt2age": {"u1": "<CHILD>", "u2": "<ADULT>"},
            "utt2emotion": {"u1": "<SAD>", "u2": "<HAPPY>"},
        },
    )
    cot1 = f"用户说的话是:我今天很难过,年龄为:<CHILD>,性别为:<FEMALE>,情感为:<SAD>,声音事件为:<OTHER>,推测使用的回复情感为:<安慰鼓励>,{TAIL}"
    cot2 = f"用户说的话是:I feel good today,年龄为:<OLD>,性别为:<MALE>,情感为:<HAPPY>,声音事件为:<OTHER>,推测使用的回复情感为:<中立>,{TAIL}"
    wavs = {}
    for u, seconds in (("u1", 1.0), ("u2", 2.0)):
        t = np.arange(int(seconds * 16000)) / 16000
        soundfile.write(
            tmp_path / f"gen_{u}.wav",
            (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32),
            16000,
        )
        wavs[u] = str(tmp_path / f"gen_{u}.wav")
    decode = write_dir(
        tmp_path / "decode",
        {
            "text": {
                "u1": "<安慰鼓励>别难过，我陪着你。",
                "u2": "<中立>That is great to hear",
            },
            "think": {"u1": cot1, "u2": cot2},
            "speech_token": {"u1": "1 2 3 4", "u2": "5 6"},
            "wav.scp": wavs,
        },
    )
    # judge answers in order: u1 emotion, u1 multi, u2 emotion, u2 multi
    stub.script = [
        ("content", '{"score": 90}'),
        ("status", 429, "0"),
        ("content", "Score: 70"),
        ("content", '{"score": 50}'),
        ("content", "80/100"),
    ]
    env = dict(
        os.environ,
        ECHAT_JUDGE_BASE_URL=f"http://127.0.0.1:{stub.server_address[1]}",
        ECHAT_JUDGE_MODEL="stub",
        ECHAT_JUDGE_API_KEY=SECRET,
    )
    out = tmp_path / "score"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "espnet2_echat.bin.echat_score",
            "--data_dir",
            str(data),
            "--decode_dir",
            str(decode),
            "--out_dir",
            str(out),
            "--judge",
            "endpoint",
            "--judge_dimensions",
            "emotion",
            "multi",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert SECRET not in proc.stdout + proc.stderr
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    m = res["metrics"]
    assert (
        res["task"] == "s2s"
        and res["info"]["think"] == "tag"
        and res["info"]["judge_rubric"] == "echat_eval_v1"
    )
    # replies: u1 exact (7 CJK units); u2 "great" vs "wonderful": 1 sub of 5 words
    assert m["reply_wer"] == pytest.approx(100 * 1 / 12)
    assert m["reply_emotion_accuracy"] == pytest.approx(50.0)  # leading tags
    assert m["cot_parsed_rate"] == 100.0
    assert m["cot_age_accuracy"] == pytest.approx(50.0)
    assert m["cot_emotion_accuracy"] == 100.0
    assert m["cot_reply_emotion_accuracy"] == pytest.approx(50.0)
    assert m["cot_transcript_wer"] == pytest.approx(
        100 * 1 / 10
    )  # 6 CJK units + 4 words
    assert m["speech_token_len_mean"] == pytest.approx(3.0)
    assert m["duration_mean_s"] == pytest.approx(1.5)
    assert "asr_wer" not in m  # no --asr_model
    assert m["judge_emotion"] == pytest.approx(70.0) and m[
        "judge_multi"
    ] == pytest.approx(75.0)
    assert len(stub.requests) == 5


def test_results_md(tmp_path):
    sets = [
        (
            "decode_asr/test_clean",
            {"task": "asr", "num_utts": 3, "metrics": {"wer": 40.0, "cer": None}},
        ),
        (
            "decode_emotion/meld",
            {"task": "emotion", "num_utts": 4, "metrics": {"emotion_accuracy": 50.0}},
        ),
        (
            "decode_s2s/echat_eval",
            {"task": "s2s", "num_utts": 2, "metrics": {"judge_multi": 75.0}},
        ),
        (
            "decode_s2s/mini_test",
            {"task": "s2s", "num_utts": 2, "metrics": {"reply_wer": 12.345}},
        ),
    ]
    for sub, res in sets:
        (tmp_path / "exp" / "model_a" / sub / "score").mkdir(parents=True)
        res["info"] = {"test_set": sub.split("/")[1]}
        (tmp_path / "exp" / "model_a" / sub / "score" / "results.json").write_text(
            json.dumps(res)
        )
    md = tmp_path / "RESULTS.md"
    assert write_results_md(tmp_path / "exp", md, {"model": "tiny"}) == 4
    text = md.read_text(encoding="utf-8")
    assert (
        "## model_a" in text
        and "### asr" in text
        and "### emotion" in text
        and "### s2s" in text
    )
    assert "|dataset|Snt|wer|cer|" in text and "|test_clean|3|40|-|" in text
    assert "|dataset|Snt|reply_wer|judge_multi|" in text
    assert "|echat_eval|2|-|75|" in text and "|mini_test|2|12.35|-|" in text
    assert (
        "|model_a/decode_asr|test_clean|LibriSpeech test-clean|wer|40|2.46|table4|"
        in text
    )
    assert "|model_a/decode_emotion|meld|MELD|emotion_accuracy|50|51.23|table4|" in text
    assert (
        "|model_a/decode_s2s|echat_eval|EChat-eval multi|judge_multi|75|72|table1|"
        in text
    )
    assert "mini_test|" not in text.split("Comparison with the paper")[1]
    assert "- model: `tiny`" in text


def test_chat_replies_without_emotion_tags(tmp_path):
    """A language-think or plain model writes no reply-emotion tag: no such accuracy."""
    data = write_dir(
        tmp_path / "t2t",
        {
            "question": {"u1": "How are you?"},
            "task": {"u1": "<TEXT2TEXT>"},
            "reply": {"u1": "I am fine, thank you."},
            "reply_emotion": {"u1": "<开心>"},
        },
    )
    decode = write_dir(tmp_path / "decode", {"text": {"u1": "I am fine thanks"}})
    res = score_decode_dir(data, decode, tmp_path / "score", ScoreOptions())
    # "thank you" -> "thanks": 1 substitution + 1 deletion over 5 words
    assert res["task"] == "t2t" and res["metrics"]["reply_wer"] == pytest.approx(40.0)
    assert "reply_emotion_accuracy" not in res["metrics"]


def test_results_md_of_a_recipe_decode_root(tmp_path):
    """The recipe passes its decode root: <root>/<set>/score/results.json."""
    root = tmp_path / "decode_s2s_valid.acc.ave"
    (root / "test_asr" / "score").mkdir(parents=True)
    res = {"task": "asr", "num_utts": 1, "metrics": {"wer": 5.0}}
    res["info"] = {"test_set": "test_asr", "decode_dir": str(root / "test_asr")}
    (root / "test_asr" / "score" / "results.json").write_text(json.dumps(res))
    write_results_md(root, tmp_path / "RESULTS.md")
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "## decode_s2s_valid.acc.ave\n" in text and "|test_asr|1|5|" in text


def test_tts_reply_without_speech_tokens_is_counted_not_an_error(tmp_path):
    """A reply of zero speech tokens has no wav by design; a reply with tokens must have one."""
    utts = ["u1", "u2", "u3"]
    data = write_dir(
        tmp_path / "test_tts",
        {"text": {u: "hello there" for u in utts}, "task": {u: "<TEXT2TOKEN>" for u in utts}},
    )
    t = np.arange(16000) / 16000
    soundfile.write(tmp_path / "u1.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32),
                    16000)
    files = {
        "text": {u: "" for u in utts},
        "speech_token": {"u1": "1 2 3", "u2": "", "u3": ""},
        "wav.scp": {"u1": str(tmp_path / "u1.wav")},
    }
    res = score_decode_dir(data, write_dir(tmp_path / "decode", files), tmp_path / "s",
                           ScoreOptions())
    assert res["metrics"]["empty_speech_rate"] == pytest.approx(200 / 3)
    assert res["metrics"]["duration_mean_s"] == pytest.approx(1.0)  # u1 only
    files["speech_token"]["u3"] = "4 5"  # tokens but no wav: a decode that lost audio
    with pytest.raises(ValueError, match="no generated audio for 1 utterances, e.g. u3"):
        score_decode_dir(data, write_dir(tmp_path / "decode2", files), tmp_path / "s2",
                         ScoreOptions())


def test_one_process_scores_every_job_of_a_list(tmp_path, capsys):
    """--jobs: each line's decode dir scored as its own run would score it ('-': the flags)."""
    from espnet2_echat.bin.echat_score import main

    utts = ["u1", "u2"]
    asr = write_dir(tmp_path / "asr", {"task": {u: "<TRANSCRIBE>" for u in utts},
                                       "text": {"u1": "A B C D", "u2": "E F"}})
    asr_dec = write_dir(tmp_path / "asr_dec", {"text": {"u1": "a b x d", "u2": "e"}})
    emo = write_dir(tmp_path / "emo", {"task": {u: "<TRANSCRIBE>" for u in utts},
                                       "text": {"u1": "x", "u2": "y"},
                                       "utt2emotion": {"u1": "<SAD>", "u2": "<HAPPY>"}})
    emo_dec = write_dir(tmp_path / "emo_dec", {"text": {"u1": "<SAD>", "u2": "<SAD>"}})
    (tmp_path / "keys").write_text("u1\n")
    jobs = tmp_path / "jobs"
    jobs.write_text(f"{asr} {asr_dec} {tmp_path / 's1'} - - {tmp_path / 'keys'}\n"
                    f"# the emotion set, scored as emotion (its task file says asr)\n"
                    f"{emo} {emo_dec} {tmp_path / 's2'} emotion none -\n")
    assert main(["--jobs", str(jobs)]) == 0
    read = lambda d: json.loads((tmp_path / d / "results.json").read_text())  # noqa: E731
    assert (read("s1")["num_utts"], read("s1")["metrics"]["wer"]) == (1, pytest.approx(25.0))
    assert read("s2")["task"] == "emotion"
    assert read("s2")["metrics"]["emotion_accuracy"] == pytest.approx(50.0)
    assert "echat_score: done 3, skipped 0, failed 0" in capsys.readouterr().err
    jobs.write_text(f"{asr} {asr_dec} {tmp_path / 's3'} - -\n")
    with pytest.raises(ValueError, match=f"{jobs}:1: expected DATA_DIR .* KEY_FILE, got 5"):
        main(["--jobs", str(jobs)])
    jobs.write_text(f"{asr} {asr_dec} {tmp_path / 's3'} nosuch - -\n")
    with pytest.raises(ValueError, match=f"{jobs}:1: unknown task 'nosuch'"):
        main(["--jobs", str(jobs)])
