"""`deployer dev` dispatches blob, queue, timer and HTTP triggers the way the host does,
against Azurite, with a small app of its own."""

from __future__ import annotations

import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from deployer.adapters.storage_queue import StorageQueue, queue_client
from deployer.devhost import DevHost, HostOptions, load_app
from deployer.errors import ConfigError

APP = textwrap.dedent('''
    import azure.functions as func

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    CALLS = []

    @app.blob_trigger(arg_name="stream", path="%IN_CONTAINER%/{name}", connection="AzureWebJobsStorage")
    def on_blob(stream: func.InputStream) -> None:
        data = stream.read()
        if data == b"poison":
            raise RuntimeError("cannot handle this blob")
        CALLS.append(("blob", stream.name, data))

    @app.queue_trigger(arg_name="msg", queue_name="%IN_QUEUE%", connection="AzureWebJobsStorage")
    def on_msg(msg: func.QueueMessage) -> None:
        CALLS.append(("queue", msg.get_body(), msg.dequeue_count))
        if msg.get_body() == b"fail":
            raise RuntimeError("always fails")

    @app.timer_trigger(arg_name="timer", schedule="%TICK%")
    def tick(timer: func.TimerRequest) -> None:
        CALLS.append(("timer", timer.past_due))

    @app.route(route="hello/{who}", methods=["GET"])
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"hi {req.route_params['who']} {req.params.get('x')}", status_code=201)
''')


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture
def hosted(tmp_path: Path, storage_connection: str) -> Iterator[tuple[DevHost, Any, dict[str, str]]]:
    tag = uuid.uuid4().hex[:8]
    environ = {"AzureWebJobsStorage": storage_connection, "IN_CONTAINER": f"in-{tag}",
               "IN_QUEUE": f"in-{tag}", "TICK": "*/1 * * * * *"}
    path = tmp_path / "function_app.py"
    path.write_text(APP)
    app = load_app(path)
    module = __import__("sys").modules["function_app"]
    host = DevHost(app, HostOptions(poll_seconds=0.2, lease_seconds=4, retry_delay_seconds=0,
                                    max_dequeue_count=3, http_port=0), environ)
    host.start()
    try:
        yield host, module, environ
    finally:
        host.stop()


def test_each_blob_version_triggers_once(hosted, storage_connection: str) -> None:  # type: ignore[no-untyped-def]
    _host, module, environ = hosted
    container = BlobServiceClient.from_connection_string(storage_connection).get_container_client(environ["IN_CONTAINER"])
    container.create_container()
    container.upload_blob("a.txt", b"one")
    eventually(lambda: ("blob", f"{environ['IN_CONTAINER']}/a.txt", b"one") in module.CALLS)
    time.sleep(1.0)  # several more scans
    assert [c for c in module.CALLS if c[0] == "blob"] == [("blob", f"{environ['IN_CONTAINER']}/a.txt", b"one")]
    container.upload_blob("a.txt", b"two", overwrite=True)  # a new etag: a new trigger
    eventually(lambda: len([c for c in module.CALLS if c[0] == "blob"]) == 2)


def test_a_blob_that_keeps_failing_goes_to_the_poison_queue(hosted, storage_connection: str) -> None:  # type: ignore[no-untyped-def]
    _host, _module, environ = hosted
    container = BlobServiceClient.from_connection_string(storage_connection).get_container_client(environ["IN_CONTAINER"])
    container.create_container()
    container.upload_blob("bad.txt", b"poison")
    poison = StorageQueue(queue_client(storage_connection, "webjobs-blobtrigger-poison"))
    eventually(lambda: any(environ["IN_CONTAINER"].encode() in m.body
                           for m in poison.receive(visibility_timeout=1, max_messages=32)))


def test_queue_messages_are_deleted_after_success(hosted, storage_connection: str) -> None:  # type: ignore[no-untyped-def]
    _host, module, environ = hosted
    queue = StorageQueue(queue_client(storage_connection, environ["IN_QUEUE"]))
    queue.send(b"ok")
    eventually(lambda: ("queue", b"ok", 1) in module.CALLS)
    time.sleep(5)  # past the lease: a message not deleted would come back
    assert [c for c in module.CALLS if c[:2] == ("queue", b"ok")] == [("queue", b"ok", 1)]


def test_failing_messages_are_retried_then_moved_to_the_poison_queue(hosted, storage_connection: str) -> None:  # type: ignore[no-untyped-def]
    _host, module, environ = hosted
    StorageQueue(queue_client(storage_connection, environ["IN_QUEUE"])).send(b"fail")
    poison = StorageQueue(queue_client(storage_connection, environ["IN_QUEUE"] + "-poison"))
    eventually(lambda: [m.body for m in poison.receive(visibility_timeout=30, max_messages=8)] == [b"fail"])
    assert [c[2] for c in module.CALLS if c[:2] == ("queue", b"fail")] == [1, 2, 3]


def test_timer_fires_on_its_ncrontab_schedule(hosted) -> None:  # type: ignore[no-untyped-def]
    _host, module, _environ = hosted
    eventually(lambda: len([c for c in module.CALLS if c[0] == "timer"]) >= 2, timeout=5)


def test_http_routes_dispatch_with_route_and_query_params(hosted) -> None:  # type: ignore[no-untyped-def]
    host, _module, _environ = hosted
    base = f"http://127.0.0.1:{host.http.port}/api"
    with urllib.request.urlopen(f"{base}/hello/bob?x=1") as response:
        assert response.status == 201 and response.read() == b"hi bob 1"
    for method, path, status in (("POST", "/hello/bob", 405), ("GET", "/nope", 404)):
        request = urllib.request.Request(f"{base}{path}", method=method, data=b"" if method == "POST" else None)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request)
        assert info.value.code == status


def test_a_binding_expression_without_a_setting_is_a_clear_error(tmp_path: Path, storage_connection: str) -> None:
    path = tmp_path / "function_app.py"
    path.write_text(APP)
    host = DevHost(load_app(path), HostOptions(), {"AzureWebJobsStorage": storage_connection})
    with pytest.raises(ConfigError) as info:
        host.start()
    host.stop()
    assert "%IN_CONTAINER%" in str(info.value)


