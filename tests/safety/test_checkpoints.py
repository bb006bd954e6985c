"""A checkpoint is data, never code: every loader in reach refuses a pickle payload
(ESPnet's init_param, resume, n-best averaging and build_model_from_file included), the
payload never runs, and ESPnet's real training state still loads."""

import datetime
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import espnet2_echat.tasks  # noqa: F401  (installs the weights-only loaders)
from espnet2_echat.safety.checkpoints import UnsafeCheckpointError, installed, weights_only_load


class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2, 2), "x": _Payload(marker)}, path)
    return path, marker


def _init_param(path):
    from espnet2.torch_utils.load_pretrained_model import load_pretrained_model

    load_pretrained_model(str(path), torch.nn.Linear(2, 2), "cpu")


def _resume(path):
    from espnet2.train.reporter import Reporter
    from espnet2.train.trainer import Trainer

    model = torch.nn.Linear(2, 2)
    Trainer.resume(path, model, Reporter(), [torch.optim.SGD(model.parameters(), 0.1)], [None], None)


def _average(path):
    import shutil

    from espnet2.main_funcs.average_nbest_models import average_nbest_models
    from espnet2.train.reporter import Reporter

    out = path.parent
    reporter = Reporter()
    for epoch in (1, 2):
        shutil.copy(path, out / f"{epoch}epoch.pth")
        reporter.set_epoch(epoch)
        with reporter.observe("valid") as sub:
            sub.register({"acc": 0.5 + epoch / 10})
    average_nbest_models(out, reporter, [("valid", "acc", "max")], 2)


def _strict_build(path):
    from espnet2_echat.tasks.strict_loading import load_state_dict_strict

    load_state_dict_strict(torch.nn.Linear(2, 2), weights_only_load(path), str(path))


def _abs_task_build(path):
    import espnet2.tasks.abs_task as abs_task

    abs_task.torch.load(path, map_location="cpu", weights_only=False)  # as ESPnet calls it


LOADERS = {"init_param": _init_param, "resume": _resume, "average_nbest": _average,
           "strict_build": _strict_build, "abs_task_build_model_from_file": _abs_task_build}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_pickle_payload_is_refused_and_never_runs(evil, loader):
    path, marker = evil
    assert installed()
    with pytest.raises(UnsafeCheckpointError, match="refused to load"):
        LOADERS[loader](path)
    assert not marker.exists()


def test_init_param_cli_refuses_a_payload(evil, tmp_path):
    from espnet2.torch_utils.load_pretrained_model import load_pretrained_model

    path, marker = evil
    with pytest.raises(UnsafeCheckpointError, match=str(path.name)):
        load_pretrained_model(f"{path}:::", torch.nn.Linear(2, 2), "cpu")
    assert not marker.exists()


def test_converter_refuses_a_payload(evil, tmp_path):
    from espnet2_echat.convert.osum_echat import convert_osum_echat

    path, marker = evil
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("previous: model\n")
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):
        convert_osum_echat(str(path), str(path), str(tmp_path), str(out))
    assert not marker.exists()
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]  # untouched
    assert (out / "config.yaml").read_text() == "previous: model\n"


def test_espnet_training_state_still_loads(tmp_path):
    """The reporter keeps numpy scalars and timedeltas: allowed, object arrays are not."""
    state = {"model": {"w": torch.ones(2)}, "reporter": {"stats": {1: {"valid": {
        "acc": np.float64(0.5), "n": np.int64(3), "time": datetime.timedelta(seconds=2)}}}}}
    torch.save(state, tmp_path / "ok.pth")
    loaded = weights_only_load(tmp_path / "ok.pth")
    assert loaded["reporter"]["stats"][1]["valid"]["acc"] == 0.5
    torch.save({"a": np.array([1, "x"], dtype=object)}, tmp_path / "obj.pth")
    with pytest.raises(UnsafeCheckpointError):
        weights_only_load(tmp_path / "obj.pth")
