"""Store a speaker prompt in a trained token2wav model, so that inference needs nothing else."""

import logging
from pathlib import Path

import torch
import yaml

from espnet2_echat.models.token2wav.prompt_frontend import speaker_prompt_from_files


def store_speaker_prompt(
    train_config: str,
    model_file: str,
    prompt_wav: str,
    out_dir: str,
    prompt_speech_token: str = None,
    prompt_embedding: str = None,
    onnx_dir: str = None,
) -> Path:
    """Write ``out_dir/config.yaml`` + ``model.pth``: the model with the prompt of ``prompt_wav``.

    ``prompt_speech_token`` is a one-line file of the prompt's speech tokens (from the same
    tokenizer as the training data); without it the prompt keeps only the speaker vector.
    ``prompt_embedding`` is a ``.npy`` x-vector; without it the documented stand-in is used.
    ``onnx_dir`` (with ``speech_tokenizer_v1.onnx`` / ``campplus.onnx``) computes the
    tokens / x-vector not given, as CosyVoice does.
    """
    from espnet2_echat.tasks.token2wav import Token2WavTask

    model, args = Token2WavTask.build_model_from_file(train_config, model_file)
    prompt = speaker_prompt_from_files(
        prompt_wav, model.mel, prompt_speech_token, prompt_embedding, onnx_dir
    )
    model.store_prompt(prompt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = vars(args)
    config["model_conf"] = dict(config.get("model_conf") or {})
    config["model_conf"]["prompt_num_frames"] = int(prompt.prompt_feat.shape[1])
    config["model_conf"]["prompt_num_tokens"] = int(prompt.prompt_token.shape[1])
    with (out / "config.yaml").open("w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    torch.save(model.state_dict(), out / "model.pth")
    logging.info(
        f"stored the prompt of {prompt_wav} ({prompt.prompt_token.shape[1]} tokens, "
        f"{prompt.prompt_feat.shape[1]} frames) in {out}"
    )
    return out
