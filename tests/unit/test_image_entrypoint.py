"""The image's ENTRYPOINT is read from the module's Dockerfile so the agent keeps it."""

from __future__ import annotations

import pytest

from deployer.bundle.entrypoint import PREFECT_ENTRYPOINT, check_entrypoint, image_entrypoint


@pytest.mark.parametrize(("dockerfile", "expected"), [
    ("FROM prefecthq/prefect:3-python3.11\nCOPY . ./\n", PREFECT_ENTRYPOINT),
    ("FROM docker.io/prefecthq/prefect:3.1-python3.11\n", PREFECT_ENTRYPOINT),
    ("FROM --platform=linux/amd64 myacr.azurecr.io/prefecthq/prefect:3-python3.11\n", PREFECT_ENTRYPOINT),
    ("FROM prefecthq/prefect@sha256:abc\n", PREFECT_ENTRYPOINT),
    ("FROM prefecthq/prefect:3 AS base\nRUN true\nFROM python:3.11-slim\nCOPY --from=base / /\n", ()),
    ("FROM python:3.11-slim\nENTRYPOINT [\"/usr/bin/tini\", \"--\"]\n", ("/usr/bin/tini", "--")),
    ("FROM prefecthq/prefect:3\nENTRYPOINT [\"/bin/entry\", \\\n  \"--flag\"]\n", ("/bin/entry", "--flag")),
    ("FROM python:3.11-slim\n", ()),
    ("FROM prefecthq/prefect-client:3\n", ()),
])
def test_the_entrypoint_the_image_runs(dockerfile: str, expected: tuple[str, ...]) -> None:
    assert image_entrypoint(dockerfile.encode()) == expected


def test_a_pushed_image_with_no_dockerfile_is_taken_to_be_prefects() -> None:
    assert image_entrypoint(None) == PREFECT_ENTRYPOINT


def test_a_shell_form_entrypoint_is_refused_with_its_line() -> None:
    [problem] = check_entrypoint(b"FROM prefecthq/prefect:3\n\nENTRYPOINT /start.sh\n", "Dockerfile")
    assert problem.line == 3 and "exec form" in problem.message
    assert check_entrypoint(b'FROM x\nENTRYPOINT ["/start.sh"]\n', "Dockerfile") == []
    # only the last stage's counts
    assert check_entrypoint(b"FROM a AS b\nENTRYPOINT /x\nFROM c\n", "Dockerfile") == []


@pytest.mark.parametrize("dockerfile", [
    "ARG DEPLOYER_REGISTRY=docker.io\nFROM ${DEPLOYER_REGISTRY}/prefecthq/prefect:3-python3.11\n",
    "ARG REG\nFROM ${REG:-docker.io}/prefecthq/prefect:3-python3.11\n",
    "ARG DEPLOYER_REGISTRY=myacr.azurecr.io\nFROM $DEPLOYER_REGISTRY/prefecthq/prefect:3\n",
])
def test_a_base_image_named_through_build_arguments_is_recognised(dockerfile: str) -> None:
    assert image_entrypoint(dockerfile.encode()) == PREFECT_ENTRYPOINT
