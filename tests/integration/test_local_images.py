"""The local image builder for real (uv, a build process of its own): one venv per dependency
digest, shared by images; failed builds report uv's words; unused venvs are pruned."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deployer.adapters.local_images import LocalImageBuilder
from deployer.ports.images import BuildProgress, BuildState

CODE = "sha256:" + "1" * 64
OTHER_CODE = "sha256:" + "2" * 64


def source(tmp: Path, name: str, requirements: str, extra: dict[str, str] | None = None) -> Path:
    root = tmp / name
    root.mkdir(parents=True)
    (root / "requirements.txt").write_text(requirements)
    (root / "flow.py").write_text("print('hi')\n")
    (root / ".env").write_text("SECRET=never-in-an-image\n")
    for rel, text in (extra or {}).items():
        (root / rel).write_text(text)
    return root


def built(builder: LocalImageBuilder, module: str, code: str, src: Path) -> BuildProgress:
    build_id = builder.start_build(module, code, src)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        progress = builder.build_status(module, code, build_id)
        if progress.state is not BuildState.RUNNING:
            return progress
        time.sleep(0.2)
    raise AssertionError("build did not finish")


def test_images_with_the_same_requirements_share_one_venv_and_the_env_stays_out(tmp_path: Path) -> None:
    builder = LocalImageBuilder(tmp_path / "home", venvs=tmp_path / "venvs")
    first = built(builder, "alpha", CODE, source(tmp_path / "a", "alpha", "six\n"))
    second = built(builder, "beta", OTHER_CODE, source(tmp_path / "b", "beta", "six\n"))
    assert first.state is BuildState.SUCCEEDED and second.state is BuildState.SUCCEEDED
    assert first.image and second.image
    venv_a = (Path(first.image.ref) / "venv").resolve()
    assert venv_a == (Path(second.image.ref) / "venv").resolve()
    assert (venv_a / "bin" / "python").exists() and list((tmp_path / "venvs").glob("*/venv.json"))
    assert "reusing" in (Path(second.image.ref) / "build.log").read_text()
    assert not (Path(first.image.ref) / "code" / ".env").exists()
    assert builder.find("alpha", CODE) == first.image


def test_other_requirements_get_their_own_venv_and_unused_venvs_are_pruned(tmp_path: Path) -> None:
    builder = LocalImageBuilder(tmp_path / "home", venvs=tmp_path / "venvs")
    one = built(builder, "alpha", CODE, source(tmp_path / "a", "alpha", "six\n"))
    two = built(builder, "alpha", OTHER_CODE, source(tmp_path / "b", "alpha", "six\nidna\n"))
    assert one.image and two.image
    assert len(list((tmp_path / "venvs").glob("*/venv.json"))) == 2
    builder.delete_tag("alpha", Path(one.image.ref).name)
    assert len(list((tmp_path / "venvs").glob("*/venv.json"))) == 1
    assert (Path(two.image.ref) / "venv" / "bin" / "python").exists()


def test_requirements_that_refer_to_files_are_never_shared(tmp_path: Path) -> None:
    builder = LocalImageBuilder(tmp_path / "home", venvs=tmp_path / "venvs")
    for n, code in enumerate((CODE, OTHER_CODE)):
        done = built(builder, "alpha", code, source(tmp_path / str(n), "alpha", "-r base.txt\n",
                                                    {"base.txt": "six\n"}))
        assert done.state is BuildState.SUCCEEDED
    assert len(list((tmp_path / "venvs").glob("*/venv.json"))) == 2


@pytest.mark.parametrize("requirements", ["this-package-does-not-exist-xyz==1.0\n"])
def test_a_failed_build_says_what_uv_said_and_leaves_no_venv(tmp_path: Path, requirements: str) -> None:
    builder = LocalImageBuilder(tmp_path / "home", venvs=tmp_path / "venvs")
    done = built(builder, "alpha", CODE, source(tmp_path, "alpha", requirements))
    assert done.state is BuildState.FAILED and "this-package-does-not-exist-xyz" in done.log_tail
    assert "install requirements.txt" in done.detail
    assert builder.find("alpha", CODE) is None
    assert not list((tmp_path / "venvs").glob("*/venv.json"))
