"""The code store's contract, against both adapters: the local folder store and the blob store on
Azurite. Published code is whole or absent, never holds ``.env``, is verified against its digest
(by the store, and by every run's pull steps before the flow loads), and the pull steps that fetch
it carry no secret. Prefect itself runs the pull steps: the local ones, and the blob store's with
prefect-azure's own download step against Azurite."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from deployer.adapters.blob_code import BlobCodeStore
from deployer.adapters.local_code import UNBOUNDED, LocalCodeStore
from deployer.bundle.digest import short
from deployer.bundle.pack import code_digest_of
from deployer.bundle.tree import scan
from deployer.errors import BundleInvalid
from deployer.ports.code import CodeStore
from deployer.preflight import CHECK_FILE, CHECK_FLOW
from tests.builders import module_files, write_module


def published(store: CodeStore, tmp_path: Path, files: dict[str, str] | None = None,
              module: str = "demo") -> tuple[Path, str]:
    """A module folder published to ``store``; its code digest."""
    source = write_module(tmp_path / f"src-{uuid.uuid4().hex[:6]}", module, module_files(module, files or {}))
    code = code_digest_of(scan(source, UNBOUNDED))
    assert store.publish(module, code, source) is True
    return source, code


def tamper(store: CodeStore, module: str, code: str, path: str, content: bytes | None) -> None:
    """What someone who can write to the store does: change or add a file, or (None) delete it."""
    if isinstance(store, LocalCodeStore):
        target = store._dir(module, code) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            target.unlink()
        else:
            target.write_bytes(content)
        return
    container = store._container  # type: ignore[attr-defined]
    name = f"{module}/{short(code)}/{path}"
    if content is None:
        container.delete_blob(name)
    else:
        container.upload_blob(name, content, overwrite=True)


@pytest.fixture(params=["local", "blob"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CodeStore]:
    if request.param == "local":
        yield LocalCodeStore(tmp_path / "home")
        return
    connection = request.getfixturevalue("storage_connection")
    yield BlobCodeStore(BlobServiceClient.from_connection_string(connection), f"code-{uuid.uuid4().hex[:8]}")


def stored_files(store: CodeStore, module: str, code: str) -> dict[str, bytes]:
    if isinstance(store, LocalCodeStore):
        root = store._dir(module, code)
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    container = store._container  # type: ignore[attr-defined]
    prefix = f"{module}/{short(code)}/"
    return {b.name[len(prefix):]: container.download_blob(b.name).readall()
            for b in container.list_blobs(name_starts_with=prefix)}


def test_published_code_is_the_module_without_env_plus_the_check_flow_once(store: CodeStore, tmp_path: Path) -> None:
    assert store.codes("demo") == []
    source, code = published(store, tmp_path, {"data/rates.csv": "eur,1\n"})
    assert store.publish("demo", code, source) is False  # whole and verified: kept as it is
    assert store.exists("demo", code) and store.codes("demo") == [short(code)] and store.verify("demo", code) == []
    files = stored_files(store, "demo", code)
    assert {"flow.py", "prefect.yaml", "requirements.txt", "data/rates.csv", CHECK_FILE} <= set(files)
    assert ".env" not in files and not any(b"s3cr3t-token-value" in data for data in files.values())
    assert files[CHECK_FILE] == CHECK_FLOW.encode()
    assert store.codes("other") == []


def test_code_is_never_published_under_a_digest_that_is_not_its_own(store: CodeStore, tmp_path: Path) -> None:
    source = write_module(tmp_path / "src", "demo", module_files("demo"))
    with pytest.raises(BundleInvalid, match="is not the code it is published as"):
        store.publish("demo", "sha256:" + "c0de" * 16, source)
    assert store.codes("demo") == []


@pytest.mark.parametrize(("path", "content", "problem"), [
    ("flow.py", b"import os\nos.system('curl evil')\n", "flow.py: altered"),
    ("pandas.py", b"print('shadowing a package')\n", "pandas.py: added"),
    ("prefect.yaml", None, "prefect.yaml: missing"),
    (CHECK_FILE, b"def check(): return 1\n", f"{CHECK_FILE}: altered"),
    (".deployer-manifest", b"deployer-code-digest-v1\n", ".deployer-manifest: altered"),
])
def test_a_copy_someone_altered_is_found_and_published_again_not_trusted(
        store: CodeStore, tmp_path: Path, path: str, content: bytes | None, problem: str) -> None:
    source, code = published(store, tmp_path)
    tamper(store, "demo", code, path, content)
    assert any(p.startswith(problem) for p in store.verify("demo", code)), store.verify("demo", code)
    assert store.exists("demo", code)  # it looks whole: only verifying tells
    assert store.publish("demo", code, source) is True
    assert store.verify("demo", code) == [] and "pandas.py" not in stored_files(store, "demo", code)


def test_data_files_a_run_writes_next_to_the_code_are_not_a_mismatch(store: CodeStore, tmp_path: Path) -> None:
    _, code = published(store, tmp_path)
    tamper(store, "demo", code, "out/report.csv", b"a,b\n")
    tamper(store, "demo", code, "__pycache__/flow.cpython-311.pyc", b"\0")
    assert store.verify("demo", code) == []


def test_deleted_code_is_missing_and_deleting_again_is_no_error(store: CodeStore, tmp_path: Path) -> None:
    _, code = published(store, tmp_path)
    _, other = published(store, tmp_path, {"flow2.py": "x = 1\n"})
    store.delete("demo", short(code))  # cleanup deletes by the short digest codes() lists
    assert not store.exists("demo", code) and store.codes("demo") == [short(other)]
    assert store.verify("demo", code) == ["the code is missing from the code store"]
    store.delete("demo", code)


def test_pull_steps_name_the_code_and_revision_and_carry_no_secret(store: CodeStore, storage_connection: str) -> None:
    code = "sha256:" + "c0de" * 16
    steps = json.dumps(store.pull_steps("demo", code, "c0dec0dec0de-1234abcd"))
    assert short(code) in steps and "c0dec0dec0de-1234abcd" in steps
    key = storage_connection.split("AccountKey=", 1)[1].split(";", 1)[0]
    assert key not in steps and "AccountKey" not in steps and "sig=" not in steps


def test_what_an_image_needs_to_pull_code_is_named() -> None:
    blob = BlobCodeStore(BlobServiceClient("https://acct.blob.core.windows.net"), "code")
    assert blob.requirement(b"prefect>=3.4\nprefect-azure[blob_storage]>=0.4  # fetches code\n") is None
    assert blob.requirement(b"prefect\nprefect-azure\nazure-storage-blob\n") is None
    note = blob.requirement(b"prefect>=3.4\n# prefect-azure[blob_storage]\n")
    assert note is not None and "prefect-azure[blob_storage]>=0.4.13" in note and "slow way" in note
    # a prefect-azure pinned or capped below the version whose pull step is tested is not enough
    for old in (b"prefect-azure[blob_storage]==0.3.2\n", b"prefect-azure[blob_storage]<0.4.10\n"):
        assert blob.requirement(old) is not None
    assert blob.requirement(b"prefect-azure[blob_storage]~=0.4.13\n") is None
    assert LocalCodeStore(Path("/nonexistent")).requirement(b"prefect\n") is None


@pytest.fixture
def run_steps(prefect_api: str):  # type: ignore[no-untyped-def]
    """Prefect's own runner of pull steps, as a flow run does before it loads its flow (against
    the session's server, where it sends its events); the working directory it ends in."""
    from prefect.deployments.steps.core import run_steps as prefect_run_steps
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def run(steps: list[dict]) -> str:  # type: ignore[type-arg]
        before = os.getcwd()
        try:
            with temporary_settings({PREFECT_API_URL: prefect_api}):
                asyncio.run(prefect_run_steps(steps))
            return os.getcwd()
        finally:
            os.chdir(before)

    return run


def test_prefect_runs_the_local_pull_steps_into_the_published_code(tmp_path: Path, run_steps) -> None:  # type: ignore[no-untyped-def]
    store = LocalCodeStore(tmp_path / "home")
    _, code = published(store, tmp_path)
    where = Path(run_steps(store.pull_steps("demo", code, "rev-1")))
    assert (where / "flow.py").is_file() and not (where / ".env").exists()


@pytest.mark.parametrize(("path", "content", "named"), [
    ("flow.py", b"print('not the published code')\n", "flow.py: altered"),
    ("requirements.txt", None, "requirements.txt: missing"),
    (".deployer-manifest", None, ".deployer-manifest: missing"),
])
def test_a_run_refuses_a_local_copy_that_is_not_its_code_naming_module_revision_and_file(
        tmp_path: Path, run_steps, path: str, content: bytes | None, named: str) -> None:  # type: ignore[no-untyped-def]
    store = LocalCodeStore(tmp_path / "home")
    _, code = published(store, tmp_path)
    tamper(store, "demo", code, path, content)
    failure = refused(run_steps, store.pull_steps("demo", code, "rev-7"))
    assert "refusing to run the code of module demo revision rev-7" in failure
    assert named in failure and "deployer deploy --repair" in failure


def test_a_run_of_local_code_that_was_deleted_says_so(tmp_path: Path, run_steps) -> None:  # type: ignore[no-untyped-def]
    store = LocalCodeStore(tmp_path / "home")
    _, code = published(store, tmp_path)
    store.delete("demo", code)
    failure = refused(run_steps, store.pull_steps("demo", code, "rev-7"))
    assert "module demo revision rev-7" in failure and "missing from the code store" in failure


def refused(run_steps, steps: list[dict]) -> str:  # type: ignore[no-untyped-def, type-arg]
    """What a run's log says when its pull steps fail (Prefect logs the step's own error)."""
    with pytest.raises(Exception) as caught:
        run_steps(steps)
    return str(caught.value.__cause__ or caught.value)


@pytest.fixture
def blob_steps(storage_connection: str):  # type: ignore[no-untyped-def]
    """The blob store's pull steps with the connection string in place of the agent's managed
    identity (which only Azure has): every step else is what an ACI agent's runs execute."""
    def steps(store: BlobCodeStore, code: str, revision: str) -> list[dict]:  # type: ignore[type-arg]
        out = store.pull_steps("demo", code, revision)
        download = out[2]["prefect_azure.deployments.steps.pull_from_azure_blob_storage"]
        assert download["credentials"] == {"account_url": store._account_url}
        download["credentials"] = {"connection_string": storage_connection}
        return out

    return steps


def test_prefect_downloads_verified_blob_code_into_a_fresh_folder_per_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage_connection: str, run_steps, blob_steps) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    stale = tmp_path / "deployer-code.stale123"
    stale.mkdir()
    os.utime(stale, (0, 0))
    store = BlobCodeStore(BlobServiceClient.from_connection_string(storage_connection), f"code-{uuid.uuid4().hex[:8]}")
    _, code = published(store, tmp_path)
    first, second = Path(run_steps(blob_steps(store, code, "rev-1"))), Path(run_steps(blob_steps(store, code, "rev-1")))
    assert first != second and first.parent == second.parent == tmp_path and not stale.exists()
    assert (first / "flow.py").is_file() and not (first / ".env").exists()


@pytest.mark.parametrize(("path", "content", "named"), [
    ("flow.py", b"print('not the published code')\n", "flow.py: altered"),
    ("sitecustomize.py", b"print('added')\n", "sitecustomize.py: added"),
    ("prefect.yaml", None, "prefect.yaml: missing"),
])
def test_a_run_refuses_a_blob_copy_that_is_not_its_code_naming_module_revision_and_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage_connection: str, run_steps, blob_steps,
        path: str, content: bytes | None, named: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    store = BlobCodeStore(BlobServiceClient.from_connection_string(storage_connection), f"code-{uuid.uuid4().hex[:8]}")
    _, code = published(store, tmp_path)
    tamper(store, "demo", code, path, content)
    failure = refused(run_steps, blob_steps(store, code, "rev-3"))
    assert "refusing to run the code of module demo revision rev-3" in failure and named in failure
    store.delete("demo", code)  # and gone altogether: the run says that, not an import error
    assert "missing" in refused(run_steps, blob_steps(store, code, "rev-3"))


def checker_namespace(store: CodeStore, storage_connection: str) -> dict:  # type: ignore[type-arg]
    """The warm checker's own code (``preflight.CHECKER``), as the agent runs it; on the blob
    store its container client is the connection string's (the agent's identity only Azure has)."""
    from deployer import preflight

    namespace: dict = {}  # type: ignore[type-arg]
    exec(compile(preflight.CHECKER, "checker", "exec"), namespace)
    if isinstance(store, BlobCodeStore):
        from azure.storage.blob import ContainerClient

        namespace["_container"] = ContainerClient.from_connection_string(storage_connection, store._name)
    return namespace


def test_a_check_request_reaches_the_agents_checker_and_goes_away(store: CodeStore, storage_connection: str) -> None:
    channel = store.check_channel("agent-demo-1")
    assert json.dumps(channel) and "AccountKey" not in json.dumps(channel)  # in a command line: no secret
    checker = checker_namespace(store, storage_connection)
    steps = [{"prefect.deployments.steps.set_working_directory": {"directory": "/x"}}]
    store.ask_check("agent-demo-1", "check-r1", steps, [("hello", "flow.py:hello")])
    store.ask_check("agent-other-2", "check-r2", steps, [("hello", "flow.py:hello")])
    assert checker["_requests"](channel) == [("check-r1", {"pull": steps, "entrypoints": [["hello", "flow.py:hello"]]})]
    store.end_check("agent-demo-1", "check-r1")
    store.end_check("agent-demo-1", "check-r1")  # already gone: no error
    assert checker["_requests"](channel) == []
