"""EChatPreprocessor: exact id layouts of every task type, filters, reference training ids."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from espnet2_echat.data.layout import LayoutBuilder
from espnet2_echat.data.preprocessor import (
    EChatPreprocessor,
    SampleError,
    interleave,
    load_prompt_config,
)
from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.data.templates import AUDIO_PLACEHOLDER, IGNORE_ID, IM_END_ID, UNKNOWN_ID

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = str(REPO / "conf" / "tokenizer" / "qwen2.5")
V = 151936
K1 = 257  # tiny speech_token_num
WAV = np.linspace(-0.1, 0.1, 16000).astype(np.float32)


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "<TRANSCRIBE>": ["Transcribe it."],
                "<TRANSCRIBE> <GENDER>": ["Transcribe, then gender."],
                "<GENDER>": ["Gender only.", "Which gender?"],
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def b():
    return LayoutBuilder(TOKENIZER, SpeechIds.from_config(K1, V))


def make(prompt_file, **kw):
    kw.setdefault("train", False)
    return EChatPreprocessor(TOKENIZER, K1, text_vocab_size=V, prompt_config=prompt_file, **kw)


def P(b, output_type):  # noqa: N802  (P1 of docs/tasks.md#layouts)
    return b.system(output_type)


def tail(b):
    return b.text("<|im_end|>\n<|im_start|>assistant\n")


def spt(b, tokens):
    return [V + K1 - 1] + [V + t for t in tokens] + [V + K1 - 1]


def audio(b):
    return [V + K1, AUDIO_PLACEHOLDER, V + K1 + 1]


def check(out, inputs, answer_in, answer_out=None):
    """Inputs = prompt + answer; target = IGNORE over the prompt, answer_out over the answer."""
    answer_out = answer_in if answer_out is None else answer_out
    assert out["input_ids"].tolist() == inputs + answer_in
    assert out["target"].tolist() == [IGNORE_ID] * len(inputs) + answer_out


@pytest.mark.reference
def test_reproduces_reference_training_ids(osum_tiny_dir):
    """The fixture's two training batches, id for id (instruction pinned to the drawn one)."""
    expected = json.loads((osum_tiny_dir / "expected.json").read_text())["training"]["batches"]
    samples = [line for line in (osum_tiny_dir / "train" / "data.list").read_text().splitlines()]
    samples = {s["key"]: s for s in map(json.loads, samples)}
    prompts = {"<TRANSCRIBE>": [expected["asr"]["prompt_text"]]}
    pre = EChatPreprocessor(str(osum_tiny_dir / "llm"), 4097, train=False)
    pre.prompts = prompts
    data = {
        "asr": {"task": samples["train_asr"]["task"], "text": samples["train_asr"]["txt"]},
        "s2s": {
            "task": samples["train_s2s"]["task"],
            "reply": samples["train_s2s"]["txt"],
            "question": samples["train_s2s"]["extra"]["question"],
            "speech_token": " ".join(map(str, samples["train_s2s"]["extra"]["speech_token"])),
        },
    }
    for name in ("asr", "s2s"):
        batch = expected[name]
        out = pre(name, dict(data[name], speech=WAV))
        ids = []
        for seg in batch["layout"]:
            if seg["kind"] == "audio":
                ids.append(AUDIO_PLACEHOLDER)
            elif seg["kind"] == "speech_table":
                ids += [V + i for i in seg["ids"]]
            else:
                ids += seg["ids"]
        assert out["input_ids"].tolist() == ids
        answer = batch["target_label_ids"] + [V + i for i in batch["speech_tokens"]]
        target = out["target"].tolist()
        assert target[len(ids) - len(answer) :] == answer
        assert set(target[: len(ids) - len(answer)]) == {IGNORE_ID}
        if name == "asr":  # the reference's own unshifted labels (audio = one placeholder)
            ref = batch["llm_labels_unshifted"]
            n_audio = next(s["length"] for s in batch["layout"] if s["kind"] == "audio")
            assert len(ref) == len(target) - 1 + n_audio
            assert ref[-len(answer) :] == target[-len(answer) :]


def test_asr_lowercases_only_plain_transcribe(b, prompt_file):
    pre = make(prompt_file)
    out = pre("u", {"task": "<TRANSCRIBE>", "text": "Good Morning", "speech": WAV})
    prompt = P(b, "text") + b.text("Transcribe it.") + audio(b) + tail(b)
    check(out, prompt, b.text("good morning") + [IM_END_ID])
    assert out["speech"].shape == WAV.shape
    out = pre(
        "u",
        {"task": "<TRANSCRIBE> <GENDER>", "text": "Good Morning", "utt2gender": "male",
         "speech": WAV},
    )
    prompt = P(b, "text") + b.text("Transcribe, then gender.") + audio(b) + tail(b)
    check(out, prompt, b.text("Good Morning<MALE>") + [IM_END_ID])


def test_x_only_conversion_and_random_prompt(b, prompt_file):
    pre = make(prompt_file, train=True, x_only_prob=1.0)
    np.random.seed(0)
    seen = set()
    for _ in range(20):
        out = pre(
            "u",
            {"task": "<TRANSCRIBE> <GENDER>", "text": "hi", "utt2gender": "<FEMALE>",
             "speech": WAV},
        )
        ids = out["input_ids"].tolist()
        n = len(P(b, "text"))
        instruction = ids[n : ids.index(V + K1)]
        seen.add(b.tokenizer.decode(instruction))
        label = b.text("<FEMALE>") + [IM_END_ID]
        assert ids[-len(label) :] == label
    assert seen == {"Gender only.", "Which gender?"}
    never = make(prompt_file, train=True, x_only_prob=0.0)
    out = never(
        "u",
        {"task": "<TRANSCRIBE> <GENDER>", "text": "hi", "utt2gender": "<FEMALE>", "speech": WAV},
    )
    assert out["input_ids"].tolist()[-4:] == b.text("hi<FEMALE>")[-3:] + [IM_END_ID]


def test_sttc_and_its_x_only_form(b, prompt_file):
    data = {"task": "<TRANSCRIBE> <S2TCHAT>", "text": "how are you", "reply": "fine thanks",
            "speech": WAV}
    out = make(prompt_file)("u", data)
    prompt = P(b, "text") + audio(b) + tail(b)  # no instruction for this key in the file
    check(out, prompt, b.text("how are you<开始回答>fine thanks") + [IM_END_ID])
    out = make(prompt_file, train=True, x_only_prob=1.0)("u", data)
    check(out, P(b, "s2t_chat") + audio(b) + tail(b), b.text("fine thanks") + [IM_END_ID])


def test_s2s_text_then_speech(b, prompt_file):
    out = make(prompt_file)(
        "u",
        {"task": "<S2TCHAT> <TEXT2TOKEN>", "reply": "Sure.", "speech_token": "3 1 4",
         "question": "ignored for chat", "speech": WAV},
    )
    answer = b.text("Sure.") + [IM_END_ID] + spt(b, [3, 1, 4])
    check(out, P(b, "speech2text_token") + audio(b) + tail(b), answer)


def test_tts_and_t2t_have_no_audio(b, prompt_file):
    pre = make(prompt_file)
    out = pre("u", {"task": "<TEXT2TOKEN>", "text": "Say this", "speech_token": "7 8"})
    check(out, P(b, "text2token") + b.text("Say this") + tail(b), spt(b, [7, 8]))
    assert out["speech"].shape == (0,)
    out = pre("u", {"task": "<TEXT2TEXT>", "question": "Hi there?", "reply": "Hello!"})
    check(out, P(b, "text2text") + b.text("Hi there?") + tail(b), b.text("Hello!") + [IM_END_ID])
    assert out["speech"].shape == (0,)


def test_tag_think_target(b, prompt_file):
    pre = make(prompt_file, think_mode="tag")
    data = {"task": "<S2TCHAT> <TEXT2TOKEN> <THINK>", "text": "I lost my keys",
            "reply": "<安慰鼓励>Don't worry.", "utt2age": "<ADULT>", "utt2gender": "<FEMALE>",
            "utt2emotion": "<SAD>", "speech_token": "5", "speech": WAV}
    out = pre("u", data)
    cot = (
        "<think>用户说的话是:I lost my keys,年龄为:<ADULT>,性别为:<FEMALE>,情感为:<SAD>,"
        "声音事件为:<&&>,推测使用的回复情感为:<安慰鼓励>,我应该综合用户的语义和副语言信息给出专业"
        "且对应的回答<think end><安慰鼓励>Don't worry."
    )
    label = b.text(cot) + [IM_END_ID]
    assert UNKNOWN_ID in label  # the missing event became <&&>
    answer_in = [0 if i == UNKNOWN_ID else i for i in label] + spt(b, [5])
    answer_out = [IGNORE_ID if i == UNKNOWN_ID else i for i in label] + spt(b, [5])
    check(out, P(b, "speech2text_token_think") + audio(b) + tail(b), answer_in, answer_out)
    # non-think chat replies in tag mode start with a reply-emotion tag (<中立> by default)
    out = pre("u", {"task": "<S2TCHAT>", "reply": "Okay.", "speech": WAV})
    check(out, P(b, "s2t_chat") + audio(b) + tail(b), b.text("<中立>Okay.") + [IM_END_ID])


def test_language_think_strips_reply_tags(b, prompt_file):
    pre = make(prompt_file, think_mode="language")
    out = pre(
        "u",
        {"task": "<S2TCHAT> <THINKER>", "reply": "<开心>Great news!",
         "think": "The user sounds happy.", "speech": WAV},
    )
    label = b.text("<think>The user sounds happy.<think end>Great news!") + [IM_END_ID]
    check(out, P(b, "s2t_chat_think") + audio(b) + tail(b), label)
    with pytest.raises(SampleError, match="u: its task needs 'think'"):
        pre("u", {"task": "<S2TCHAT> <THINKER>", "reply": "x", "speech": WAV})


def test_interleave_blocks():
    text = list(range(8))
    speech = list(range(100, 130))
    expected = text[:6] + speech[:18] + text[6:] + speech[18:30]
    assert interleave(text, speech) == expected
    assert interleave([1], [9, 9]) == [1, 9, 9]


def test_streaming_s2s(b, prompt_file):
    pre = make(prompt_file, train=True, streaming_prob=1.0)
    tokens = list(range(20))
    out = pre(
        "u",
        {"task": "<S2TCHAT> <TEXT2TOKEN>", "reply": "Yes.",
         "speech_token": " ".join(map(str, tokens)),
         "speech": WAV},
    )
    answer = interleave(b.text("Yes.") + [IM_END_ID], spt(b, tokens))
    check(out, P(b, "speech2text_token_streaming") + audio(b) + tail(b), answer)
    with pytest.raises(SampleError, match="3 x"):
        pre("u", {"task": "<TEXT2TOKEN> <STREAMING>", "text": "a long sentence here",
                  "speech_token": "1 2"})


def test_history_turns_precede_the_current_audio(b, prompt_file):
    """``history_as_audio: false``: past user turns enter as their transcripts."""
    history = [{"user_wav": "x.wav", "user_text": "hello", "reply": "hi", "speech_token": [1, 2]}]
    out = make(prompt_file, history_as_audio=False)(
        "u",
        {"task": "<S2TCHAT> <TEXT2TOKEN>", "reply": "ok", "speech_token": "3",
         "history": json.dumps(history), "speech": WAV},
    )
    hist = (
        b.text("hello") + b.text("<|im_end|>\n<|im_start|>assistant\n") + b.text("hi")
        + spt(b, [1, 2]) + b.text("<|im_end|>\n") + b.text("<|im_start|>user\n")
    )
    prompt = P(b, "speech2text_token_history") + hist + audio(b) + tail(b)
    check(out, prompt, b.text("ok") + [IM_END_ID] + spt(b, [3]))


def test_filters(prompt_file):
    pre = make(prompt_file, train=True)
    ok = {"task": "<TRANSCRIBE>", "text": "hello"}
    assert pre.filter_reason("u", ok, 16000) is None
    assert "audio length" in pre.filter_reason("u", ok, 100)  # 0.006 s < 0.2 s
    assert pre.filter_reason("u", dict(ok, text="None_in_extract_X"), 16000) == "sentinel text"
    assert pre.filter_reason("u", dict(ok, text="a <NONE> b"), 16000) == "<NONE> label"
    assert "self-identity" in pre.filter_reason("u", dict(ok, text="I am ChatGPT"), 16000)
    s2s = {"task": "<S2TCHAT> <TEXT2TOKEN>", "reply": "one two three four five six",
           "speech_token": "1 2 3"}
    assert "too few speech tokens" in pre.filter_reason("u", s2s, 16000)
    assert "invalid" in pre.filter_reason("u", {"task": "<TRANSCRIBE>"}, 16000)
    long_pre = make(prompt_file, filter_conf={"max_seq_len": 50})
    assert "max_seq_len" in long_pre.filter_reason("u", ok, 16000)
    # validation keeps what only training filters out
    assert make(prompt_file).filter_reason("u", dict(ok, text="a <NONE> b"), 16000) is None


def test_shipped_prompt_config_has_the_23_keys():
    conf = load_prompt_config(REPO / "conf" / "prompt_config.yaml")
    from espnet2_echat.data.task_registry import UNDERSTANDING_TAGS

    assert sorted(conf) == sorted(UNDERSTANDING_TAGS)
    assert conf["<TRANSCRIBE>"][:2] == ["转录如下音频。", "Transcribe the following audio."]
