"""--nthreads on every decoding / synthesis CLI, and the default that does not oversubscribe."""

import os

import pytest
import torch

from espnet2_echat.bin import echat_inference, echat_server, echat_web_demo, token2wav_inference
from espnet2_echat.inference.threads import default_nthreads, set_nthreads


def test_default_follows_omp_num_threads_then_affinity(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_nthreads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_nthreads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS must be an integer, got 'many'"):
        default_nthreads()


def test_set_nthreads_sets_torch():
    before = torch.get_num_threads()
    try:
        assert set_nthreads(2) == 2 and torch.get_num_threads() == 2
        assert set_nthreads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="nthreads must be >= 1, got 0"):
            set_nthreads(0)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("cli", [echat_inference, echat_server, echat_web_demo, token2wav_inference])
def test_every_cli_takes_nthreads(cli):
    actions = {a.dest: a for a in cli.get_parser()._actions}
    assert "nthreads" in actions and actions["nthreads"].default is None


@pytest.mark.parametrize("cli", [echat_inference, echat_web_demo])
def test_decoding_clis_pass_the_token2wav_matmul_dtype_on(cli):
    import inspect

    from espnet2_echat.inference.batch_decode import inference
    from espnet2_echat.inference.web_demo import launch

    args = cli.get_parser().parse_args(
        ["--token2wav_matmul_dtype", "bfloat16"]
        + (["--data_path_and_name_and_type", "x,speech,sound", "--output_dir", "o", "--task", "asr"]
           if cli is echat_inference else [])
    )
    assert args.token2wav_matmul_dtype == "bfloat16"
    target = inference if cli is echat_inference else launch
    assert "token2wav_matmul_dtype" in inspect.signature(target).parameters


class _Reached(Exception):
    """Raised by the stand-in of a CLI's work, after its threads were set."""


def _stop(*args, **kwargs):
    raise _Reached


# each CLI with the arguments it requires and the function its work starts with (replaced)
_CLI_RUNS = {
    "echat_inference": (
        ["--data_path_and_name_and_type", "x,speech,sound", "--output_dir", "o", "--task", "asr"],
        "espnet2_echat.inference.batch_decode.inference",
    ),
    "token2wav_inference": (
        ["--speech_token", "t", "--output_dir", "o", "--train_config", "c", "--model_file", "m"],
        "espnet2_echat.inference.token2wav.synthesize_speech_token_file",
    ),
    "echat_server": ([], "espnet2_echat.bin.echat_server.load_model"),
    "echat_web_demo": ([], "espnet2_echat.inference.web_demo.launch"),
    "echat_score": (
        ["--data_dir", "d", "--decode_dir", "e", "--out_dir", "o"],
        "espnet2_echat.bin.echat_score.score_decode_dir",
    ),
    "extract_speech_tokens": (
        ["--data_dir", "d", "--tokenizer", "standin", "--model_file", "m.npz"],
        "espnet2_echat.bin.extract_speech_tokens.load_speech_tokenizer",
    ),
    "dump_encoder_outputs": (
        ["--config", "c.yaml", "--data_dir", "d", "--store_dir", "s"],
        "espnet2_echat.tasks.echat.EChatTask.get_parser",
    ),
}


@pytest.mark.parametrize("name", sorted(_CLI_RUNS))
def test_nthreads_reaches_torch(name, monkeypatch):
    """``--nthreads 3`` of every CLI where torch runs ends in ``torch.set_num_threads(3)``
    before the CLI's work starts."""
    import importlib

    cli = importlib.import_module(f"espnet2_echat.bin.{name}")
    required, work = _CLI_RUNS[name]
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setattr(work, _stop)
    with pytest.raises(_Reached):
        cli.main(required + ["--nthreads", "3"])
    assert calls == [3]


@pytest.mark.parametrize(
    "name, flags",
    [
        ("echat_inference", {"int8_heads": True, "compile_step": True}),
        ("echat_web_demo", {"int8_heads": True, "compile_step": True}),
        ("echat_server", {"int8_heads": True}),  # continuous batching: no fixed-shape step
    ],
)
def test_decoder_speed_options_reach_the_model(name, flags, monkeypatch):
    """--int8_heads / --compile_step of each decoding CLI end in Speech2Response's arguments."""
    import importlib

    from espnet2_echat.inference import speech2response

    cli = importlib.import_module(f"espnet2_echat.bin.{name}")
    seen = {}

    def record(self, *args, **kwargs):
        seen.update(kwargs)
        raise _Reached

    monkeypatch.setattr(speech2response.Speech2Response, "__init__", record)
    if name == "echat_web_demo":  # launch imports the class at import time
        monkeypatch.setattr("espnet2_echat.inference.web_demo.Speech2Response.__init__", record)
    required = _CLI_RUNS[name][0]
    with pytest.raises(_Reached):
        cli.main(required + [a for k in flags for a in (f"--{k}", "true")])
    assert {k: seen.get(k) for k in flags} == flags
    if "compile_step" not in flags:
        assert "--compile_step" not in cli.get_parser().format_help()
