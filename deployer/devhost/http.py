"""The HTTP front end of ``deployer dev``: routes of HTTP-triggered functions under ``/api/``."""

from __future__ import annotations

import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

logger = logging.getLogger("deployer.devhost")
#: the host answers bodies larger than this with 413
MAX_BODY_BYTES = 100 * 1024 * 1024


class Route:
    def __init__(self, fn: Any, trigger: dict[str, Any]) -> None:
        self.fn = fn
        self.arg_name = trigger["name"]
        self.methods = {str(getattr(m, "value", m)).upper() for m in trigger.get("methods") or []}
        template = (trigger.get("route") or fn.get_function_name()).strip("/")
        pattern = re.sub(r"\\\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\\\}", r"(?P<\1>[^/]+)",
                         re.escape(template))
        self.regex = re.compile(f"/api/{pattern}/?")

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.fullmatch(path)
        return found.groupdict() if found else None


class HttpFrontEnd:
    def __init__(self, routes: list[tuple[Any, dict[str, Any]]], port: int) -> None:
        self.routes = [Route(fn, trigger) for fn, trigger in routes]
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_any(self) -> None:
                front.dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_any

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("http %s", format % args)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="dev-http")

    def start(self) -> None:
        self._thread.start()
        logger.info("HTTP functions listening on http://127.0.0.1:%d/api/", self.port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        for route in self.routes:
            params = route.match(url.path)
            if params is None:
                continue
            if route.methods and handler.command not in route.methods:
                _send(handler, func.HttpResponse(status_code=405))
                return
            length = int(handler.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                _send(handler, func.HttpResponse(status_code=413))
                return
            body = handler.rfile.read(length) if length else b""
            request = func.HttpRequest(
                method=handler.command, url=f"http://127.0.0.1:{self.port}{handler.path}",
                headers=dict(handler.headers.items()), params=dict(parse_qsl(url.query)),
                route_params=params, body=body)
            try:
                response = route.fn.get_user_function()(**{route.arg_name: request})
            except Exception:
                logger.exception("Executed 'Functions.%s' (Failed)", route.fn.get_function_name())
                response = func.HttpResponse(status_code=500)
            _send(handler, response)
            return
        _send(handler, func.HttpResponse(status_code=404))


def _send(handler: BaseHTTPRequestHandler, response: Any) -> None:
    if isinstance(response, str):
        response = func.HttpResponse(response)
    body = response.get_body() or b""
    handler.send_response(response.status_code)
    for key, value in response.headers.items():
        handler.send_header(key, value)
    if response.mimetype and "content-type" not in {k.lower() for k in response.headers}:
        handler.send_header("Content-Type", response.mimetype)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
