"""Progress bars stay quiet off a terminal; the summary line names done/skipped/failed/time."""

import logging

import pytest

from espnet2_echat.progress import progress_bar, summary_line


def test_quiet_without_a_terminal_or_info(monkeypatch):
    assert progress_bar(3, "x").disable  # pytest's captured stderr is no TTY
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    logging.getLogger().setLevel(logging.WARNING)
    try:
        assert progress_bar(3, "x").disable
    finally:
        logging.getLogger().setLevel(logging.INFO)


def test_shown_on_a_terminal_with_info(monkeypatch, capsys):
    """On a terminal with INFO logged, the bar is on and shows count, rate and ETA."""
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    logging.getLogger().setLevel(logging.INFO)
    bar = progress_bar(4, "decoding asr")
    assert not bar.disable
    bar.update(2)
    bar.close()
    text = capsys.readouterr().err
    assert "decoding asr" in text and "2/4" in text and "utt/s" in text and "<" in text


def test_summary_line():
    assert summary_line("decode", 5, 2, 1, started=10.0, end=12.5) == (
        "decode: done 5, skipped 2, failed 1 in 2.5 s"
    )


def test_tally_counts_each_outcome_across_inputs():
    from espnet2_echat.progress import Tally

    tally = Tally()
    tally.begin(3, "first")
    tally.add("done", 2)
    tally.add("failed")
    tally.begin(None, "second")  # unknown total: count and rate only
    tally.add("skipped")
    line = tally.summary("x")
    assert line.startswith("x: done 2, skipped 1, failed 1 in ")
    with pytest.raises(ValueError, match="outcome must be one of"):
        tally.add("lost")
