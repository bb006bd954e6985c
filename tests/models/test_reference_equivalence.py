"""The converted tiny reference checkpoint reproduces the reference's numbers (fp32).

Golden values come from running the reference code (fixtures/osum_echat_tiny/README.md);
tolerances are the README's.
"""

import json

import pytest
import torch

from espnet2_echat.data.layout import LayoutBuilder
from espnet2_echat.data.labels import normalize_text
from espnet2_echat.data.task_registry import tag_output_type
from espnet2_echat.data.templates import IGNORE_ID
from tests.helpers import load_npy, load_wav, reference_fixtures_dir, rel_err

pytestmark = pytest.mark.reference



def _utterance_indices():
    """Indices of the golden set's own utterances (one placeholder when it is absent: the
    tests then skip through the ``osum_tiny_dir`` fixture)."""
    path = reference_fixtures_dir() / "osum_echat_tiny" / "expected.json"
    if not path.is_file():
        return [0]
    return list(range(len(json.loads(path.read_text(encoding="utf-8"))["utterances"])))


UTTS = _utterance_indices()


@pytest.fixture(scope="module")
def encoded(tiny_model, osum_tiny_dir, expected):
    """Per utterance: feats, encoder out, downsampler out, adapter transformer out, embeds."""
    out = {}
    with torch.no_grad():
        for i in UTTS:
            utt = expected["utterances"][i]
            wav = load_wav(osum_tiny_dir, utt)
            feats, flens = tiny_model.frontend(wav[None], torch.tensor([wav.numel()]))
            enc, elens = tiny_model.encoder(feats, flens)
            down, dlens = tiny_model.adapter.downsampler(enc, elens)
            trans = tiny_model.adapter.transformer(down, dlens)
            embeds = tiny_model.adapter.proj(trans)
            out[i] = dict(feats=feats[0], enc=enc[0], down=down[0], trans=trans[0], emb=embeds[0])
    return out


@pytest.mark.parametrize("i", UTTS)
def test_features(encoded, osum_tiny_dir, expected, i):
    ref = load_npy(osum_tiny_dir, expected["utterances"][i]["feats"])
    assert encoded[i]["feats"].shape == ref.shape
    # the fixture README: features <= 1e-4 relative (float32 STFT/mel differ in the last bits
    # between torch builds: 1.7e-5 absolute on torch 2.11 vs the fixture's 2.13)
    assert rel_err(encoded[i]["feats"], ref) <= 1e-4


@pytest.mark.parametrize("i", UTTS)
@pytest.mark.parametrize(
    "ours,theirs",
    [
        ("enc", "encoder_out"),
        ("down", "down_sample_2_out"),
        ("trans", "speech_transformer_out"),
        ("emb", "speech_embeds"),
    ],
)
def test_encoder_and_adapter(encoded, osum_tiny_dir, expected, i, ours, theirs):
    ref = load_npy(osum_tiny_dir, expected["utterances"][i][theirs])
    assert encoded[i][ours].shape == ref.shape
    assert rel_err(encoded[i][ours], ref) <= 1e-4


# fixture task key -> (output_type, instruction source)
INFER_TASKS = {
    "asr": "text",
    "ser_paralinguistic": "text",
    "s2t_chat": "s2t_chat",
    "s2t_chat_think": "s2t_chat_think",
    "s2s": "speech2text_token",
    "s2s_think": "speech2text_token_think",
    "t2t": "text2text",
    "tts": "text2token",
}


def _segment_ids(segments, vocab):
    """Unified ids of the fixture's segments (audio as one placeholder)."""
    ids = []
    for seg in segments:
        if seg["kind"] == "text":
            ids += seg["ids"]
        elif seg["kind"] == "speech_table":
            ids += [vocab + i for i in seg["ids"]]
        else:
            ids.append(-1)
    return ids


@pytest.mark.parametrize("i", UTTS)
@pytest.mark.parametrize("task", sorted(INFER_TASKS))
def test_inference_prompt_layout(tiny_model, encoded, osum_tiny_dir, expected, i, task):
    """Exact ids per segment and the exact prefill embeddings for every task."""
    utt = expected["utterances"][i]
    spec = utt["tasks"][task]
    builder = LayoutBuilder(str(osum_tiny_dir / "llm"), reference_compat=True)
    segments = spec["llm_input"]["segments"]
    instruction = next((s["text"] for s in segments if s["name"] == "task instruction"), None)
    ids = builder.prompt(INFER_TASKS[task], instruction=instruction, text_input=utt["text"])
    assert ids == _segment_ids(segments, expected["constants"]["text_vocab"])
    with torch.no_grad():
        batch = tiny_model.build_inputs([torch.tensor(ids)], [encoded[i]["emb"]])
    ref = load_npy(osum_tiny_dir, spec["llm_input"]["inputs_embeds"])
    assert batch.inputs_embeds[0].shape == ref.shape
    assert rel_err(batch.inputs_embeds[0], ref) <= 1e-4


def _training_wav(osum_tiny_dir, name):
    """The wav of training batch ``name``, from the golden set's own ``train/data.list``
    (the sample keyed ``train_<name>``), not from the order of its utterances."""
    import json

    for line in (osum_tiny_dir / "train" / "data.list").read_text(encoding="utf-8").splitlines():
        sample = json.loads(line)
        if sample["key"] == f"train_{name}":
            return load_wav(osum_tiny_dir, {"wav": sample["wav"]})
    raise KeyError(f"{osum_tiny_dir}/train/data.list has no sample train_{name}")


@pytest.fixture(scope="module")
def training_outputs(tiny_model, osum_tiny_dir, expected):
    """Teacher-forced hidden states and targets of the fixture's two training batches."""
    builder = LayoutBuilder(str(osum_tiny_dir / "llm"))
    results = {}
    for name in ("asr", "s2s"):
        b = expected["training"]["batches"][name]
        speech = [t for t in b["speech_tokens"][1:-1]] if b["speech_tokens"] else None
        output_type = tag_output_type(b["task"])
        input_ids, target = builder.training_example(
            output_type,
            label_text=normalize_text(b["txt_after_pipeline"], b["task"]),
            speech_tokens=speech,
            instruction=b["prompt_text"],
        )
        wav = _training_wav(osum_tiny_dir, name)
        with torch.no_grad():
            loss, stats, _ = tiny_model(
                input_ids=torch.tensor([input_ids]),
                input_ids_lengths=torch.tensor([len(input_ids)]),
                target=torch.tensor([target]),
                target_lengths=torch.tensor([len(target)]),
                speech=wav[None],
                speech_lengths=torch.tensor([wav.numel()]),
            )
            ids = [torch.tensor(input_ids)]
            audio = tiny_model.audio_per_sample(ids, wav[None], torch.tensor([wav.numel()]))
            batch = tiny_model.build_inputs(ids, audio, [torch.tensor(target)])
            hidden = tiny_model.llm.hidden_states(
                batch.inputs_embeds, batch.attention_mask, batch.position_ids
            ).last_hidden_state[0]
        results[name] = dict(
            loss=loss, stats=stats, batch=batch, hidden=hidden, ids=input_ids, spec=b
        )
    return results


@pytest.mark.parametrize("name", ["asr", "s2s"])
def test_training_layout(training_outputs, name):
    r = training_outputs[name]
    spec = r["spec"]
    vocab = 151936
    assert r["ids"] == _segment_ids(spec["layout"], vocab)
    target = r["batch"].target[0]
    supervised = [s for s in spec["layout"] if s.get("supervised")]
    sup_ids = _segment_ids(supervised, vocab)
    assert target[target != IGNORE_ID].tolist() == sup_ids
    assert target.shape[0] == spec["sequence_length"]


@pytest.mark.parametrize("name", ["asr", "s2s"])
def test_training_embeddings_and_hidden(training_outputs, osum_tiny_dir, name):
    r = training_outputs[name]
    spec = r["spec"]
    ref_in = load_npy(osum_tiny_dir, spec["llm_inputs_embeds"])
    ref_h = load_npy(osum_tiny_dir, spec["llm_last_hidden_state"])
    assert rel_err(r["batch"].inputs_embeds[0], ref_in) <= 1e-4
    assert rel_err(r["hidden"], ref_h) <= 1e-4


@pytest.mark.parametrize("name", ["asr", "s2s"])
def test_training_loss_and_logits(tiny_model, training_outputs, osum_tiny_dir, name):
    r = training_outputs[name]
    spec = r["spec"]
    logits_spec = spec["logits"]
    assert abs(float(r["loss"]) - spec["loss"]) <= 1e-5 * spec["loss"]
    with torch.no_grad():
        h = r["hidden"][:-1]
        if name == "s2s":
            logits = tiny_model.llm.joint_logits(h).double()
        else:
            logits = tiny_model.llm.text_logits(h).double()
    assert logits.shape[1] == logits_spec["vocab"]
    target = load_npy(osum_tiny_dir, logits_spec["target"])
    assert torch.equal(r["batch"].target[0, 1:], target)
    lse = torch.logsumexp(logits, dim=-1)
    assert (lse - load_npy(osum_tiny_dir, logits_spec["logsumexp"])).abs().max() <= 1e-4
    top8 = logits.topk(8, dim=-1)
    assert (top8.values - load_npy(osum_tiny_dir, logits_spec["top8_logits"])).abs().max() <= 1e-4
    probe_ids = load_npy(osum_tiny_dir, logits_spec["text_probe_ids"])
    probes = logits[:, probe_ids]
    ref_probes = load_npy(osum_tiny_dir, logits_spec["text_probe_logits"])
    assert (probes - ref_probes).abs().max() <= 1e-4
    rows = logits_spec["full_rows_index"]
    full = load_npy(osum_tiny_dir, logits_spec["full_rows_logits"])
    assert (logits[rows] - full).abs().max() <= 1e-4
    sup = target != IGNORE_ID
    nll = lse[sup] - logits[sup].gather(1, target[sup][:, None])[:, 0]
    ref_nll = load_npy(osum_tiny_dir, logits_spec["nll"])[sup]
    assert (nll - ref_nll).abs().max() <= 1e-4


def test_mixed_batch_equals_single_samples(tiny_model, training_outputs, osum_tiny_dir, expected):
    """ASR (text-only) and S2S (text+speech) in one padded batch: the batch loss is the mean over
    all supervised positions of the per-sample losses computed alone."""
    ids, tgts, wavs = [], [], []
    for name in ("asr", "s2s"):
        r = training_outputs[name]
        ids.append(torch.tensor(r["ids"]))
        tgts.append(r["batch"].target[0])
        wavs.append(_training_wav(osum_tiny_dir, name))
    # targets as the preprocessor gives them: placeholders in place of the audio rows
    raw_tgts = []
    for r in (training_outputs["asr"], training_outputs["s2s"]):
        t = torch.full((len(r["ids"]),), IGNORE_ID)
        sup = r["batch"].target[0][r["batch"].target[0] != IGNORE_ID]
        t[-len(sup):] = sup
        raw_tgts.append(t)
    pad = torch.nn.utils.rnn.pad_sequence
    with torch.no_grad():
        loss, stats, weight = tiny_model(
            input_ids=pad(ids, batch_first=True, padding_value=IGNORE_ID),
            input_ids_lengths=torch.tensor([len(i) for i in ids]),
            target=pad(raw_tgts, batch_first=True, padding_value=IGNORE_ID),
            target_lengths=torch.tensor([len(t) for t in raw_tgts]),
            speech=pad(wavs, batch_first=True),
            speech_lengths=torch.tensor([len(w) for w in wavs]),
        )
    n = [int((training_outputs[k]["batch"].target != IGNORE_ID).sum()) for k in ("asr", "s2s")]
    single = [float(training_outputs[k]["loss"]) for k in ("asr", "s2s")]
    assert float(loss) == pytest.approx((single[0] * n[0] + single[1] * n[1]) / sum(n), rel=1e-5)
    assert int(weight) == sum(n)  # the token count: ESPnet's rank weighting is then exact
