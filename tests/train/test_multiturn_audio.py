"""Multi-turn training with past user turns as audio (docs/data_pipeline.md#history): the
training layout is the inference prompt of the same conversation, each past turn's audio is
spliced at its placeholder, and a multi-turn batch trains the encoder through the history
audio."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from espnet2_echat.data.layout import LayoutBuilder, Turn
from espnet2_echat.data.preprocessor import EChatPreprocessor
from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.data.templates import AUDIO_PLACEHOLDER, IGNORE_ID
from espnet2_echat.inference.conversation import history_prompt
from espnet2_echat.models.espnet_model import split_history
from espnet2_echat.models.splice import unpad
from espnet2_echat.tasks.echat import EChatTask
from .corpus import REPLIES, tokens_for, tone

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = str(REPO / "conf" / "tokenizer" / "qwen2.5")
V = 151936
K1 = 257


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # the configs name conf/... relative to the recipe root


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """Two past user turns of different lengths, as files, and the current turn's audio."""
    d = tmp_path_factory.mktemp("history")
    out = []
    for k, (freq, seconds) in enumerate(((330.0, 0.7), (550.0, 0.4))):
        path = d / f"turn{k}.wav"
        soundfile.write(path, tone(freq, seconds, k), 16000)
        out.append(path)
    return out, tone(220.0, 0.5, 9)


def conversation(paths, text_turn=False):
    """History JSON of two audio turns (and a text-only one in between when asked)."""
    turns = [
        {"user_wav": str(paths[0]), "user_text": "good morning", "reply": REPLIES[0],
         "speech_token": [1, 2, 3]},
        {"user_wav": str(paths[1]), "user_text": "it is cold", "reply": REPLIES[1],
         "speech_token": [4, 5]},
    ]
    if text_turn:
        turns.insert(1, {"user_wav": "", "user_text": "typed question", "reply": REPLIES[2],
                         "speech_token": []})
    return turns


def sample(history, speech, reply=REPLIES[2], tokens=tokens_for(2)):
    data = {"task": "<S2TCHAT> <TEXT2TOKEN>", "reply": reply, "speech_token": tokens,
            "speech": speech}
    if history is not None:
        data["history"] = json.dumps(history)
    return data


def make(**kw):
    return EChatPreprocessor(TOKENIZER, K1, train=False, text_vocab_size=V, **kw)


@pytest.mark.parametrize("text_turn", [False, True])
def test_training_prompt_is_the_inference_prompt(wavs, text_turn):
    """Placeholders (and every other id) where conversation.py's default prompt has them."""
    paths, speech = wavs
    history = conversation(paths, text_turn)
    out = make()("u", sample(history, speech))
    b = LayoutBuilder(TOKENIZER, SpeechIds.from_config(K1, V))
    turns = [
        Turn(b.text(t["reply"]), t["speech_token"], t["user_wav"] or None, t["user_text"])
        for t in history
    ]
    prompt, audios = history_prompt(b, "speech2text_token_history", turns)
    ids = out["input_ids"].tolist()
    assert ids[: len(prompt)] == prompt
    assert ids.count(AUDIO_PLACEHOLDER) == 3  # two past audio turns, then the current one
    assert out["target"][: len(prompt)].tolist() == [IGNORE_ID] * len(prompt)
    assert audios == [str(p) for p in paths]
    if text_turn:  # a past turn without audio stays text, between the two audio turns
        first, second = [i for i, t in enumerate(ids) if t == AUDIO_PLACEHOLDER][:2]
        assert _contains(ids[first:second], b.text("typed question"))
    parts = [soundfile.read(p, dtype="float32")[0] for p in paths]
    np.testing.assert_array_equal(out["history_speech"], np.concatenate(parts))
    assert out["history_speech_splits"].tolist() == [len(p) for p in parts]


def _contains(seq, sub):
    return any(seq[i : i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def test_history_as_text_switch_and_single_turn_unchanged(wavs):
    paths, speech = wavs
    as_text = make(history_as_audio=False)("u", sample(conversation(paths), speech))
    assert as_text["input_ids"].tolist().count(AUDIO_PLACEHOLDER) == 1
    assert set(as_text) == {"speech", "input_ids", "target"}
    single_new = make()("u", sample(None, speech))
    single_old = make(history_as_audio=False)("u", sample(None, speech))
    for key in single_old:
        np.testing.assert_array_equal(single_new[key], single_old[key])
    assert single_new["history_speech"].shape == (0,)
    assert single_new["history_speech_splits"].shape == (0,)


def test_missing_history_wav_names_utterance_and_file(wavs, tmp_path):
    paths, speech = wavs
    history = conversation([paths[0], tmp_path / "gone.wav"])
    pre = make()
    with pytest.raises(FileNotFoundError, match=r"utt7: history audio 1 .*gone\.wav"):
        pre("utt7", sample(history, speech))
    with pytest.raises(FileNotFoundError, match=r"utt7: .*gone\.wav"):
        pre.inspect("utt7", sample(history, None), len(speech))


def test_length_estimate_counts_history_audio(wavs):
    paths, speech = wavs
    pre = make()
    reason, layout = pre.inspect("u", sample(conversation(paths), None), len(speech))
    assert reason is None
    lengths = [soundfile.info(p).frames for p in paths]
    assert layout.history_num_samples == lengths
    rows = lambda n: -(-(n // 160) // 8)  # noqa: E731  adapter frames at 12.5 Hz
    expected = len(layout.input_ids) - 3 + sum(rows(n) for n in lengths) + rows(len(speech))
    assert pre.estimate_length(layout, len(speech)) == expected


@pytest.fixture(scope="module")
def model_and_batch(wavs, tmp_path_factory):
    """The tiny stage-2 model and a batch of a 2-audio-turn sample and a single-turn one."""
    paths, speech = wavs
    args = EChatTask.get_parser().parse_args(
        ["--config", str(REPO / "conf" / "train_stage2_generation.yaml"),
         "--output_dir", str(tmp_path_factory.mktemp("out"))]
    )
    torch.manual_seed(0)
    model = EChatTask.build_model(args)
    pre = EChatTask.build_preprocess_fn(args, train=False)
    collate = EChatTask.build_collate_fn(args, train=False)
    single = sample(None, tone(880.0, 0.9, 3), REPLIES[0], tokens_for(0))
    samples = [("multi", pre("multi", sample(conversation(paths), speech))),
               ("single", pre("single", single))]
    return model, collate(samples)[1], paths


def test_history_audio_is_spliced_at_its_placeholders(model_and_batch):
    model, batch, paths = model_and_batch
    model.eval()
    with torch.no_grad():
        ids = unpad(batch["input_ids"], batch["input_ids_lengths"])
        history = split_history(
            batch["history_speech"], batch["history_speech_splits"],
            batch["history_speech_splits_lengths"],
        )
        assert [len(h) for h in history] == [2, 0]
        audio = model.audio_per_sample(ids, batch["speech"], batch["speech_lengths"], history)
        tgts = unpad(batch["target"], batch["target_lengths"])
        packed = model.build_inputs(ids, audio, tgts)
        wav = batch["speech"][0, : int(batch["speech_lengths"][0])]
        separate = [torch.from_numpy(soundfile.read(p, dtype="float32")[0]) for p in paths]
        separate = [
            model.encode_speech(w[None], torch.tensor([w.numel()])) for w in separate + [wav]
        ]
        separate = [e[0, : int(n[0])] for e, n in separate]
    where = (ids[0] == AUDIO_PLACEHOLDER).nonzero().flatten().tolist()
    assert len(where) == 3
    shift = 0
    for k, (pos, expected) in enumerate(zip(where, separate)):
        start = pos + shift
        got = packed.inputs_embeds[0, start : start + expected.shape[0]]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4, msg=f"segment {k}")
        assert (packed.target[0, start : start + expected.shape[0]] == IGNORE_ID).all()
        # the text right after the segment is the id after its placeholder
        after = model.llm.embed(ids[0][pos + 1 : pos + 2])
        torch.testing.assert_close(packed.inputs_embeds[0, start + expected.shape[0]], after[0])
        shift += expected.shape[0] - 1
    # the single-turn sample is spliced as before: its speech encoded alone
    with torch.no_grad():
        wav1 = batch["speech"][1, : int(batch["speech_lengths"][1])]
        e1, n1 = model.encode_speech(wav1[None], torch.tensor([wav1.numel()]))
    torch.testing.assert_close(audio[1][0], e1[0, : int(n1[0])], atol=1e-5, rtol=1e-4)


def test_multi_turn_batch_trains_the_encoder_through_history_audio(model_and_batch):
    model, batch, _ = model_and_batch
    model.train()
    model.zero_grad()
    history_speech = batch["history_speech"].clone().requires_grad_(True)
    loss, stats, weight = model(**dict(batch, history_speech=history_speech))
    # the weight is the number of supervised tokens: the batch's target ids the loss reads
    targets = unpad(batch["target"], batch["target_lengths"])
    supervised = sum(int((t != IGNORE_ID).sum()) for t in targets)
    assert torch.isfinite(loss) and supervised > 2 and int(weight) == supervised
    loss.backward()
    # the loss depends on the history waveforms, through the frontend, encoder and adapter
    assert history_speech.grad is not None and history_speech.grad.abs().sum() > 0
    encoder_grads = [p.grad for p in model.encoder.parameters() if p.requires_grad]
    assert encoder_grads and all(g is not None for g in encoder_grads)
    assert sum(float(g.abs().sum()) for g in encoder_grads) > 0
