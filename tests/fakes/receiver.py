"""A loopback HTTP receiver for notifications: records what apprise's ``json://`` posts, and can
refuse, hang or fail, the ways a real endpoint misbehaves."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.mode = "ok"  # ok | hang | fail
        self.release = threading.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def text(self) -> str:
        return "\n".join(f"{m.get('title', '')}\n{m.get('message', '')}" for m in self.messages)


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if state.mode == "hang":
                state.release.wait(30)
            state.messages.append(json.loads(body or b"{}"))
            self.send_response(500 if state.mode == "fail" else 200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
