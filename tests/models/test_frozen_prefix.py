"""Training-step shortcuts of issue #13 equal the plain computation they replace.

* Logits on supervised rows only (``EChatModel.loss``) vs logits at every position and
  cross-entropy with ``ignore_index``, written out here.
* Frozen-prefix key/value reuse (``espnet2_echat.models.frozen_prefix``) vs the full forward
  (``reuse_frozen_prefix=False``), for a tiny Llama-family and a tiny Qwen2 LLM: loss,
  accuracies and gradients of every trainable parameter, on first use (cache filled) and on
  reuse, after the LLM's weights change, and the fall-back when the LLM trains.
* ``llm_compute_dtype="bfloat16"`` (autocast of the LLM body) vs float32: close at bfloat16
  precision, not equal (the products did run in bfloat16), and prefix key/values made under
  one dtype never serve the other.
"""

import copy

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from espnet2_echat.data.templates import AUDIO_PLACEHOLDER, IGNORE_ID
from espnet2_echat.models.adapter import EChatAdapter
from espnet2_echat.models.espnet_model import EChatModel
from espnet2_echat.models.frozen_prefix import frozen_prefix_blocker, frozen_prefix_length
from espnet2_echat.models.speech_llm import SpeechLLM
from espnet2_echat.models.trainable import add_lora, set_trainable_parts

V, K1, HIDDEN, ENC = 101, 9, 48, 16  # text ids, speech head (K+1), LLM width, encoder width

FAMILIES = {
    "llama_tied": (LlamaConfig, LlamaForCausalLM, dict(tie_word_embeddings=True)),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(tie_word_embeddings=False)),
}


def _model(family: str, seed: int = 0, trainable_text_ids=()) -> EChatModel:
    config_cls, model_cls, extra = FAMILIES[family]
    torch.manual_seed(seed)
    config = config_cls(
        vocab_size=V, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, **extra,
    )
    config._attn_implementation = "sdpa"
    causal_lm = model_cls(config)
    for p in causal_lm.parameters():  # norms and biases away from their init
        p.data.normal_(0, 0.3)
    llm = SpeechLLM(causal_lm, K1, trainable_text_ids)
    adapter = EChatAdapter(ENC, HIDDEN, attention_heads=2, linear_units=32, num_blocks=1,
                           dropout_rate=0.0)
    model = EChatModel(nn.Identity(), nn.Identity(), adapter, llm)
    set_trainable_parts(model, "link")
    return model.train()


def _sample(prompt, audio, reply, speech_reply=()):
    """ids = prompt + placeholder + (audio) + reply [+ speech ids]; the reply is supervised."""
    ids = list(prompt) + ([AUDIO_PLACEHOLDER] if audio else []) + list(reply) + list(speech_reply)
    sup = list(reply) + list(speech_reply)
    target = [IGNORE_ID] * (len(ids) - len(sup)) + sup
    return torch.tensor(ids), torch.tensor(target)


def _batch(seed=1):
    """Samples with prefixes of different lengths (one shared twice), one with speech
    targets, one text-only, one whose supervision starts at position 1 (no prefix)."""
    g = torch.Generator().manual_seed(seed)

    def r(n, hi=V):
        return torch.randint(3, hi, (n,), generator=g).tolist()

    system = r(9)
    speech = [V + int(x) for x in torch.randint(0, K1, (4,), generator=g)]
    samples = [
        _sample(system + r(5), True, r(4)),
        _sample(system + r(2), True, r(3), speech),
        _sample(system + r(5), False, r(5)),  # text only
        _sample(r(1), False, r(6)),  # supervised from position 1: no frozen prefix
    ]
    samples.append(samples[0])  # the same prefix twice in one batch
    ids = nn.utils.rnn.pad_sequence([s[0] for s in samples], batch_first=True)
    target = nn.utils.rnn.pad_sequence([s[1] for s in samples], batch_first=True,
                                       padding_value=IGNORE_ID)
    lengths = torch.tensor([len(s[0]) for s in samples])
    enc = torch.randn(len(samples), 23, ENC, generator=g)
    return dict(
        input_ids=ids, input_ids_lengths=lengths, target=target, target_lengths=lengths,
        speech_enc=enc, speech_enc_lengths=torch.tensor([23, 19, 23, 23, 23]),
    )


def _run(model: EChatModel, batch):
    model.zero_grad()
    loss, stats, weight = model(**batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), stats, weight, grads


def _assert_same(a, b, rtol=1e-5):
    loss_a, stats_a, weight_a, grads_a = a
    loss_b, stats_b, weight_b, grads_b = b
    torch.testing.assert_close(loss_a.reshape(()), loss_b.reshape(()), rtol=rtol, atol=1e-6)
    assert int(weight_a) == int(weight_b)
    for key in ("acc", "acc_text", "acc_speech"):
        torch.testing.assert_close(stats_a[key].reshape(()), stats_b[key].reshape(()))
    assert grads_a.keys() == grads_b.keys() and grads_a
    # a floor for gradients that are zero in exact arithmetic (an attention key bias)
    floor = 1e-3 * max(float(g.abs().max()) for g in grads_b.values())
    for name in grads_a:
        scale = grads_b[name].abs().max().clamp(min=floor)
        err = (grads_a[name] - grads_b[name]).abs().max() / scale
        assert err < rtol * 10, f"{name}: relative gradient error {err:.2e}"


def _full_logits(model: EChatModel, batch):
    """Joint logits at every position (text-only samples: text softmax only) and the spliced
    targets, written out without the model's row selection."""
    ids = [i[:n] for i, n in zip(batch["input_ids"], batch["input_ids_lengths"])]
    tgts = [t[:n] for t, n in zip(batch["target"], batch["target_lengths"])]
    audio = model.audio_per_sample(ids, None, None, None, batch["speech_enc"],
                                   batch["speech_enc_lengths"])
    packed = model.build_inputs(ids, audio, tgts)
    hidden = model.llm.hidden_states(
        packed.inputs_embeds, packed.attention_mask, packed.position_ids
    ).last_hidden_state
    logits = torch.cat([model.llm.causal_lm.lm_head(hidden), model.llm.speech_head(hidden)], -1)
    has_speech = (packed.target >= V).any(dim=1)
    logits = logits.clone()
    logits[~has_speech, :, V:] = float("-inf")
    return logits, packed.target


def _half_right(model: EChatModel, batch):
    """The batch with every other supervised target set to the model's own prediction (the
    inputs are unchanged, so the accuracies compared are neither 0 nor 1)."""
    with torch.no_grad():
        logits, spliced = _full_logits(model, batch)
    batch = dict(batch, target=batch["target"].clone())
    for i, n in enumerate(batch["target_lengths"].tolist()):
        rows = (spliced[i, 1:] != IGNORE_ID).nonzero().flatten()
        pred = logits[i, :-1].argmax(-1)[rows]
        # the reply is each sample's tail in both layouts (audio is spliced before it)
        batch["target"][i, n - len(rows) : n : 2] = pred[::2]
    return batch


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_supervised_rows_equal_full_logits(family):
    model = _model(family)
    model.reuse_frozen_prefix = False
    batch = _half_right(model, _batch())
    ours = _run(model, batch)
    assert 0.2 < float(ours[1]["acc"]) < 0.8
    model.zero_grad()
    logits, target = _full_logits(model, batch)
    labels = target[:, 1:]
    loss = nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_ID
    )
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    rows = labels != IGNORE_ID
    correct = (logits[:, :-1].argmax(-1) == labels)[rows].float()
    speech = labels[rows] >= V
    stats = dict(acc=correct.mean(), acc_text=correct[~speech].mean(),
                 acc_speech=correct[speech].mean())
    _assert_same(ours, (loss.detach(), stats, rows.sum(), grads))


def test_prefix_lengths():
    llm = _model("llama_tied").llm
    ids, target = _sample([5, 6, 7, 8], True, [9, 10])
    assert frozen_prefix_length(ids, target, llm) == 4  # stops at the audio placeholder
    ids, target = _sample([5, 6, 7, 8], False, [9, 10])
    assert frozen_prefix_length(ids, target, llm) == 3  # hidden 3 predicts target 4
    ids = torch.tensor([5, 6, V + 2, 7, 8, 9])  # a speech-table id: its embedding trains
    assert frozen_prefix_length(ids, torch.tensor([IGNORE_ID] * 5 + [9]), llm) == 2
    assert frozen_prefix_length(torch.tensor([5]), torch.tensor([IGNORE_ID]), llm) == 0
    # a text id with a trainable row (an added tag) ends the prefix as well
    tagged = _model("llama_tied", trainable_text_ids=[7, 99]).llm
    ids, target = _sample([5, 6, 7, 8], True, [9, 10])
    assert frozen_prefix_length(ids, target, tagged) == 2


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_prefix_reuse_equals_full_forward(family):
    model = _model(family)
    full = copy.deepcopy(model)
    full.reuse_frozen_prefix = False
    assert frozen_prefix_blocker(model.llm) is None
    batch = _half_right(model, _batch())
    expected = _run(full, batch)
    _assert_same(_run(model, batch), expected)  # computes the prefixes
    assert model.prefix_cache.misses == 3 and model.prefix_cache.hits == 1
    _assert_same(_run(model, batch), expected)  # reuses them
    assert model.prefix_cache.misses == 3 and model.prefix_cache.hits == 5
    with torch.no_grad():  # validation: no gradient, same loss
        torch.testing.assert_close(model(**batch)[0], expected[0], rtol=1e-5, atol=1e-6)

    # new LLM weights (as an --init_param or resumed checkpoint loads them): new prefixes
    state = {k: v + 0.05 * torch.randn_like(v) for k, v in full.llm.causal_lm.state_dict().items()}
    full.llm.causal_lm.load_state_dict(state)
    model.llm.causal_lm.load_state_dict(state)
    _assert_same(_run(model, batch), _run(full, batch))
    assert model.prefix_cache.misses == 6


@pytest.mark.parametrize("trains", ["llm", "lora"])
def test_trained_llm_falls_back_to_the_full_forward(trains):
    model = _model("llama_tied")
    if trains == "lora":
        model.llm.causal_lm = add_lora(model.llm.causal_lm, r=4, alpha=8, dropout=0.0)
        for name, p in model.llm.causal_lm.named_parameters():  # LoRA B starts at zero
            if "lora_B" in name:
                p.data.normal_(0, 0.1)
    else:
        set_trainable_parts(model, "all")
    full = copy.deepcopy(model)
    full.reuse_frozen_prefix = False
    assert "the LLM trains" in frozen_prefix_blocker(model.llm)
    batch = _batch()
    ours, expected = _run(model, batch), _run(full, batch)
    assert any(n.startswith("llm.causal_lm.") for n in ours[3])  # the prefix's share included
    _assert_same(ours, expected)
    assert model.prefix_cache.misses == 0


def test_dropout_and_checkpointing_block_reuse():
    model = _model("qwen2")
    model.llm.causal_lm.config.attention_dropout = 0.1
    assert "dropout" in frozen_prefix_blocker(model.llm)
    model.eval()
    assert frozen_prefix_blocker(model.llm) is None
    model.train()
    model.llm.causal_lm.config.attention_dropout = 0.0
    model.llm.causal_lm.gradient_checkpointing_enable()
    assert "checkpointing" in frozen_prefix_blocker(model.llm)


def _cosine(a, b):
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.mark.parametrize("reuse", [False, True])
def test_bfloat16_compute_is_close_to_float32(reuse):
    fp32 = _model("llama_tied")
    bf16 = copy.deepcopy(fp32)
    bf16.llm_compute_dtype = "bfloat16"
    fp32.reuse_frozen_prefix = bf16.reuse_frozen_prefix = reuse
    batch = _half_right(fp32, _batch())
    loss16, stats16, _, grads16 = _run(bf16, batch)
    loss32, _, _, grads32 = _run(fp32, batch)
    assert loss16.dtype == torch.float32
    assert float(loss16) != float(loss32)  # the body did run in bfloat16
    torch.testing.assert_close(loss16, loss32, rtol=2e-2, atol=0)
    flat16 = torch.cat([grads16[n].flatten() for n in sorted(grads32)])
    flat32 = torch.cat([grads32[n].flatten() for n in sorted(grads32)])
    assert _cosine(flat16, flat32) > 0.99
    if reuse:
        assert bf16.prefix_cache.misses == 3
        # the same cache under float32 now: bfloat16 key/values must not be reused
        bf16.llm_compute_dtype = "float32"
        _assert_same(_run(bf16, batch), _run(fp32, batch))
        assert bf16.prefix_cache.misses == 6


def test_unknown_compute_dtype_is_refused():
    model = _model("qwen2")
    with pytest.raises(ValueError, match="llm_compute_dtype"):
        EChatModel(model.frontend, model.encoder, model.adapter, model.llm,
                   llm_compute_dtype="float16")


def test_auto_compute_dtype_follows_the_cpu(monkeypatch):
    from espnet2_echat.models import compute_dtype

    for native, expected in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(compute_dtype, "cpu_has_native_bf16", lambda: native)
        assert compute_dtype.autocast_dtype("auto", "cpu") is expected
    assert compute_dtype.autocast_dtype("bfloat16", "cpu") is torch.bfloat16
    assert compute_dtype.autocast_dtype("float32", "cuda") is None


def test_bfloat16_training_attends_in_float32_on_cpu(monkeypatch):
    model = _model("qwen2")
    model.llm_compute_dtype = "bfloat16"
    seen = []
    sdpa = nn.functional.scaled_dot_product_attention

    def spy(query, key, value, *args, **kwargs):
        seen.append((query.dtype, key.dtype, value.dtype))
        return sdpa(query, key, value, *args, **kwargs)

    monkeypatch.setattr(nn.functional, "scaled_dot_product_attention", spy)
    projections = []
    hook = model.llm.causal_lm.model.layers[0].self_attn.q_proj.register_forward_hook(
        lambda m, i, out: projections.append(out.dtype)
    )
    _run(model, _batch())
    hook.remove()
    assert seen and all(d == (torch.float32,) * 3 for d in seen), seen
    assert projections and all(d == torch.bfloat16 for d in projections)  # still autocast
    assert model.llm.causal_lm.config._attn_implementation == "sdpa"  # restored
