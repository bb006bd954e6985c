"""Fixtures of the scoring tests: a scripted OpenAI-compatible HTTP stub server."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Stub(BaseHTTPRequestHandler):
    """Answers POSTs with the next scripted action of the server."""

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((dict(self.headers), body))
        action = self.server.script.pop(0)
        kind = action[0]
        if kind == "sleep":  # longer than the client's timeout
            time.sleep(action[1])
            kind, action = "content", ("content", '{"score": 1}')
        if kind == "status":
            self.send_response(action[1])
            if len(action) > 2:
                self.send_header("Retry-After", action[2])
            self.end_headers()
            return
        if kind == "raw":
            payload = action[1].encode()
        else:
            payload = json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": action[1]}}]}
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    """A local chat-completions server; set ``stub.script`` to a list of actions:
    ``("content", text)``, ``("raw", body)``, ``("status", code[, retry_after])`` or
    ``("sleep", seconds)``. ``stub.requests`` records (headers, body) of each POST."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.script, server.requests = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
