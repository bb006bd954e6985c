"""Whisper weights in HF, OpenAI and WeNet naming load into WhisperStyleEncoder, and the
encoder then equals transformers' own WhisperEncoder on a 30 s input."""

import pytest
import torch
from transformers import WhisperConfig, WhisperModel

from espnet2_echat.convert.whisper import load_whisper_encoder
from espnet2_echat.models.whisper_encoder import WhisperStyleEncoder, whisper_sinusoids

D, HEADS, FFN, LAYERS, MELS = 32, 4, 64, 2, 80


@pytest.fixture(scope="module")
def hf_whisper(tmp_path_factory):
    torch.manual_seed(0)
    config = WhisperConfig(
        num_mel_bins=MELS, d_model=D, encoder_attention_heads=HEADS, encoder_ffn_dim=FFN,
        encoder_layers=LAYERS, decoder_layers=1, decoder_attention_heads=HEADS,
        decoder_ffn_dim=FFN, vocab_size=51865, max_source_positions=1500, max_target_positions=8,
    )
    model = WhisperModel(config).eval()
    with torch.no_grad():  # HF initialises the table randomly; real checkpoints hold the sinusoid
        model.encoder.embed_positions.weight.copy_(whisper_sinusoids(1500, D))
    path = tmp_path_factory.mktemp("hf_whisper")
    model.save_pretrained(path)
    return model, path


def _ours() -> WhisperStyleEncoder:
    return WhisperStyleEncoder(MELS, D, HEADS, FFN, LAYERS).eval()


def test_hf_dir_loads_and_matches_transformers(hf_whisper):
    model, path = hf_whisper
    ours = _ours()
    load_whisper_encoder(ours, str(path))
    feats = torch.randn(1, 3000, MELS)
    with torch.no_grad():
        ref = model.encoder(feats.transpose(1, 2)).last_hidden_state
        out, lengths = ours(feats, torch.tensor([3000]))
    assert lengths.tolist() == [1500]
    assert torch.allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("naming", ["openai", "wenet"])
def test_openai_and_wenet_checkpoints(hf_whisper, tmp_path, naming):
    model, path = hf_whisper
    ref = _ours()
    load_whisper_encoder(ref, str(path))
    sd = ref.state_dict()
    if naming == "openai":
        ckpt = {"encoder.conv1.weight": sd["conv1.weight"], "encoder.conv1.bias": sd["conv1.bias"],
                "encoder.conv2.weight": sd["conv2.weight"], "encoder.conv2.bias": sd["conv2.bias"],
                "encoder.ln_post.weight": sd["layer_norm.weight"],
                "encoder.ln_post.bias": sd["layer_norm.bias"],
                "encoder.positional_embedding": whisper_sinusoids(1500, D)}
        names = {"self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key",
                 "self_attn.v_proj": "attn.value", "self_attn.out_proj": "attn.out",
                 "fc1": "mlp.0", "fc2": "mlp.2", "self_attn_layer_norm": "attn_ln",
                 "final_layer_norm": "mlp_ln"}
        layer_fmt = "encoder.blocks.{i}.{name}"
        ckpt = {"dims": {}, "model_state_dict": ckpt}
        target = ckpt["model_state_dict"]
    else:
        ckpt = {"encoder.embed.conv.0.weight": sd["conv1.weight"],
                "encoder.embed.conv.0.bias": sd["conv1.bias"],
                "encoder.embed.conv.2.weight": sd["conv2.weight"],
                "encoder.embed.conv.2.bias": sd["conv2.bias"],
                "encoder.after_norm.weight": sd["layer_norm.weight"],
                "encoder.after_norm.bias": sd["layer_norm.bias"],
                "encoder.embed.pos_enc.pe": whisper_sinusoids(30000, D)[None],
                "decoder.embed.0.weight": torch.zeros(1)}  # decoder tensors are ignored
        names = {"self_attn.q_proj": "self_attn.linear_q", "self_attn.k_proj": "self_attn.linear_k",
                 "self_attn.v_proj": "self_attn.linear_v", "self_attn.out_proj": "self_attn.linear_out",
                 "fc1": "feed_forward.w_1", "fc2": "feed_forward.w_2",
                 "self_attn_layer_norm": "norm1", "final_layer_norm": "norm2"}
        layer_fmt = "encoder.encoders.{i}.{name}"
        target = ckpt
    for key, value in sd.items():
        if key.startswith("layers."):
            _, i, rest = key.split(".", 2)
            module, param = rest.rsplit(".", 1)
            target[layer_fmt.format(i=i, name=names[module]) + "." + param] = value
    file = tmp_path / f"{naming}.pt"
    torch.save(ckpt, file)
    ours = _ours()
    load_whisper_encoder(ours, str(file))
    for key, value in ours.state_dict().items():
        assert torch.equal(value, sd[key]), key


def _wenet_with_table(hf_whisper, table, path):
    """A WeNet-named checkpoint of the fixture's weights with ``table`` as its pe."""
    ref = _ours()
    load_whisper_encoder(ref, str(hf_whisper[1]))
    sd = ref.state_dict()
    ckpt = {"encoder.embed.conv.0.weight": sd["conv1.weight"], "encoder.embed.conv.0.bias": sd["conv1.bias"],
            "encoder.embed.conv.2.weight": sd["conv2.weight"], "encoder.embed.conv.2.bias": sd["conv2.bias"],
            "encoder.after_norm.weight": sd["layer_norm.weight"],
            "encoder.after_norm.bias": sd["layer_norm.bias"], "encoder.embed.pos_enc.pe": table[None]}
    names = {"self_attn.q_proj": "self_attn.linear_q", "self_attn.k_proj": "self_attn.linear_k",
             "self_attn.v_proj": "self_attn.linear_v", "self_attn.out_proj": "self_attn.linear_out",
             "fc1": "feed_forward.w_1", "fc2": "feed_forward.w_2",
             "self_attn_layer_norm": "norm1", "final_layer_norm": "norm2"}
    for key, value in sd.items():
        if key.startswith("layers."):
            _, i, rest = key.split(".", 2)
            module, param = rest.rsplit(".", 1)
            ckpt[f"encoder.encoders.{i}.{names[module]}.{param}"] = value
    torch.save(ckpt, path)
    return str(path)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_rounded_table_is_accepted_and_used(hf_whisper, tmp_path, dtype):
    """Released Whispers store the table in float16: accepted, and the encoder computes with
    it (rows past the stored 1500 come from the formula)."""
    rounded = whisper_sinusoids(1500, D).to(dtype)
    source = _wenet_with_table(hf_whisper, rounded, tmp_path / "rounded.pt")
    ours = _ours()  # 30000 rows
    load_whisper_encoder(ours, source)
    assert torch.equal(ours.positions[:1500], rounded.float())
    assert torch.equal(ours.positions[1500:], whisper_sinusoids(30000, D)[1500:])
    assert not torch.equal(ours.positions[:1500], whisper_sinusoids(1500, D))
    feats = torch.randn(1, 200, MELS)
    exact = _ours()
    load_whisper_encoder(exact, str(hf_whisper[1]))
    with torch.no_grad():  # the table reaches the output
        assert not torch.allclose(ours(feats, torch.tensor([200]))[0],
                                  exact(feats, torch.tensor([200]))[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("how", ["shifted", "random", "scaled"])
def test_other_tables_are_refused(hf_whisper, tmp_path, how):
    exact = whisper_sinusoids(1500, D)
    table = {"shifted": torch.cat([exact[1:], exact[:1]]), "random": torch.randn(1500, D),
             "scaled": exact * 1.01}[how]
    source = _wenet_with_table(hf_whisper, table, tmp_path / f"{how}.pt")
    with pytest.raises(ValueError, match=r"\.pt: embed\.pos_enc\.pe: not the whisper sinusoid"):
        load_whisper_encoder(_ours(), source)
