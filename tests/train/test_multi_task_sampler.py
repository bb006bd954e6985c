"""Token-budget bucketing and per-task mixing weights."""

from collections import Counter

import pytest
from espnet2.iterators.sequence_iter_factory import SequenceIterFactory

from espnet2_echat.train.multi_task_sampler import MultiTaskBatchSampler, bucket_by_tokens


def test_bucket_respects_the_token_budget():
    items = [(f"u{i}", length, 1.0) for i, length in enumerate([10, 50, 20, 40, 30, 100])]
    batches = bucket_by_tokens(items, batch_tokens=100)
    # sorted by length: 10 20 30 | 40 50 | 100 (3 x 30 = 90; 2 x 50 = 100; alone)
    assert batches == [("u0", "u2", "u4"), ("u3", "u1"), ("u5",)]
    lengths = dict((u, n) for u, n, _ in items)
    for b in batches:
        assert len(b) == 1 or max(lengths[u] for u in b) * len(b) <= 100
    # a smaller budget scale (e.g. x0.5 for long s2s) halves what fits
    assert bucket_by_tokens([(u, n, 0.5) for u, n, _ in items[:3]], 100) == [
        ("u0", "u2"), ("u1",),
    ]
    assert bucket_by_tokens(items, 1000, max_batch_size=2)[0] == ("u0", "u2")


def groups_of(sizes):
    """Groups with ``n`` batches each (every utterance alone in its batch)."""
    return {g: [(f"{g}/{i}", 100, 1.0) for i in range(n)] for g, n in sizes.items()}


def task_counts(batches):
    return Counter(b[0].split("/")[0] for b in batches)


def test_repeat_mode_follows_the_reference_data_yaml():
    sampler = MultiTaskBatchSampler(
        groups_of({"asr": 10, "tts": 4, "s2s": 6}), {"asr": 1, "tts": 2, "s2s": 0.5}, 100
    )
    counts = task_counts(sampler.generate(0))
    assert counts == {"asr": 10, "tts": 8, "s2s": 3}
    assert len(sampler) == 21
    # the fractional part is a different random subset on another pass
    picks = {tuple(b for b in sampler.generate(s) if b[0].startswith("s2s")) for s in range(5)}
    assert len(picks) > 1


def test_proportion_mode_over_epochs_on_espnet_iterator():
    """Drawn through ESPnet's iterator for many short epochs: the shares are the weights."""
    sampler = MultiTaskBatchSampler(
        groups_of({"asr": 30, "tts": 5, "t2t": 15}),
        {"asr": 0.5, "tts": 0.3, "t2t": 0.2},
        100,
        mixing="proportion",
    )
    factory = SequenceIterFactory(
        dataset=None, batches=sampler, num_iters_per_epoch=7, seed=3, shuffle=True
    )
    seen = Counter()
    epochs = 40
    for epoch in range(1, epochs + 1):
        loader = factory.build_iter(epoch)
        seen.update(task_counts(loader.batch_sampler))
    total = sum(seen.values())
    assert total == 7 * epochs
    for task, share in {"asr": 0.5, "tts": 0.3, "t2t": 0.2}.items():
        # within ~3 standard errors of a multinomial share
        tolerance = 3 * (share * (1 - share) / total) ** 0.5
        assert abs(seen[task] / total - share) < tolerance, (task, seen)


def test_distributed_ranks_split_each_batch():
    groups = {"asr": [(f"asr/{i}", 10, 1.0) for i in range(8)]}
    rank0 = MultiTaskBatchSampler(groups, {"asr": 1}, 40, rank=0, world_size=2).generate(1)
    rank1 = MultiTaskBatchSampler(groups, {"asr": 1}, 40, rank=1, world_size=2).generate(1)
    assert len(rank0) == len(rank1) == 2
    for a, b in zip(rank0, rank1):
        assert len(a) == len(b) == 2 and not set(a) & set(b)


def test_bad_weights():
    with pytest.raises(ValueError, match="no weight"):
        MultiTaskBatchSampler(groups_of({"asr": 1}), {}, 100)
    with pytest.raises(ValueError, match="mixing"):
        MultiTaskBatchSampler(groups_of({"asr": 1}), {"asr": 1}, 100, mixing="random")


def test_mixed_pool_repeats_by_weight():
    from espnet2_echat.train.multi_task_sampler import pool_by_weight

    groups = groups_of({"asr": 10, "tts": 4})
    pool = pool_by_weight(groups, {"asr": 0.5, "tts": 2}, seed=1)
    assert Counter(u.split("/")[0] for u, _, _ in pool) == {"asr": 5, "tts": 8}
    batches = bucket_by_tokens(pool, batch_tokens=400)
    assert any(len({u.split("/")[0] for u in b}) == 2 for b in batches)  # mixed batches
