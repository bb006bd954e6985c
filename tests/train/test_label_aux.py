"""``--label_aux_weight``: a linear head per label kind on the mean audio embedding adds its
cross-entropy to the LLM loss; labels come from the data dir's ``utt2<kind>`` files."""

from pathlib import Path

import numpy as np
import pytest
import torch
from espnet2.train.distributed_utils import DistributedOption

from espnet2_echat.data.label_ids import label_indices
from espnet2_echat.data.templates import IGNORE_ID
from espnet2_echat.models.label_heads import LabelHeads
from espnet2_echat.tasks.echat import EChatTask

from .corpus import make_corpus

REPO = Path(__file__).resolve().parents[2]
STAGE1 = REPO / "conf" / "train_stage1_understanding.yaml"


def test_label_indices_follow_the_label_sets():
    kinds = ("age", "gender", "emotion", "event")
    got = label_indices("u1", {"utt2gender": "<FEMALE>", "utt2emotion": "happy",
                               "utt2age": "<&&>"}, kinds)
    # GENDER_LABELS = (<MALE>, <FEMALE>); EMOTION_LABELS starts with <HAPPY>
    assert got.tolist() == [IGNORE_ID, 1, 0, IGNORE_ID]
    with pytest.raises(ValueError, match=r"u7: utt2gender: .*not a gender label"):
        label_indices("u7", {"utt2gender": "<ROBOT>"}, kinds)


def test_heads_give_the_cross_entropy_of_the_mean_embedding():
    torch.manual_seed(0)
    heads = LabelHeads(8, ("gender", "age"))
    one, two, past = torch.randn(5, 8), torch.randn(3, 8), torch.randn(4, 8)
    audio = [one, None, [past, two], torch.randn(6, 8)]
    labels = torch.tensor([[1, 2], [0, 0], [0, IGNORE_ID], [IGNORE_ID, IGNORE_ID]])
    loss, stats = heads(audio, labels)
    gender = torch.stack([one.mean(0), two.mean(0)])  # sample 1 has no audio, 3 no label
    expect_gender = torch.nn.functional.cross_entropy(
        heads.heads["gender"](gender), torch.tensor([1, 0]))
    expect_age = torch.nn.functional.cross_entropy(
        heads.heads["age"](one.mean(0, keepdim=True)), torch.tensor([2]))
    torch.testing.assert_close(loss, (expect_gender + expect_age) / 2)
    assert set(stats) == {"aux_acc_gender", "aux_acc_age"}
    none, _ = heads([None, torch.randn(2, 8)], torch.tensor([[0, 0], [IGNORE_ID, IGNORE_ID]]))
    assert none is None
    with pytest.raises(ValueError, match="label_aux_kinds"):
        LabelHeads(8, ("gender", "colour"))


def test_last_frame_pool_reads_each_samples_own_last_frame():
    torch.manual_seed(0)
    heads = LabelHeads(8, ("emotion",), pool="last")
    one, two, past = torch.randn(5, 8), torch.randn(3, 8), torch.randn(4, 8)
    loss, _ = heads([one, [past, two]], torch.tensor([[3], [1]]))
    expect = torch.nn.functional.cross_entropy(
        heads.heads["emotion"](torch.stack([one[4], two[2]])), torch.tensor([3, 1]))
    torch.testing.assert_close(loss, expect)
    with pytest.raises(ValueError, match="label_aux_pool"):
        LabelHeads(8, ("emotion",), pool="max")


def test_stats_pool_standardises_mean_and_std_over_the_batch():
    torch.manual_seed(0)
    heads = LabelHeads(4, ("gender",), pool="stats")
    frames = [torch.randn(n, 4) * s + m for n, s, m in ((5, 1.0, 0.0), (7, 3.0, 2.0), (6, 0.5, -1.0))]
    labels = torch.tensor([[0], [1], [IGNORE_ID]])
    loss, _ = heads(frames + [None], torch.cat([labels, torch.tensor([[1]])]))
    # computed another way: numpy statistics, standardised with the batch's biased variance
    feats = np.stack([np.concatenate([f.numpy().mean(0), f.numpy().std(0)]) for f in frames])
    z = (feats - feats.mean(0)) / np.sqrt(feats.var(0) + 1e-5)
    logits = heads.heads["gender"](torch.from_numpy(z).float()[:2])
    expect = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    torch.testing.assert_close(loss, expect, rtol=1e-4, atol=1e-5)
    running = heads.norm.running_mean.clone()
    assert not torch.equal(running, torch.zeros(8))  # the running statistics moved
    heads.eval()
    one, _ = heads(frames[:1], labels[:1])  # evaluation: the running statistics
    z1 = (feats[0] - running.numpy()) / np.sqrt(heads.norm.running_var.numpy() + 1e-5)
    expect1 = torch.nn.functional.cross_entropy(
        heads.heads["gender"](torch.from_numpy(z1).float()[None]), torch.tensor([0]))
    torch.testing.assert_close(one, expect1, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), num_per_phrase=2)


def test_the_model_adds_the_weighted_label_loss(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    args = EChatTask.get_parser().parse_args([
        "--config", str(STAGE1), "--output_dir", str(tmp_path), "--trainable_parts", "link",
        "--train_data_dir", str(corpus["train_asr"]), "--valid_data_dir", str(corpus["valid_asr"]),
        "--batch_tokens", "400", "--label_aux_weight", "2.5",
        "--label_aux_kinds", "gender", "age",
    ])
    torch.manual_seed(0)
    model = EChatTask.build_model(args).eval()
    assert all(p.requires_grad for p in model.label_heads.parameters())
    factory = EChatTask.build_iter_factory(args, DistributedOption(distributed=False), "valid")
    keys, batch = next(iter(factory.build_iter(1)))
    assert batch["label_ids"].shape == (len(keys), 2)
    assert (batch["label_ids"] != IGNORE_ID).all()
    with torch.no_grad():
        loss, stats, _ = model(**batch)
        without, unlabelled, _ = model(**{k: v for k, v in batch.items() if k != "label_ids"})
        # computed another way: the adapter on the encoded speech, each sample's mean frame
        emb, lengths = model.encode_speech(batch["speech"], batch["speech_lengths"])
        pooled = torch.stack([e[:n].mean(0) for e, n in zip(emb, lengths.tolist())])
        labels = batch["label_ids"]
        expect = torch.stack([
            torch.nn.functional.cross_entropy(model.label_heads.heads[k](pooled), labels[:, j])
            for j, k in enumerate(("gender", "age"))
        ]).mean()
    torch.testing.assert_close(without, stats["loss_llm"])
    # a batch without labels reports the LLM's loss too (the checkpoint criterion)
    torch.testing.assert_close(unlabelled["loss_llm"], without)
    assert "loss_label_aux" not in unlabelled
    torch.testing.assert_close(loss, without + 2.5 * expect, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stats["loss_label_aux"].reshape(()), expect, rtol=1e-5, atol=1e-5)
    model.train()
    loss, _, _ = model(**batch)
    loss.backward()
    assert model.adapter.proj.weight.grad is not None
    assert all(p.grad is not None for p in model.label_heads.parameters())


def test_no_label_ids_without_the_weight(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    task = (corpus["valid_asr"] / "task").read_text().split(maxsplit=1)[1].strip()
    sample = {"task": task, "text": "hello", "speech": np.zeros(16000, dtype=np.float32),
              "utt2gender": "<MALE>"}
    for weight, has in (("0", False), ("1", True)):
        args = EChatTask.get_parser().parse_args([
            "--config", str(STAGE1), "--output_dir", str(tmp_path), "--label_aux_weight", weight])
        out = EChatTask.build_preprocess_fn(args, train=False)("u1", sample)
        assert ("label_ids" in out) == has
        assert (EChatTask.build_model(args).label_heads is not None) == has
