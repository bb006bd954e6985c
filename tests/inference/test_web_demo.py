"""The Gradio demo: one chat turn through its callback, and the page in headless Chromium."""

import os
import shutil
import socket
import subprocess
import urllib.request

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gr = pytest.importorskip("gradio")

from espnet2_echat.inference.web_demo import build_demo, respond  # noqa: E402

SHORT = dict(do_sample=False, max_new_tokens=4, max_new_speech_tokens=6)


@pytest.mark.reference
def test_respond_keeps_history_per_session(fixed_s2r, wavs):
    audio = (16000, (wavs[0].numpy() * 32767).astype("int16"))
    chat, think, wav, tokens, conv = respond(
        fixed_s2r, audio, "", "s2s", "none", None, None, **SHORT
    )
    assert [m["role"] for m in chat] == ["user", "assistant"]
    assert len(conv) == 1 and tokens.split() == [str(t) for t in conv.turns[0].speech_tokens]
    assert wav is None  # no token2wav attached
    chat, _, _, _, conv = respond(fixed_s2r, audio, "", "s2s", "none", conv, chat, **SHORT)
    assert len(chat) == 4 and len(conv) == 2
    chat, _, _, tokens, _ = respond(fixed_s2r, None, "Hello.", "tts", "none", conv, chat, **SHORT)
    assert len(tokens.split()) > 0 and len(conv) == 2  # TTS does not enter the chat history
    with pytest.raises(gr.Error, match="record or upload audio"):
        respond(fixed_s2r, None, "", "asr", "none", None, None, **SHORT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_page_renders_in_headless_chromium(fixed_s2r, tmp_path):
    """Not marked ``reference``: it skips, without failing CI, where chromium is missing."""
    demo = build_demo(fixed_s2r, **SHORT)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and "OSUM-EChat" in page.read().decode()
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser is None:
            pytest.skip("Debian's chromium is not installed (make setup installs it)")
        shot = tmp_path / "web_demo.png"
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                "--virtual-time-budget=15000",
                f"--screenshot={shot}",
                url,
            ],
            check=True,
            timeout=120,
            capture_output=True,
        )
        assert shot.exists() and shot.stat().st_size > 10_000
        artefacts = os.environ.get("ECHAT_TEST_ARTIFACTS")
        if artefacts:
            os.makedirs(artefacts, exist_ok=True)
            shutil.copy(shot, os.path.join(artefacts, "web_demo.png"))
    finally:
        demo.close()
