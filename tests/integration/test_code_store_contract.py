"""The code store's contract, against both adapters: the local folder store and the blob store on
Azurite. Published code is whole or absent, never holds ``.env``, and the pull steps that fetch it
carry no secret; Prefect itself runs the steps that need no cloud identity."""

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
from deployer.adapters.local_code import LocalCodeStore
from deployer.bundle.digest import short
from deployer.ports import CodeStore
from deployer.preflight import CHECK_FILE
from tests.builders import module_files, write_module

CODE = "sha256:" + "c0de" * 16
CHECK = "# the deployer's check flow\n"


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
    source = write_module(tmp_path / "src", "demo", module_files("demo", {"data/rates.csv": "eur,1\n"}))
    assert not store.exists("demo", CODE) and store.codes("demo") == []
    store.publish("demo", CODE, source, CHECK)
    store.publish("demo", CODE, source, CHECK)  # a second publish of the same code is a no-op
    assert store.exists("demo", CODE) and store.codes("demo") == [short(CODE)]
    files = stored_files(store, "demo", CODE)
    assert {"flow.py", "prefect.yaml", "requirements.txt", "data/rates.csv", CHECK_FILE} <= set(files)
    assert ".env" not in files and not any(b"s3cr3t-token-value" in data for data in files.values())
    assert files[CHECK_FILE] == CHECK.encode()
    assert store.codes("other") == []


def test_deleted_code_is_gone_and_deleting_again_is_no_error(store: CodeStore, tmp_path: Path) -> None:
    source = write_module(tmp_path / "src", "demo", module_files("demo"))
    other = "sha256:" + "0be" * 21 + "f"
    store.publish("demo", CODE, source, CHECK)
    store.publish("demo", other, source, CHECK)
    store.delete("demo", short(CODE))  # cleanup deletes by the short digest codes() lists
    assert not store.exists("demo", CODE) and store.codes("demo") == [short(other)]
    store.delete("demo", CODE)


def test_pull_steps_name_the_code_and_carry_no_secret(store: CodeStore, storage_connection: str) -> None:
    steps = json.dumps(store.pull_steps("demo", CODE))
    assert short(CODE) in steps
    key = storage_connection.split("AccountKey=", 1)[1].split(";", 1)[0]
    assert key not in steps and "AccountKey" not in steps and "sig=" not in steps


def test_what_an_image_needs_to_pull_code_is_named() -> None:
    blob = BlobCodeStore(BlobServiceClient("https://acct.blob.core.windows.net"), "code")
    assert blob.requirement(b"prefect>=3.4\nprefect-azure[blob_storage]>=0.4  # fetches code\n") is None
    assert blob.requirement(b"prefect\nprefect-azure\nazure-storage-blob\n") is None
    note = blob.requirement(b"prefect>=3.4\n# prefect-azure[blob_storage]\n")
    assert note is not None and "prefect-azure[blob_storage]" in note and "slow way" in note
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
    store.publish("demo", CODE, write_module(tmp_path / "src", "demo", module_files("demo")), CHECK)
    where = Path(run_steps(store.pull_steps("demo", CODE)))
    assert (where / "flow.py").is_file() and not (where / ".env").exists()


def test_prefect_runs_the_blob_steps_before_the_download_into_a_fresh_folder_per_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_steps) -> None:  # type: ignore[no-untyped-def]
    """The download itself needs prefect-azure and the agent's managed identity, which only Azure
    has; the steps before it (a fresh folder, old ones swept) run here for real."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    stale = tmp_path / "deployer-code.stale123"
    stale.mkdir()
    os.utime(stale, (0, 0))
    steps = BlobCodeStore(BlobServiceClient("https://acct.blob.core.windows.net"), "code").pull_steps("demo", CODE)
    first, second = Path(run_steps(steps[:2])), Path(run_steps(steps[:2]))
    assert first != second and first.parent == second.parent == tmp_path
    assert first.name.startswith("deployer-code.") and not stale.exists()
    download = steps[2]["prefect_azure.deployments.steps.pull_from_azure_blob_storage"]
    assert download == {"container": "code", "folder": f"demo/{short(CODE)}",
                        "credentials": {"account_url": "https://acct.blob.core.windows.net/"}}
