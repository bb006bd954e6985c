"""Speech2Response behaviour: batching, resampling, multi-turn layouts, streaming, bad input."""

import logging
import shutil

import pytest
import torch
import torchaudio
from transformers.generation.logits_process import LogitsProcessor

from espnet2_echat.data.templates import AUDIO_PLACEHOLDER, system_block
from espnet2_echat.inference import Conversation, Request, Turn
from espnet2_echat.inference.conversation import history_prompt
from tests.helpers import REPO_ROOT, V

pytestmark = pytest.mark.reference

GREEDY = dict(do_sample=False, repetition_penalty=1.0)
SHORT_S2S = dict(GREEDY, max_new_tokens=6, max_new_speech_tokens=12)
USER_START = [151644, 872, 198]
P2 = [151645, 198, 151644, 77091, 198]
TURN_END = [151645, 198]
MARKER, BOS, EOS = V + 4096, V + 4097, V + 4098


@pytest.mark.parametrize("task", ["s2s", "asr"])
def test_batch_equals_one_by_one(fixed_s2r, wavs, task):
    requests = [Request(speech=w.numpy()) for w in wavs]
    batched = fixed_s2r.batch(requests, task=task, **SHORT_S2S)
    for request, b in zip(requests, batched):
        single = fixed_s2r.batch([request], task=task, **SHORT_S2S)[0]
        assert b.ids == single.ids
        assert b.heads == single.heads
        assert b.text == single.text and b.speech_token == single.speech_token


def test_batch_of_eight_equals_one_by_one(fixed_s2r, wavs):
    """Eight rows of unequal lengths: padding masks, and the text head read through the copy
    packed for batch steps (``models/packed_linear.py``) where oneDNN is available."""
    requests = [Request(speech=wavs[i % 3][: 16000 + 3000 * i].numpy()) for i in range(8)]
    batched = fixed_s2r.batch(requests, task="s2s", **SHORT_S2S)
    packed = fixed_s2r.model.llm.packed_head
    assert packed is None or packed._packed is not None  # the batched steps used it
    for request, b in zip(requests, batched):
        assert b.ids == fixed_s2r.batch([request], task="s2s", **SHORT_S2S)[0].ids


def test_batch_of_texts_equals_one_by_one(fixed_s2r, expected):
    texts = ["Hi.", expected["utterances"][-1]["text"], "A much longer sentence to be spoken aloud."]
    batched = fixed_s2r.batch([Request(text=t) for t in texts], task="tts", **SHORT_S2S)
    for text, b in zip(texts, batched):
        assert b.ids == fixed_s2r(text=text, task="tts", **SHORT_S2S).ids
        assert set(b.heads) == {"speech"}


def test_other_sample_rates_are_resampled(fixed_s2r, wavs):
    wav8k = torchaudio.functional.resample(wavs[0], 16000, 8000)
    ours = fixed_s2r(speech=wav8k.numpy(), fs=8000, task="asr", **SHORT_S2S)
    manual = torchaudio.functional.resample(wav8k, 8000, 16000)
    assert ours.ids == fixed_s2r(speech=manual.numpy(), fs=16000, task="asr", **SHORT_S2S).ids


def test_sampling_is_seeded_and_respects_top_k(fixed_s2r, wavs):
    kwargs = dict(task="s2s", max_new_tokens=5, max_new_speech_tokens=8, seed=3, top_k=1, top_p=1.0)
    a = fixed_s2r(speech=wavs[0].numpy(), **kwargs)
    b = fixed_s2r(speech=wavs[0].numpy(), **kwargs)
    assert a.ids == b.ids
    greedy = fixed_s2r(
        speech=wavs[0].numpy(),
        task="s2s",
        max_new_tokens=5,
        max_new_speech_tokens=8,
        do_sample=False,
    )
    assert a.ids == greedy.ids  # top_k=1 sampling is the argmax


def _turn(n_audio=3):
    return Turn(reply_ids=[11, 12], speech_tokens=[5, 6], user_audio=torch.zeros(n_audio, 32))


def test_history_layout_training(fixed_s2r):
    layout = fixed_s2r.layout
    ids, audios = history_prompt(layout, "speech2text_token_history", [_turn(), _turn(2)])
    turn = [AUDIO_PLACEHOLDER] + TURN_END + P2 + [11, 12, MARKER, V + 5, V + 6, MARKER]
    turn += TURN_END + USER_START
    expected = layout.text(system_block("s2s")) + turn + turn + [BOS, AUDIO_PLACEHOLDER, EOS] + P2
    assert ids == expected
    assert [a.shape[0] for a in audios] == [3, 2]


def test_history_layout_reference_compat(compat_s2r):
    layout = compat_s2r.layout
    ids, _ = history_prompt(layout, "speech2text_token", [_turn()])
    turn = [BOS, AUDIO_PLACEHOLDER, EOS] + P2 + [11, 12, MARKER, V + 5, V + 6, MARKER]
    expected = layout.text(system_block("s2s", with_user_start=False)) + turn + USER_START
    assert ids == expected + [BOS, AUDIO_PLACEHOLDER, EOS] + P2


def test_conversation_keeps_last_turns(fixed_s2r, wavs):
    chat = Conversation(max_turns=2)
    replies = [fixed_s2r(speech=w.numpy(), task="s2s", history=chat, **SHORT_S2S) for w in wavs]
    assert len(chat) == 2
    assert [t.reply_ids for t in chat.turns] == [r.token_int for r in replies[1:]]
    assert [t.speech_tokens for t in chat.turns] == [r.speech_token for r in replies[1:]]
    # the same history given as a list of turns decodes the same
    again = fixed_s2r(speech=wavs[0].numpy(), task="s2s", history=list(chat.turns), **SHORT_S2S)
    assert again.ids == fixed_s2r(speech=wavs[0].numpy(), task="s2s", history=chat, **SHORT_S2S).ids
    chat.new()
    assert len(chat) == 0


def test_history_too_long_keeps_the_last_turns(fixed_s2r, wavs, caplog):
    turns = [_turn() for _ in range(7)]
    with caplog.at_level(logging.WARNING):
        long = fixed_s2r(speech=wavs[0].numpy(), task="s2s", history=turns, **SHORT_S2S)
    assert "keeping the last 5" in caplog.text
    short = fixed_s2r(speech=wavs[0].numpy(), task="s2s", history=turns[-5:], **SHORT_S2S)
    assert long.ids == short.ids


def test_streaming_yields_text_then_speech_chunks(fixed_s2r, wavs):
    kwargs = dict(GREEDY, max_new_tokens=8, max_new_speech_tokens=40, speech_ngram_blocking=False)
    chunks = list(fixed_s2r.stream(speech=wavs[1].numpy(), task="s2s", **kwargs))
    final = chunks[-1].final
    assert (
        final is not None
        and final.ids == fixed_s2r(speech=wavs[1].numpy(), task="s2s", **kwargs).ids
    )
    text = "".join(c.text for c in chunks[:-1])
    assert text.strip() == final.text
    speech = [c.speech_token for c in chunks[:-1] if c.speech_token]
    assert [t for c in speech for t in c] == final.speech_token
    assert all(len(c) == 18 for c in speech[:-1]) and 0 < len(speech[-1]) <= 18
    first_speech = next(i for i, c in enumerate(chunks) if c.speech_token)
    assert all(not c.text for c in chunks[first_speech:])


def test_bad_input_gives_clear_errors(fixed_s2r, wavs, monkeypatch):
    with pytest.raises(ValueError, match="unknown task"):
        fixed_s2r(speech=wavs[0].numpy(), task="translate")
    with pytest.raises(ValueError, match="think"):
        fixed_s2r(speech=wavs[0].numpy(), task="asr", think="tag")
    with pytest.raises(ValueError, match="too short"):
        fixed_s2r(speech=torch.zeros(0).numpy(), task="asr")
    with pytest.raises(ValueError, match="mono"):
        fixed_s2r(speech=torch.zeros(2, 16000).numpy(), task="asr")
    with pytest.raises(ValueError, match="needs text"):
        fixed_s2r(task="t2t")
    with pytest.raises(ValueError, match="needs speech"):
        fixed_s2r(task="s2s")
    with pytest.raises(ValueError, match="unknown decoding options"):
        fixed_s2r(speech=wavs[0].numpy(), task="asr", beam_size=4)
    monkeypatch.setattr(fixed_s2r, "max_audio_seconds", 1.0)
    with pytest.raises(ValueError, match="exceeds the model's limit"):
        fixed_s2r(speech=wavs[0].numpy(), task="asr")


def test_silent_audio_is_decoded(fixed_s2r):
    """Documented behaviour: silence is an ordinary input (the features floor it)."""
    out = fixed_s2r(speech=torch.zeros(16000).numpy(), task="asr", **SHORT_S2S)
    assert out.heads and set(out.heads) == {"text"}


def test_compat_s2s_without_im_end_fails_clearly(compat_s2r, wavs):
    with pytest.raises(ValueError, match="needs <\\|im_end\\|>"):
        compat_s2r(speech=wavs[0].numpy(), task="s2s", do_sample=False, max_new_tokens=3)


class ForceIds(LogitsProcessor):
    """Test helper: force ``ids[j]`` at step j."""

    def __init__(self, ids):
        self.ids = ids

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1]
        if step < len(self.ids):
            keep = scores[:, self.ids[step]].clone()
            scores[:] = float("-inf")
            scores[:, self.ids[step]] = keep
        return scores


def test_interleaved_decoding_uses_one_softmax_until_im_end(fixed_s2r, wavs):
    forced = [40, 41, 151645]
    out = fixed_s2r(
        speech=wavs[0].numpy(),
        task="s2s",
        interleaved=True,
        output_scores=True,
        logits_processor=[ForceIds(forced)],
        max_new_speech_tokens=8,
        **GREEDY,
    )
    assert out.ids[:3] == forced
    widths = [int(torch.isfinite(s).sum()) for s in out.scores]
    assert widths == [V + 4097] * 3 + [4097] * (len(out.ids) - 3)  # joint, then speech only
    assert out.heads[3:] == ["speech"] * (len(out.ids) - 3)
    assert out.token_int == [40, 41]
    stream = list(
        fixed_s2r.stream(
            speech=wavs[0].numpy(),
            task="s2s",
            interleaved=True,
            logits_processor=[ForceIds(forced)],
            max_new_speech_tokens=8,
            **GREEDY,
        )
    )
    assert stream[-1].final.ids == out.ids


def test_interleaved_prompts(fixed_s2r):
    layout = fixed_s2r.layout
    ids, _ = fixed_s2r._prompt("tts", "none", None, Request(text="Hi."), None, 0, True)
    assert ids == layout.text(system_block("tts_streaming")) + layout.text("Hi.") + P2
    ids, _ = fixed_s2r._prompt("s2s", "none", None, Request(), None, 0, True)
    assert ids == layout.text(system_block("s2s_streaming")) + [BOS, AUDIO_PLACEHOLDER, EOS] + P2
    with pytest.raises(ValueError, match="interleaved"):
        fixed_s2r._prompt("asr", "none", None, Request(), None, 0, True)


def test_from_pretrained_dir_and_packed_zip(converted_dir, fixed_s2r, wavs, tmp_path, monkeypatch):
    from espnet2.main_funcs.pack_funcs import pack

    from espnet2_echat.inference import Speech2Response

    reference = fixed_s2r(speech=wavs[0].numpy(), task="asr", **SHORT_S2S).ids
    from_dir = Speech2Response.from_pretrained(str(converted_dir))
    assert from_dir(speech=wavs[0].numpy(), task="asr", **SHORT_S2S).ids == reference
    monkeypatch.chdir(tmp_path)
    shutil.copytree(converted_dir, "exp/tiny")
    pack(
        files={"model_file": "exp/tiny/model.pth"},
        yaml_files={"train_config": "exp/tiny/config.yaml"},
        outpath="tiny.zip",
        option=["exp/tiny/llm"],
    )
    shutil.rmtree("exp")
    from_zip = Speech2Response.from_pretrained("tiny.zip", cachedir=str(tmp_path / "cache"))
    assert from_zip(speech=wavs[0].numpy(), task="asr", **SHORT_S2S).ids == reference
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        Speech2Response.from_pretrained(str(tmp_path / "cache"))


def test_instructions_from_a_prompt_config(converted_dir, fixed_s2r):
    from espnet2_echat.inference import Speech2Response

    assert fixed_s2r.instructions["asr"] == "将这段音频的语音内容详细记录为文字稿。"
    s2r = Speech2Response(
        converted_dir / "config.yaml",
        converted_dir / "model.pth",
        prompt_config=REPO_ROOT / "conf" / "prompt_config.yaml",
    )
    assert s2r.instructions["asr"] == "转录如下音频。"
    assert s2r.instructions["event"] == "分辨音频中的事件，直接返回标签，格式为<>。"
    ids, _ = s2r._prompt("asr", "none", s2r.instructions["asr"], Request(), None, 0, False)
    instruction = s2r.layout.text("转录如下音频。")
    assert ids[-8 - len(instruction) :] == instruction + [BOS, AUDIO_PLACEHOLDER, EOS] + P2


def test_trained_prompt_config_unless_reference_instructions(converted_dir, tmp_path):
    """The training config's prompt_config gives the instructions; the
    ``reference_instructions`` switch (alone) keeps the reference's built-in ones."""
    import yaml

    from espnet2_echat.data.quirks import ReferenceQuirks
    from espnet2_echat.inference import Speech2Response

    config = yaml.safe_load((converted_dir / "config.yaml").read_text())
    config["preprocessor_conf"] = {"prompt_config": str(REPO_ROOT / "conf" / "prompt_config.yaml")}
    (tmp_path / "llm").symlink_to(converted_dir / "llm")  # the config's relative LLM path
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    model = converted_dir / "model.pth"
    trained = Speech2Response(tmp_path / "config.yaml", model)
    reference = Speech2Response(
        tmp_path / "config.yaml", model, quirks=ReferenceQuirks(reference_instructions=True)
    )
    assert trained.instructions["asr"] == "转录如下音频。"
    assert reference.instructions["asr"] == "将这段音频的语音内容详细记录为文字稿。"


def test_think_outputs_are_split(fixed_s2r):
    from espnet2_echat.data.cot import build_tag_think, wrap_think

    tok = fixed_s2r.layout.text
    cot = build_tag_think("你好", "<ADULT>", "<MALE>", "<HAPPY>", "<OTHER>", "<开心>")
    ids = tok(wrap_think(cot, "<开心>很高兴见到你")) + [151645]
    tag = fixed_s2r._response(ids, "text", "tag", synthesize=False)
    assert (tag.think, tag.text, tag.reply_emotion) == (cot, "很高兴见到你", "<开心>")
    assert tag.token_int == ids[:-1]
    ids = tok("<think>用户语气轻快，是成年女性<think end>好的，我们开始吧。") + [151645]
    language = fixed_s2r._response(ids, "text", "language", synthesize=False)
    assert (language.think, language.text) == ("用户语气轻快，是成年女性", "好的，我们开始吧。")
    plain = fixed_s2r._response(tok("只有回答") + [151645], "text", "language", synthesize=False)
    assert (plain.think, plain.text) == ("", "只有回答")


@pytest.mark.parametrize("dtype", ["bfloat16"])
def test_half_precision_decodes(converted_dir, wavs, dtype):
    from espnet2_echat.inference import Speech2Response

    s2r = Speech2Response(converted_dir / "config.yaml", converted_dir / "model.pth", dtype=dtype)
    assert next(s2r.model.llm.parameters()).dtype == getattr(torch, dtype)
    out = s2r(speech=wavs[0].numpy(), task="s2s", output_scores=True, **SHORT_S2S)
    assert out.heads == ["text"] * 7 + ["speech"] * (len(out.ids) - 7)  # 6 + <|im_end|>
    assert out.ids[6] == 151645
    assert all(s.dtype == torch.float32 for s in out.scores)
    assert all(0 <= t < 4096 for t in out.speech_token)
