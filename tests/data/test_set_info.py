"""What a data dir is for comes from its own task/think files, not from its name."""

from espnet2_echat.bin.data_dir_info import main as info_main
from espnet2_echat.data.datadir import write_data_dir
from espnet2_echat.data.set_info import set_info


def _dir(path, utts):
    write_data_dir(path, utts)
    return path


def test_stage_tokens_think_and_tasks(tmp_path, capsys):
    meld = _dir(tmp_path / "zz_any_name", {"a": {"task": "<TRANSCRIBE> <EMOTION>"}})
    tag = _dir(tmp_path / "test_s2t_language_think", {  # misleading name on purpose
        "a": {"task": "<S2TCHAT> <THINKER>", "think": "用户说的话是:你好,年龄为:<ADULT>"}})
    lang = _dir(tmp_path / "x2", {"a": {"task": "<S2TCHAT> <TEXT2TOKEN> <THINK>",
                                        "think": "She sounds sad.", "reply_wav.scp": "r.wav"}})
    tts = _dir(tmp_path / "x3", {"a": {"task": "<TEXT2TOKEN>", "wav.scp": "a.wav"},
                                 "b": {"task": "<TEXT2TOKEN>"}})
    t2t = _dir(tmp_path / "x4", {"a": {"task": "<TEXT2TEXT>"}})
    assert set_info(meld).line() == "zz_any_name 1 no none asr,emotion"
    assert set_info(tag).line() == "test_s2t_language_think 3 no tag s2t_chat"
    assert set_info(lang).line() == "x2 3 yes language s2s"
    assert set_info(tts).line() == "x3 2 no none tts"  # utterance b has no audio to tokenise
    assert set_info(t2t).line() == "x4 2 no none t2t"
    assert info_main([str(meld), str(tmp_path / "missing")]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("zz_any_name 1") and "no task file" in captured.err
