"""The task registry and every consumer of it agree (data, training, decoding, scoring, recipe).

Expectations here are written out by hand or come from another module's own logic (the
scorer's tag parser, the data-dir validator's required files, the shipped prompt config,
the CLIs' parsers), never from the registry itself.
"""

import subprocess
import sys

import pytest

from espnet2_echat.data import task_registry as reg
from tests.helpers import REPO_ROOT

# The tags each decoding request stands for, as the reference spells them (hand-written).
EXPECTED_TAGS = {
    ("asr", "none"): "<TRANSCRIBE>",
    ("emotion", "none"): "<EMOTION>",
    ("gender", "none"): "<GENDER>",
    ("age", "none"): "<AGE>",
    ("event", "none"): "<CAPTION>",
    ("s2t_chat", "none"): "<S2TCHAT>",
    ("s2t_chat", "tag"): "<S2TCHAT> <THINKER>",
    ("s2t_chat", "language"): "<S2TCHAT> <THINKER>",
    ("s2s", "none"): "<S2TCHAT> <TEXT2TOKEN>",
    ("s2s", "tag"): "<S2TCHAT> <TEXT2TOKEN> <THINK>",
    ("s2s", "language"): "<S2TCHAT> <TEXT2TOKEN> <THINK>",
    ("t2t", "none"): "<TEXT2TEXT>",
    ("tts", "none"): "<TEXT2TOKEN>",
}
# What the recipe decoded each test set as before the registry (echat.sh's old case table).
EXPECTED_DECODE = {
    ("test_asr", "none"): "asr none",
    ("test_event", "tag"): "event none",
    ("test_tts", "none"): "tts none",
    ("test_t2t", "language"): "t2t none",
    ("test_s2t", "tag"): "s2t_chat none",
    ("test_s2s", "none"): "s2s none",
    ("test_multiturn", "tag"): "s2s none",
    ("test_s2t_tag_think", "tag"): "s2t_chat tag",
    ("test_s2t_tag_think", "language"): None,
    ("test_s2t_tag_think", "none"): None,
    ("test_s2s_language_think", "language"): "s2s language",
    ("test_s2s_language_think", "tag"): None,
    ("test_unknown_kind", "none"): None,
}


def test_tags_of_every_task_and_think_mode():
    got = {
        (name, think): task.tag_for(think)
        for name, task in reg.TASKS.items()
        for think in task.think_modes
    }
    assert got == EXPECTED_TAGS
    assert reg.TASKS["s2s"].tag_for(history=True) == "<S2TCHAT> <TEXT2TOKEN> <HISTORY>"
    assert reg.TASKS["tts"].tag_for(streaming=True) == "<TEXT2TOKEN> <STREAMING>"
    with pytest.raises(ValueError, match="applies to s2t_chat and s2s only"):
        reg.TASKS["asr"].tag_for("tag")
    with pytest.raises(ValueError, match="interleaved output exists for s2s and tts"):
        reg.TASKS["s2t_chat"].tag_for(streaming=True)


def test_every_tag_has_a_prompt_and_a_layout():
    """Understanding tags are the keys of the shipped prompt config; every output type
    the registry names has a system prompt and builds a prompt layout."""
    from espnet2_echat.data.preprocessor import load_prompt_config
    from espnet2_echat.data.templates import OUTPUT_TYPE_PROMPT

    conf = load_prompt_config(REPO_ROOT / "conf" / "prompt_config.yaml")
    assert sorted(conf) == sorted(reg.UNDERSTANDING_TAGS)
    assert set(reg.TAG_OUTPUT_TYPES.values()) - {"text"} <= set(OUTPUT_TYPE_PROMPT)
    assert not set(reg.UNDERSTANDING_TAGS) & set(reg.GENERATION_TAGS)


def test_scorer_reads_each_tag_as_its_task():
    """The scorer parses tags with its own rules; they must give back the registry's task."""
    from espnet2_echat.scoring.task_spec import CLI_TASKS, spec_from_tag

    assert sorted(CLI_TASKS) == sorted(reg.TASK_NAMES)
    for (name, think), tag in EXPECTED_TAGS.items():
        assert spec_from_tag(tag) == CLI_TASKS[name], (name, think)
    assert spec_from_tag(reg.TASKS["s2s"].tag_for(history=True)).name == "s2s"
    for name in ("emotion", "gender", "age", "event"):
        assert CLI_TASKS[name].labels == (name,)


def test_validator_requires_each_task_input_and_label():
    """The data-dir validator's own rules ask for the file each task decodes from."""
    from espnet2_echat.data.datadir import KNOWN_UTT_FILES, required_files

    for name, task in reg.TASKS.items():
        needed = required_files(task.tag)
        assert task.input.file in needed, name
        if task.label_file:
            assert task.label_file in needed, name
    assert required_files("<TRANSCRIBE> <AGE> <GENDER>") >= {"utt2age", "utt2gender", "text"}
    assert set(reg.LABEL_FILES) <= set(KNOWN_UTT_FILES)


def test_labels_are_label_sets_and_osum_keys_round_trip():
    from espnet2_echat.data.labels import LABEL_SETS
    from espnet2_echat.data.osum_format import record_to_sample, sample_to_record

    assert set(reg.LABEL_BY_KIND) == set(LABEL_SETS)
    rec = {
        "task": "<TRANSCRIBE> <CAPTION> <AGE> <GENDER> <EMOTION> <STYLE>",
        "text": "hello",
        "utt2event": "<COUGH>",
        "utt2age": "<OLD>",
        "utt2gender": "<FEMALE>",
        "utt2emotion": "<SAD>",
        "utt2style": "<客服>",
    }
    sample = record_to_sample("u", rec)
    assert sample.txt == "hello<COUGH><OLD><FEMALE><SAD><客服>"
    assert {k: sample_to_record(sample)[k] for k in rec} == rec


def test_training_and_decoding_read_the_sample_files():
    from espnet2_echat.bin.echat_inference import get_parser as inference_parser
    from espnet2_echat.bin.echat_score import get_parser as score_parser
    from espnet2_echat.inference.settings import DEFAULT_INSTRUCTIONS, default_options
    from espnet2_echat.tasks.echat import EChatTask

    names = EChatTask.required_data_names() + EChatTask.optional_data_names()
    assert set(names) == set(reg.SAMPLE_FILES.values())
    assert set(DEFAULT_INSTRUCTIONS) == set(reg.UNDERSTANDING_TASKS)
    for name, task in reg.TASKS.items():
        for think in task.think_modes:
            default_options(name, think)
    for parser in (inference_parser(), score_parser()):
        action = next(a for a in parser._actions if a.dest == "task")
        assert sorted(action.choices) == sorted(reg.TASK_NAMES)


@pytest.mark.parametrize("set_name, think", sorted(EXPECTED_DECODE))
def test_recipe_decodes_each_set_as_before(set_name, think):
    from espnet2_echat.bin.task_registry import decode_task

    assert decode_task(set_name, think) == EXPECTED_DECODE[(set_name, think)]


def test_cli_answers_the_shell(tmp_path):
    (tmp_path / "history").write_text("u []\n")

    def ask(*args):
        out = subprocess.run(
            [sys.executable, "-m", "espnet2_echat.bin.task_registry", *args],
            capture_output=True, text=True, timeout=60, check=True,
        )
        return out.stdout.splitlines()

    assert ask("decode-task", "dev_s2s_tag_think", "--think", "tag") == ["s2s tag"]
    assert ask("decode-task", "dev_s2s_tag_think") == []
    assert ask("inputs", "t2t", str(tmp_path)) == [
        f"{tmp_path}/question,question,text",
        f"{tmp_path}/history,history,text",
    ]
    assert ask("tag", "s2s", "--history") == ["<S2TCHAT> <TEXT2TOKEN> <HISTORY>"]
    assert ask("decode-files") == ["text think token_int speech_token wav.scp"]
    assert len(ask("sets")) == len(reg.DATA_SETS)
    assert ask("speech-token-num", "4096") == ["4097"]  # the released model's K+1
    bad = subprocess.run(
        [sys.executable, "-m", "espnet2_echat.bin.task_registry", "tag", "asr", "--think", "tag"],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 2 and "applies to s2t_chat and s2s only" in bad.stderr
