"""The embedded mini corpus: valid dirs, labels true by construction, disjoint splits."""

import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile

from espnet2_echat.data.cot import parse_tag_think
from espnet2_echat.data.datadir import read_kaldi_map, validate_data_dir

LOCAL = Path(__file__).resolve().parents[2] / "local"


def _load(name: str):
    sys.path.insert(0, str(LOCAL))
    spec = importlib.util.spec_from_file_location(name, LOCAL / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mini")
    _load("make_mini_corpus").make_mini_corpus(out, num_per_task=4, nj=2)
    return out


def _median_f0(path: str) -> float:
    x, fs = soundfile.read(path)
    f0 = librosa.yin(x, fmin=60, fmax=500, sr=fs, frame_length=1024, hop_length=256)
    rms = librosa.feature.rms(y=x, frame_length=1024, hop_length=256)[0]
    n = min(len(f0), len(rms))
    voiced = rms[:n] > 0.3 * rms[:n].max()
    return float(np.median(f0[:n][voiced]))


def test_all_dirs_valid_and_16k(corpus: Path):
    dirs = sorted(p for p in corpus.iterdir() if p.is_dir() and p.name != "wav")
    assert len(dirs) == 3 * 14
    for d in dirs:
        assert validate_data_dir(d, require_speech_tokens=False, expected_fs=16000) == [], d
    for d in ("train_tts", "test_s2s", "dev_multiturn"):
        wav = next(iter(read_kaldi_map(corpus / d / "wav.scp").values()))
        info = soundfile.info(wav)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")


def test_task_files_follow_the_registry(corpus: Path):
    """Each dir's ``task`` file holds its set kind's tag, as the recipe reads it back."""
    from espnet2_echat.bin.task_registry import decode_task
    from espnet2_echat.data.task_registry import data_set_of

    for d in sorted(p for p in corpus.iterdir() if p.is_dir() and p.name != "wav"):
        kind = data_set_of(d.name)
        assert kind is not None and d.name.split("_", 1)[1] == kind.suffix, d.name
        assert set(read_kaldi_map(d / "task").values()) == {kind.tag}, d.name
        assert decode_task(d.name, kind.think) == f"{kind.task} {kind.think}"


def test_labels_true_by_construction(corpus: Path):
    f0 = defaultdict(list)
    rate = defaultdict(list)
    seen = {}
    for d in corpus.glob("*_*"):
        if not (d / "utt2gender").is_file():
            continue
        wavs = read_kaldi_map(d / "wav.scp")
        text = read_kaldi_map(d / "text")
        labels = {
            name: read_kaldi_map(d / name) for name in ("utt2gender", "utt2age", "utt2emotion")
        }
        for utt, wav in wavs.items():
            if wav in seen:
                continue
            seen[wav] = True
            value = _median_f0(wav)
            for name in labels:
                f0[labels[name][utt]].append(value)
            f0[labels["utt2gender"][utt] + labels["utt2age"][utt]].append(value)
            if read_kaldi_map(d / "utt2event")[utt] == "<OTHER>":
                rate[labels["utt2emotion"][utt]].append(
                    len(text[utt]) / soundfile.info(wav).duration
                )
    mean = {k: float(np.mean(v)) for k, v in f0.items()}
    assert mean["<FEMALE>"] > 1.15 * mean["<MALE>"], mean
    # children of both genders are high; adults and elderly differ by about an octave
    for age in ("<ADULT>", "<OLD>"):
        assert mean["<FEMALE>" + age] > 1.25 * mean["<MALE>" + age], mean
    assert mean["<CHILD>"] > 1.3 * mean["<ADULT>"], mean
    assert mean["<HAPPY>"] > mean["<SAD>"], mean
    # sad speech is slower (fewer characters per second) than angry speech
    assert np.mean(rate["<SAD>"]) < np.mean(rate["<ANGRY>"]), rate


def test_splits_disjoint(corpus: Path):
    def sentences(split: str) -> set:
        out = set()
        for d in corpus.glob(f"{split}_*"):
            for name in ("text", "question", "reply"):
                if (d / name).is_file():
                    out |= set(read_kaldi_map(d / name).values())
        return out

    train, test, dev = sentences("train"), sentences("test"), sentences("dev")
    assert train and test and dev
    assert not train & test and not train & dev


def test_think_and_history_content(corpus: Path):
    d = corpus / "train_s2s_tag_think"
    think = read_kaldi_map(d / "think")
    for utt, body in think.items():
        fields = parse_tag_think(body)
        assert fields["q_txt"] == read_kaldi_map(d / "text")[utt]
        assert fields["gender"] == read_kaldi_map(d / "utt2gender")[utt]
        assert fields["reply_emotion"] == read_kaldi_map(d / "reply_emotion")[utt]
    lang = read_kaldi_map(corpus / "test_s2t_language_think" / "think")
    assert all(v.startswith('The user says "') for v in lang.values())
    assert (corpus / "train_s2s" / "reply_wav.scp").is_file()


def test_cough_events_are_noise_bursts(corpus: Path):
    """A <COUGH> turn starts with broadband noise: higher spectral flatness than <OTHER>."""
    flatness = defaultdict(list)
    for d in corpus.glob("*_event"):
        events = read_kaldi_map(d / "utt2event")
        for utt, wav in read_kaldi_map(d / "wav.scp").items():
            x, fs = soundfile.read(wav)
            onset = x[: int(0.3 * fs)]
            value = librosa.feature.spectral_flatness(y=onset, n_fft=512, hop_length=160).mean()
            flatness[events[utt]].append(value)
    assert flatness["<COUGH>"] and flatness["<OTHER>"]
    assert min(flatness["<COUGH>"]) > 3 * max(flatness["<OTHER>"]), flatness


def test_deterministic(tmp_path: Path):
    maker = _load("make_mini_corpus")
    for name in ("a", "b"):
        maker.make_mini_corpus(tmp_path / name, num_per_task=1, nj=1 if name == "a" else 2)
    files_a = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    files_b = sorted(
        p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file()
    )
    assert files_a == files_b
    for rel in files_a:
        a, b = (tmp_path / "a" / rel).read_bytes(), (tmp_path / "b" / rel).read_bytes()
        if rel.suffix == ".wav":
            assert a == b, rel
        else:  # text files name their own out_dir
            assert a.replace(str(tmp_path / "a").encode(), b"") == b.replace(
                str(tmp_path / "b").encode(), b""
            ), rel


@pytest.mark.skipif(
    not Path("/usr/share/asterisk/sounds/en_US_f_Allison/activated.wav").is_file(),
    reason="Debian package asterisk-core-sounds-en-wav is not installed (make setup)",
)
def test_asterisk_real_speech_test_set(tmp_path: Path):
    d = _load("make_mini_corpus")._asterisk_test_set(tmp_path / "test_asterisk_asr", 4)
    assert validate_data_dir(d, expected_fs=16000) == []
    text = read_kaldi_map(d / "text")
    assert len(text) == 4 and all(v and not v.startswith("[") for v in text.values())
    assert set(read_kaldi_map(d / "utt2gender").values()) == {"<FEMALE>"}


def test_larger_corpus_plan_has_60_test_turns_per_label():
    """--speakers_per_sentence 12: every test sentence by all 12 speakers, so each label
    test set can hold >= 60 utterances; splits still share no sentence."""
    maker = _load("make_mini_corpus")
    default, large = maker.plan_user_turns(), maker.plan_user_turns(12)
    count = lambda turns, split: sum(t.split == split for t in turns)  # noqa: E731
    assert (count(default, "train"), count(default, "test")) == (96, 24)
    assert (count(large, "train"), count(large, "dev"), count(large, "test")) == (384, 96, 96)
    assert len({t.uid for t in large}) == len(large)
    test = [t for t in large if t.split == "test"]
    assert {t.speaker.gender for t in test} == {"<MALE>", "<FEMALE>"}
    assert sum(t.speaker.gender == "<MALE>" for t in test) == 48
    assert {t.text for t in test}.isdisjoint({t.text for t in large if t.split == "train"})
    with pytest.raises(ValueError, match="1..12"):
        maker.plan_user_turns(13)


def test_the_voice_does_not_tell_the_event():
    """Every speaker carries every event kind in training, so on the recipe's test_event set
    a predictor that knows only the speaker (its most frequent training event) does no better
    than always answering the majority event; event accuracy measures the sound."""
    maker = _load("make_mini_corpus")
    turns, read = maker.plan_user_turns(12), maker.plan_read_turns(1200, 96)
    train = [t for t in turns + read if t.split == "train"]
    by_speaker = defaultdict(list)
    for t in train:
        by_speaker[t.speaker.spk].append(t.event)
    events = {t.event for t in train}
    assert all(set(e) == events for e in by_speaker.values()), "a speaker misses an event kind"
    guess = {s: max(set(e), key=e.count) for s, e in by_speaker.items()}
    test = maker._interleave([t for t in turns if t.split == "test"])  # as make_mini_corpus
    test_event = maker._select(maker._interleave(test, key="event"), 96, 0)
    labels = [t.event for t in test_event]
    majority = max(labels.count(e) for e in set(labels))
    by_voice = sum(guess[t.speaker.spk] == t.event for t in test_event)
    assert len(set(labels)) == 4 and by_voice <= majority


@pytest.mark.parametrize("label", ["gender", "age"])
def test_the_words_do_not_tell_the_voice(label):
    """A word-only classifier (bag of words and word pairs, naive Bayes, 5-fold) does not
    read the speaker's gender or age from the training read turns' sentences: in grammar
    order the template told the gender (93 %), and a model learnt gender from the words."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.model_selection import cross_val_score
    from sklearn.naive_bayes import MultinomialNB

    maker = _load("make_mini_corpus")
    train = [t for t in maker.plan_read_turns(1200, 96) if t.split == "train"]
    labels = [getattr(t.speaker, label) for t in train]
    words = CountVectorizer(ngram_range=(1, 2)).fit_transform([t.text for t in train])
    accuracy = cross_val_score(MultinomialNB(), words, labels, cv=5).mean()
    majority = max(labels.count(v) for v in set(labels)) / len(labels)
    assert accuracy < majority + 0.06, (accuracy, majority)


def test_read_speech_turns_extend_the_understanding_sets(tmp_path: Path):
    """--read_sentences TRAIN TEST: grammar sentences join the train ASR and label dirs, the
    held-out ones make test_read_asr; no read sentence is in both, nor among the dialogue ones."""
    maker = _load("make_mini_corpus")
    text_module = sys.modules["mini_corpus_text"]
    grammar = text_module.read_sentences()
    emotional = {s for pairs in text_module.SENTENCES.values() for s, _ in pairs}
    assert len(grammar) == len(set(grammar)) > 3000 and not set(grammar) & emotional
    # the recipe's sizes: every held-out word was heard in training (new combinations only)
    turns = maker.plan_read_turns(1200, 96)
    words = lambda split: {  # noqa: E731
        w for t in turns if t.split == split for w in t.text.lower().strip(".?").split()
    }
    assert words("test") <= words("train")
    assert {t.speaker.spk for t in turns} == {s.spk for s in maker.SPEAKERS}
    assert {t.emotion for t in turns} == set(text_module.SENTENCES)
    with pytest.raises(ValueError, match="read sentences"):
        maker.plan_read_turns(len(grammar), 1)

    out = tmp_path / "mini"
    maker.make_mini_corpus(out, num_per_task=1, nj=2, read_sentences=(6, 3))
    read_test = read_kaldi_map(out / "test_read_asr" / "text")
    assert len(read_test) == 3 and set(read_test.values()) == set(grammar[:3])
    assert validate_data_dir(out / "test_read_asr", expected_fs=16000) == []
    assert set(read_kaldi_map(out / "test_read_asr" / "task").values()) == set(
        read_kaldi_map(out / "test_asr" / "task").values()
    )
    for name in ("asr", "gender", "age", "emotion", "event"):
        d = out / f"train_{name}"
        assert validate_data_dir(d, require_speech_tokens=False, expected_fs=16000) == []
        text = read_kaldi_map(d / "text")
        assert len(text) == 1 + 6 and set(grammar[3:9]) < set(text.values()), name
    gender = read_kaldi_map(out / "train_gender" / "utt2gender")
    speaker = {s.spk: s.gender for s in maker.SPEAKERS}
    assert all(gender[u] == speaker[u.split("-")[0]] for u in gender)
    assert not (out / "train_s2t" / "text").read_text().count("read")
    assert "test_read_asr test" in (out / "set_roles").read_text().splitlines()
