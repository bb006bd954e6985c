"""token2wav training: CLI smoke run, learning on a toy corpus, HiFT GAN turns."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from espnet2_echat.bin import token2wav_train
from espnet2_echat.models.token2wav.espnet_model import ESPnetToken2WavModel
from espnet2_echat.models.token2wav.speaker_prompt import (
    SpeakerPrompt,
    standin_speaker_embedding,
)
from espnet2_echat.tasks.token2wav import (
    Token2WavGANTask,
    Token2WavTask,
    token2wav_task_for,
)
from tests.helpers import REPO_ROOT
from tests.models.token2wav.toy_corpus import make_toy_datadir, tone_wav

CONF = REPO_ROOT / "conf" / "token2wav"


def _model_conf(name: str) -> dict:
    return yaml.safe_load((CONF / name).read_text(encoding="utf-8"))["model_conf"]


def test_task_selection(tmp_path):
    assert (
        token2wav_task_for(["--config", str(CONF / "train_tiny.yaml")]) is Token2WavTask
    )
    assert (
        token2wav_task_for(["--config", str(CONF / "train_tiny_hift.yaml")])
        is Token2WavGANTask
    )
    assert token2wav_task_for(["--model_conf", "train_part=both"]) is Token2WavGANTask


def test_train_cli_flow_loss_decreases(tmp_path, caplog):
    data = tmp_path / "data"
    make_toy_datadir(data, num_utts=6)
    out = tmp_path / "exp"
    args = [
        "--config",
        str(CONF / "train_tiny.yaml"),
        "--output_dir",
        str(out),
        "--ngpu",
        "0",
        "--max_epoch",
        "2",
        "--batch_size",
        "3",
        "--seed",
        "0",
    ]
    for split in ("train", "valid"):
        args += [
            f"--{split}_data_path_and_name_and_type",
            f"{data}/wav.scp,speech,sound",
            f"--{split}_data_path_and_name_and_type",
            f"{data}/speech_token,speech_token,text_int",
            f"--{split}_shape_file",
            f"{data}/speech_shape",
        ]
    with caplog.at_level("INFO"):
        token2wav_train.main(args)
    losses = [
        float(x)
        for x in re.findall(r"epoch results: \[train\].*? loss=([\d.]+)", caplog.text)
    ]
    assert len(losses) == 2, caplog.text[-2000:]
    assert losses[1] < losses[0]
    model, _ = Token2WavTask.build_model_from_file(
        out / "config.yaml", out / "valid.loss.best.pth"
    )
    assert model.vocoder_type == "griffin_lim"


def test_train_cli_hift_gan(tmp_path, caplog):
    """HiFT alone with CosyVoice's GAN losses through ESPnet's GANTrainer (flow frozen)."""
    data = tmp_path / "data"
    make_toy_datadir(data, num_utts=2, min_tokens=20, max_tokens=24)
    out = tmp_path / "exp"
    args = ["--config", str(CONF / "train_tiny_hift.yaml"), "--output_dir", str(out)]
    args += ["--ngpu", "0", "--max_epoch", "1", "--batch_size", "2", "--seed", "0"]
    for split in ("train", "valid"):
        args += [
            f"--{split}_data_path_and_name_and_type",
            f"{data}/wav.scp,speech,sound",
        ]
        args += [f"--{split}_shape_file", f"{data}/speech_shape"]
    with caplog.at_level("INFO"):
        token2wav_train.main(args)
    assert "generator_mel_loss=" in caplog.text and "discriminator_loss=" in caplog.text
    model, _ = Token2WavGANTask.build_model_from_file(
        out / "config.yaml", out / "1epoch.pth"
    )
    assert model.train_part == "hift"


def _mel_distance(model: ESPnetToken2WavModel, wavs, tokens) -> float:
    dists = []
    model.eval()
    for wav, tok in zip(wavs, tokens):
        target = model.speech_to_mel(wav[None])
        prompt = SpeakerPrompt(
            torch.zeros(1, 0, dtype=torch.long),
            torch.zeros(1, 0, 80),
            standin_speaker_embedding(target),
        )
        with torch.no_grad():
            mel = model.flow.inference(
                tok[None],
                prompt.prompt_token,
                prompt.prompt_feat,
                prompt.embedding,
                generator=torch.Generator().manual_seed(0),
            ).transpose(1, 2)
        n = min(mel.shape[1], target.shape[1])
        dists.append(float((mel[:, :n] - target[:, :n]).abs().mean()))
    model.train()
    return float(np.mean(dists))


def test_trained_flow_beats_untrained(tmp_path):
    """A few dozen steps on tone 'speech' bring the synthesised mel clearly closer."""
    torch.manual_seed(0)
    conf = _model_conf("train_tiny.yaml")
    conf["speech_fs"] = 22050
    conf["flow_conf"]["estimator_conf"].update(channels=[32, 32], attention_head_dim=16)
    model = ESPnetToken2WavModel(**conf)
    utts = make_toy_datadir(tmp_path, num_utts=3, min_tokens=24, max_tokens=32)
    wavs = [torch.from_numpy(tone_wav(t, 22050)) for t in utts.values()]
    toks = [torch.tensor(t) for t in utts.values()]
    speech = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    speech_lens = torch.tensor([len(w) for w in wavs])
    tok = torch.nn.utils.rnn.pad_sequence(toks, batch_first=True, padding_value=-1)
    tok_lens = torch.tensor([len(t) for t in toks])
    before = _mel_distance(model, wavs[:2], toks[:2])
    optim = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(40):
        loss, _, _ = model(speech, speech_lens, tok, tok_lens)
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optim.step()
    after = _mel_distance(model, wavs[:2], toks[:2])
    assert after < 0.75 * before, (before, after)


def test_hift_gan_turns():
    conf = _model_conf("train_tiny_hift.yaml")
    conf["segment_frames"] = 8
    model = ESPnetToken2WavModel(**conf)
    speech = torch.from_numpy(tone_wav([0, 1, 2, 3, 4, 5, 6, 7] * 2))[None].repeat(2, 1)
    lens = torch.tensor([speech.shape[1], speech.shape[1] - 1000])
    gen = model(speech, lens, forward_generator=True)
    assert gen["optim_idx"] == 0 and torch.isfinite(gen["loss"])
    assert {
        "generator_adv_loss",
        "generator_fm_loss",
        "generator_mel_loss",
        "generator_tpr_loss",
    } <= set(gen["stats"])
    gen["loss"].backward()
    assert model.hift.conv_post.parametrizations.weight.original1.grad is not None
    disc = model(speech, lens, forward_generator=False)
    assert disc["optim_idx"] == 1 and torch.isfinite(disc["loss"])
    with pytest.raises(ValueError, match="speech_token"):
        ESPnetToken2WavModel(**{**conf, "train_part": "both"})(speech, lens)


def test_flow_training_input_errors():
    model = ESPnetToken2WavModel(**_model_conf("train_tiny.yaml"))
    speech = torch.from_numpy(tone_wav([0, 1, 2, 3] * 5))[None]
    lens = torch.tensor([speech.shape[1]])
    token = torch.tensor([[0, 1, 2, 4096]])
    with pytest.raises(ValueError, match=r"outside the flow's vocabulary \[0, 4095\]"):
        model(speech, lens, token, torch.tensor([4]))
    with pytest.raises(ValueError, match="spk_embedding must be 192-d, got 64"):
        model(speech, lens, token % 4096, torch.tensor([4]), torch.zeros(1, 64))


@pytest.mark.reference
def test_finetune_from_converted_weights(token2wav_tiny_dir, tmp_path, caplog):
    """Fine-tuning (issue: stage 3 fine-tunes token2wav) starts from converted CosyVoice
    weights through ESPnet's --init_param and trains the flow on a data dir."""
    from espnet2_echat.convert.cosyvoice import convert_cosyvoice

    config, weights = convert_cosyvoice(token2wav_tiny_dir / "CosyVoice-300M-25Hz", tmp_path / "conv")
    data = tmp_path / "data"
    make_toy_datadir(data, num_utts=4)
    out = tmp_path / "exp"
    args = ["--config", str(config), "--init_param", str(weights), "--output_dir", str(out),
            "--ngpu", "0", "--max_epoch", "1", "--batch_size", "2", "--seed", "0",
            "--optim", "adam", "--optim_conf", "lr=0.0001", "--model_conf", "train_part=flow",
            "--num_att_plot", "0", "--use_tensorboard", "false", "--batch_type", "unsorted"]
    for split in ("train", "valid"):
        args += [
            f"--{split}_data_path_and_name_and_type", f"{data}/wav.scp,speech,sound",
            f"--{split}_data_path_and_name_and_type", f"{data}/speech_token,speech_token,text_int",
            f"--{split}_shape_file", f"{data}/speech_shape",
        ]
    with caplog.at_level("INFO"):
        token2wav_train.main(args)
    start = torch.load(weights, weights_only=True)
    tuned, _ = Token2WavTask.build_model_from_file(out / "config.yaml", out / "1epoch.pth")
    tuned = tuned.state_dict()
    # the flow moved away from the converted weights; HiFT (not trained here) did not
    moved = [k for k in start if k.startswith("flow.") and not torch.equal(start[k], tuned[k])]
    assert len(moved) > 100
    hift = [k for k in start if k.startswith("hift.")]
    assert hift and all(torch.equal(start[k], tuned[k]) for k in hift)
