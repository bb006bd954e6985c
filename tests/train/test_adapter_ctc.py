"""CTC alignment of the adapter to the LLM's token embeddings (``train/adapter_ctc.py``,
``bin/align_adapter.py``): the loss against cosine logits and ``F.ctc_loss`` computed by
hand, the best path, learning on a synthetic task, and the CLI on a dumped tiny corpus."""

import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from espnet2.torch_utils.load_pretrained_model import load_pretrained_model
from torch import nn

from espnet2_echat.bin import align_adapter as cli
from espnet2_echat.tasks.echat import EChatTask
from espnet2_echat.train.adapter_ctc import (
    AlignUtterance,
    EmbeddingCTC,
    align_adapter,
    ctc_loss,
)
from espnet2_echat.train.encoder_cache import dump_encoder_outputs, encoder_fingerprint

from .corpus import make_corpus

REPO = Path(__file__).resolve().parents[2]
STAGE1 = REPO / "conf" / "train_stage1_understanding.yaml"


class LinearAdapter(nn.Module):
    """The adapter's interface ((B, T, D), lengths) -> ((B, T, E), lengths), one Linear."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out)

    def forward(self, x, lengths):
        return self.proj(x), lengths


class WordTokenizer:
    def __init__(self, words):
        self.words = words

    def decode(self, ids):
        return " ".join(self.words[i] for i in ids)


def test_best_path_merges_repeats_and_drops_blanks():
    ctc = EmbeddingCTC(torch.randn(20, 4), vocab=[7, 3, 11])
    classes = [0, 1, 1, 0, 1, 2, 2, 3, 0]  # blank a a blank a b b c blank
    logits = F.one_hot(torch.tensor(classes), 4).float()
    assert ctc.greedy(logits) == [7, 7, 3, 11]
    assert ctc.targets([3, 99, 11]).tolist() == [2, 3]  # a token outside the vocab is left out


def test_loss_is_ctc_over_cosine_logits_computed_by_hand():
    torch.manual_seed(0)
    embedding = torch.randn(30, 8)
    vocab = [4, 9, 17, 22]
    ctc = EmbeddingCTC(embedding, vocab, init_scale=5.0)
    ctc.blank.data.normal_()
    adapter = LinearAdapter(6, 8)
    items = [AlignUtterance("a", torch.randn(9, 6), [9, 4, 4]),
             AlignUtterance("b", torch.randn(6, 6), [22])]
    ours = ctc_loss(adapter, ctc, items)
    expected = []
    for item in items:
        frames = adapter.proj(item.encoder_out)  # (T, 8)
        rows = torch.cat([ctc.blank, embedding[vocab]])
        cosine = F.cosine_similarity(frames[:, None], rows[None], dim=-1)  # (T, 5)
        log_probs = (5.0 * cosine).log_softmax(-1)
        target = torch.tensor([vocab.index(t) + 1 for t in item.token_ids])
        expected.append(F.ctc_loss(log_probs, target, torch.tensor([len(frames)]),
                                   torch.tensor([len(target)]), reduction="sum") / len(target))
    assert torch.allclose(ours, torch.stack(expected).mean(), atol=1e-5)


def _synthetic(num, sounds, rng):
    """Utterances of 2-4 words, each word 3-5 frames of its own 'sound' vector plus noise
    and followed by a pause (a repeated word needs a blank between its two frames)."""
    items = []
    dim = sounds.shape[1]
    for n in range(num):
        words = [rng.randrange(len(sounds)) for _ in range(rng.randint(2, 4))]
        frames = [part for w in words for part in (
            sounds[w] + 0.3 * torch.randn(rng.randint(3, 5), dim), 0.3 * torch.randn(1, dim))]
        items.append(AlignUtterance(f"u{n}", torch.cat(frames), words))
    return items


def test_alignment_learns_words_it_did_not_know():
    torch.manual_seed(0)
    rng = random.Random(0)
    sounds = torch.randn(6, 10)
    train, held = _synthetic(200, sounds, rng), _synthetic(30, sounds, rng)
    words = [f"w{i}" for i in range(6)]
    refs = {u.uttid: " ".join(words[t] for t in u.token_ids) for u in held}
    embedding = torch.randn(6, 16)
    adapter = LinearAdapter(10, 16)
    before = cli.greedy_wer(adapter, EmbeddingCTC(embedding, range(6)), held, WordTokenizer(words), refs)
    ctc = align_adapter(adapter, embedding, train, steps=200, batch_size=16, lr=1e-2, warmup_steps=5)
    after = cli.greedy_wer(adapter, ctc, held, WordTokenizer(words), refs)
    assert before > 0.5 and after < 0.1, (before, after)


@pytest.fixture(scope="module")
def dumped(tmp_path_factory):
    """A tiny corpus whose ASR dirs carry encoder outputs of the tiny stage-1 encoder."""
    root = tmp_path_factory.mktemp("align")
    corpus = make_corpus(root / "corpus", num_per_phrase=2)
    args = EChatTask.get_parser().parse_args(["--config", str(STAGE1), "--output_dir", str(root)])
    torch.manual_seed(0)
    model = EChatTask.build_model(args).eval()
    dump_encoder_outputs(model.frontend, model.encoder, [corpus["train_asr"], corpus["valid_asr"]],
                         root / "store", encoder_fingerprint(args), "float32")
    return corpus, root


def test_cli_writes_the_adapter_for_init_param_and_keeps_it(dumped, monkeypatch):
    corpus, root = dumped
    monkeypatch.chdir(REPO)
    out = root / "aligned" / "adapter.pth"
    argv = ["--config", str(STAGE1), "--data_dir", str(corpus["train_asr"]),
            str(corpus["train_t2t"]), "--valid_data_dir", str(corpus["valid_asr"]),
            "--steps", "3", "--batch_size", "2", "--output", str(out), "--nthreads", "1"]
    assert cli.main(argv) == 0
    saved = torch.load(out)
    assert saved and all(k.startswith("adapter.") for k in saved)
    assert (out.with_suffix(".json")).is_file()
    # ESPnet's --init_param FILE:adapter:adapter puts exactly these weights into a new model
    args = EChatTask.get_parser().parse_args(["--config", str(STAGE1), "--output_dir", str(root)])
    torch.manual_seed(1)
    model = EChatTask.build_model(args)
    fresh = {k: v.clone() for k, v in model.adapter.state_dict().items()}
    load_pretrained_model(f"{out}:adapter:adapter", model, "cpu")
    for name, value in model.adapter.state_dict().items():
        assert torch.equal(value, saved[f"adapter.{name}"]), name
    assert any(not torch.equal(fresh[k], saved[f"adapter.{k}"]) for k in fresh)
    # a re-run keeps the finished file
    stamp = out.stat().st_mtime_ns
    assert cli.main(argv) == 0 and out.stat().st_mtime_ns == stamp


def test_only_asr_utterances_are_read_and_a_missing_transcript_is_named(dumped, tmp_path, monkeypatch):
    corpus, _ = dumped
    monkeypatch.chdir(REPO)
    assert cli.asr_dirs([str(corpus["train_asr"]), str(corpus["train_t2t"])]) == [corpus["train_asr"]]
    copy = tmp_path / "asr"
    copy.mkdir()
    for name in ("wav.scp", "encoder_out.scp", "encoder_out.json"):
        (copy / name).write_text((corpus["train_asr"] / name).read_text())
    lines = (corpus["train_asr"] / "text").read_text().splitlines()
    first = lines[0].split()[0]
    (copy / "text").write_text("\n".join(lines[1:]) + "\n")  # no transcript for the first
    args = EChatTask.get_parser().parse_args(["--config", str(STAGE1), "--output_dir", str(tmp_path)])
    tokenizer, fingerprint = EChatTask.text_tokenizer(args), encoder_fingerprint(args)
    with pytest.raises(ValueError, match=f"{copy}/text: utterance {first} has no transcript"):
        cli.read_utterances([copy], fingerprint, tokenizer)  # no task file: every one is ASR
    others = [line.split()[0] for line in lines[1:]]
    (copy / "task").write_text(f"{first} <GENDER>\n" + "".join(f"{u} <TRANSCRIBE>\n" for u in others))
    items, texts = cli.read_utterances([copy], fingerprint, tokenizer)
    assert sorted(texts) == sorted(others) == sorted(u.uttid for u in items)
