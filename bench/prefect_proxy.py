"""A counting reverse proxy in front of a Prefect API, for benchmarks: every request is
forwarded unchanged and counted by method and path (ids folded to ``{id}``). Start one per
group of clients to count them apart."""

from __future__ import annotations

import collections
import http.client
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ID = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "host", "content-length"}


class CountingProxy:
    """``with CountingProxy(api) as proxy:`` clients use ``proxy.url``; ``proxy.counts`` holds
    (method, path) -> requests; ``proxy.reset()`` starts a new window."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self._host, self._port = target.hostname or "127.0.0.1", target.port or 80
        self._prefix = target.path.rstrip("/")
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path
                with proxy._lock:
                    proxy.counts[(self.command, ID.sub("/{id}", path.split("?", 1)[0]))] += 1
                upstream = proxy._prefix + path[len(proxy.prefix):] if path.startswith(proxy.prefix) else path
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                connection = http.client.HTTPConnection(proxy._host, proxy._port, timeout=60)
                try:
                    connection.request(self.command, upstream, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                finally:
                    connection.close()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.prefix = "/api"
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
