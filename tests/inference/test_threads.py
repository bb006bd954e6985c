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
