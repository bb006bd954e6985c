"""``--encoder_cache``: the frozen encoder's outputs dumped once give the same batches' loss as
encoding the audio at every step, a stale or missing cache is refused, and echat_train trains
on it (tiny size)."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from espnet2.train.distributed_utils import DistributedOption

from espnet2_echat.tasks.echat import EChatTask
from espnet2_echat.train.encoder_cache import (
    CACHE_INFO,
    CACHE_SCP,
    dump_encoder_outputs,
    encoder_fingerprint,
)

from .corpus import make_corpus

REPO = Path(__file__).resolve().parents[2]
STAGE1 = REPO / "conf" / "train_stage1_understanding.yaml"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), num_per_phrase=2)


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def cmd_of(corpus, out: Path, *extra: str):
    return [
        "--config", str(STAGE1), "--output_dir", str(out), "--trainable_parts", "link",
        "--train_data_dir", str(corpus["train_asr"]), "--train_data_dir", str(corpus["train_t2t"]),
        "--valid_data_dir", str(corpus["valid_asr"]), "--valid_data_dir", str(corpus["train_asr"]),
        "--batch_tokens", "400", "--use_tensorboard", "false", *extra,
    ]


def valid_losses(model, args):
    factory = EChatTask.build_iter_factory(args, DistributedOption(distributed=False), "valid")
    out = {}
    with torch.no_grad():
        for keys, batch in factory.build_iter(1):
            loss, _, _ = model(**batch)
            out[tuple(keys)] = (float(loss), "speech_enc" in batch)
    return out


def test_cached_outputs_give_the_same_loss(corpus, tmp_path):
    args = EChatTask.get_parser().parse_args(cmd_of(corpus, tmp_path))
    torch.manual_seed(0)
    model = EChatTask.build_model(args).eval()
    fp = encoder_fingerprint(args)
    dirs = [corpus["valid_asr"], corpus["train_asr"], corpus["train_t2t"]]
    done = dump_encoder_outputs(model.frontend, model.encoder, dirs, tmp_path / "store", fp,
                                "float32")
    assert set(done) == {str(corpus["valid_asr"]), str(corpus["train_asr"])}  # t2t: no audio
    # one file per distinct audio content (md5 here, not the cache's own key)
    contents = {hashlib.md5(Path(line.split(maxsplit=1)[1]).read_bytes()).hexdigest()
                for d in dirs[:2] for line in (d / "wav.scp").read_text().splitlines()}
    assert len(list((tmp_path / "store").glob("*.npy"))) == len(contents) > 1
    # the same audio at another path (a task dir copy of the format stage) is not re-encoded
    copy = tmp_path / "copy_asr"
    copy.mkdir()
    lines = []
    for line in (corpus["valid_asr"] / "wav.scp").read_text().splitlines():
        utt, path = line.split(maxsplit=1)
        shutil.copyfile(path, copy / f"{utt}.wav")
        lines.append(f"{utt} {copy / f'{utt}.wav'}\n")
    (copy / "wav.scp").write_text("".join(lines))
    dump_encoder_outputs(model.frontend, model.encoder, [copy], tmp_path / "store", fp, "float32")
    assert len(list((tmp_path / "store").glob("*.npy"))) == len(contents)
    assert (copy / CACHE_SCP).read_text() == (corpus["valid_asr"] / CACHE_SCP).read_text()

    direct = valid_losses(model, args)
    cached_args = EChatTask.get_parser().parse_args(cmd_of(corpus, tmp_path, "--encoder_cache", "true"))
    cached = valid_losses(model, cached_args)
    assert direct.keys() == cached.keys() and len(direct) > 1
    for keys, (loss, used) in cached.items():
        assert used and not direct[keys][1]
        assert loss == pytest.approx(direct[keys][0], rel=1e-5), keys

    # float16 storage (the recipe's) changes the loss only by its rounding
    for d in dirs[:2]:
        (d / CACHE_INFO).unlink()
    dump_encoder_outputs(model.frontend, model.encoder, dirs, tmp_path / "store16", fp, "float16")
    for keys, (loss, _) in valid_losses(model, cached_args).items():
        assert loss == pytest.approx(direct[keys][0], rel=5e-3), keys


def test_stale_or_missing_cache_is_refused(corpus, tmp_path):
    args = EChatTask.get_parser().parse_args(cmd_of(corpus, tmp_path, "--encoder_cache", "true"))
    d = corpus["valid_asr"]
    (d / CACHE_INFO).unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match="dump_encoder_outputs"):
        EChatTask.build_iter_factory(args, DistributedOption(distributed=False), "valid")
    info = dict(encoder_fingerprint(args), dtype="float32")
    info["encoder_init"] = "wheel:whisper-base"  # made by another encoder
    (d / CACHE_INFO).write_text(json.dumps(info))
    (d / "encoder_out.scp").write_text("")
    with pytest.raises(ValueError, match="dump them again"):
        EChatTask.build_iter_factory(args, DistributedOption(distributed=False), "valid")
    (d / CACHE_INFO).unlink()
    (d / "encoder_out.scp").unlink()


def test_a_dump_whose_store_is_gone_is_refused_then_redone(corpus, tmp_path):
    """A dump left by another run whose store folder was removed: training names the missing
    file instead of failing in numpy, and dumping again recomputes it instead of skipping."""
    args = EChatTask.get_parser().parse_args(cmd_of(corpus, tmp_path, "--encoder_cache", "true"))
    torch.manual_seed(0)
    model = EChatTask.build_model(args)
    d, fingerprint = corpus["valid_asr"], encoder_fingerprint(args)
    first = dump_encoder_outputs(model.frontend, model.encoder, [d], tmp_path / "old", fingerprint)
    assert first == {str(d): len((d / "wav.scp").read_text().splitlines())}
    shutil.rmtree(tmp_path / "old")
    with pytest.raises(FileNotFoundError, match=r"encoder outputs are gone .*dump them again"):
        EChatTask.build_iter_factory(args, DistributedOption(distributed=False), "valid")
    again = dump_encoder_outputs(model.frontend, model.encoder, [d], tmp_path / "new", fingerprint)
    assert again == first
    listed = [line.split()[1] for line in (d / CACHE_SCP).read_text().splitlines()]
    assert all(Path(p).is_file() and Path(p).parent == (tmp_path / "new").resolve() for p in listed)
    (d / CACHE_INFO).unlink()
    (d / CACHE_SCP).unlink()


def test_a_trained_encoder_cannot_use_the_cache(corpus, tmp_path):
    args = EChatTask.get_parser().parse_args(
        cmd_of(corpus, tmp_path, "--encoder_cache", "true", "--trainable_parts", "all")
    )
    with pytest.raises(ValueError, match="frozen encoder"):
        EChatTask.build_model(args)


def test_echat_train_runs_on_the_cache(corpus, tmp_path):
    args = EChatTask.get_parser().parse_args(cmd_of(corpus, tmp_path))
    torch.manual_seed(0)
    model = EChatTask.build_model(args)
    dump_encoder_outputs(model.frontend, model.encoder,
                         [corpus["valid_asr"], corpus["train_asr"]], tmp_path / "store",
                         encoder_fingerprint(args), "float16")
    out = tmp_path / "run"
    EChatTask.main(cmd=cmd_of(corpus, out, "--encoder_cache", "true", "--max_epoch", "2",
                              "--num_iters_per_epoch", "3", "--optim_conf", "lr=0.005",
                              "--scheduler_conf", "warmup_steps=2", "--keep_nbest_models", "1"))
    assert (out / "valid.loss.best.pth").is_file()
    for d in (corpus["valid_asr"], corpus["train_asr"]):
        (d / CACHE_INFO).unlink()
