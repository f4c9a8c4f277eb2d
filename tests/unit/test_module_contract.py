"""The module contract: every problem at once, with file and line, never a secret value."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deployer.bundle import BundleLimits, load_folder
from deployer.errors import BundleInvalid
from tests.builders import module_files, write_module

LIMITS = BundleLimits()
SECRET = "s3cr3t-token-value"


def problems(tmp_path: Path, changes: dict[str, str | bytes | None], name: str = "demo") -> list[str]:
    root = write_module(tmp_path, name, module_files(name, changes))
    with pytest.raises(BundleInvalid) as info:
        load_folder(root, LIMITS)
    assert SECRET not in str(info.value)
    return [str(p) for p in info.value.problems]


def test_the_finance_example_module_is_valid(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "flows" / "finance"
    root = tmp_path / "finance"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns(".env", "__pycache__"))
    shutil.copy(source / ".env.example", root / ".env")
    module = load_folder(root, LIMITS)
    assert module.name == "finance"
    assert [d.entrypoint for d in module.deployments] == ["flow.py:daily_pnl"]


def test_valid_module_loads_with_its_env_keys_and_deployments(tmp_path: Path) -> None:
    module = load_folder(write_module(tmp_path), LIMITS)
    assert module.env.keys == ("GREETING", "API_TOKEN")
    assert SECRET not in repr(module.env)
    assert [d.name for d in module.deployments] == ["hello"]


@pytest.mark.parametrize("name", ["Demo", "x", "1abc", "has_underscore", "a" * 32])
def test_invalid_module_names_are_rejected(tmp_path: Path, name: str) -> None:
    found = problems(tmp_path, {}, name=name)
    assert any("module name" in p for p in found)


@pytest.mark.parametrize("missing", ["requirements.txt", "Dockerfile", ".env", "prefect.yaml"])
def test_each_required_file_is_reported_missing(tmp_path: Path, missing: str) -> None:
    found = problems(tmp_path, {missing: None})
    assert any(p.startswith(f"{missing}: is missing") for p in found)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, {
        "requirements.txt": "pandas\n",
        "Dockerfile": "FROM python:3.11\nCOPY .env /app/.env\n",
        ".env": f"GOOD=1\nthis line is broken {SECRET}\n",
        "prefect.yaml": "deployments:\n  - name: a\n    entrypoint: missing.py:main\n",
    })
    assert len(found) == 5, found
    assert any(p.startswith("Dockerfile:1: no COPY or ADD puts the module's code") for p in found)
    assert any(p.startswith("requirements.txt: does not name prefect") for p in found)
    assert any(p.startswith("Dockerfile:2:") and "copies .env" in p for p in found)
    assert any(p.startswith(".env:2: expected KEY=VALUE") for p in found)
    assert any(p.startswith("prefect.yaml:2:") and "missing.py does not exist" in p for p in found)


@pytest.mark.parametrize("line", [
    f"KEY {SECRET}", f"1KEY={SECRET}", f'KEY="{SECRET}', f"KEY='{SECRET}", f'KEY="{SECRET}" extra',
])
def test_malformed_env_lines_name_the_line_but_never_the_value(tmp_path: Path, line: str) -> None:
    found = problems(tmp_path, {".env": f"# comment\n\nOK=1\n{line}\n"})
    assert len(found) == 1 and found[0].startswith(".env:4:"), found


def test_duplicate_env_keys_are_reported(tmp_path: Path) -> None:
    found = problems(tmp_path, {".env": "A=1\nexport A=2\n"})
    assert found == [".env:2: duplicate key A (first set on line 1)"]


def test_env_syntax_accepts_quotes_export_comments_and_empty_values(tmp_path: Path) -> None:
    env = 'export A="quoted \\"inner\\" value"\nB=\'single # not a comment\'\n# c\nC=\nD=a=b\n'
    module = load_folder(write_module(tmp_path, files=module_files(changes={".env": env})), LIMITS)
    assert module.env.as_dict() == {"A": 'quoted "inner" value', "B": "single # not a comment",
                                    "C": "", "D": "a=b"}


@pytest.mark.parametrize("requirements", [
    "prefect\n", "Prefect[azure]>=3\n", "# deps\nrequests==2.32 \\\n  --hash=sha256:abc\nprefect==3.4.1 ; python_version >= '3.9'\n",
    "-r base.txt\nprefect @ https://example.invalid/prefect.whl\n",
])
def test_requirements_naming_prefect_in_any_spelling_pass(tmp_path: Path, requirements: str) -> None:
    files = module_files(changes={"requirements.txt": requirements, "base.txt": "requests\n"})
    load_folder(write_module(tmp_path, files=files), LIMITS)


@pytest.mark.parametrize("requirements", ["prefect-aws\n", "# prefect\n", "-e ./prefect\n"])
def test_requirements_without_prefect_are_rejected(tmp_path: Path, requirements: str) -> None:
    assert any("does not name prefect" in p for p in problems(tmp_path, {"requirements.txt": requirements}))


@pytest.mark.parametrize("instruction", [
    "COPY .env /app/", "ADD .env* /app/", "COPY --chown=1000 *.env /app/", 'COPY [".env", "/app/"]',
    "COPY . /opt/prefect/flows/demo", "ADD ./ /app", "COPY \\\n  . \\\n  /app",
])
def test_dockerfile_that_would_copy_env_is_rejected(tmp_path: Path, instruction: str) -> None:
    found = problems(tmp_path, {"Dockerfile": f"FROM python:3.11\n{instruction}\n"})
    assert any(p.startswith("Dockerfile:2:") for p in found), found


@pytest.mark.parametrize("ignore", [".env\n", "**/.env\n", "*.env\n", ".env*\n"])
def test_copying_the_folder_is_fine_when_dockerignore_excludes_env(tmp_path: Path, ignore: str) -> None:
    files = module_files(changes={"Dockerfile": "FROM python:3.11\nCOPY . /opt/prefect/flows/demo\n",
                                  ".dockerignore": ignore})
    load_folder(write_module(tmp_path, files=files), LIMITS)


def test_dockerignore_negation_brings_env_back(tmp_path: Path) -> None:
    found = problems(tmp_path, {"Dockerfile": "FROM x\nCOPY . /app\n", ".dockerignore": ".env\n!.env\n"})
    assert any("copies the whole folder" in p for p in found)


def test_copy_from_another_stage_is_not_flagged(tmp_path: Path) -> None:
    files = module_files(changes={"Dockerfile": "FROM x AS build\nFROM y\nCOPY --from=build . /app\n"
                                                "COPY flow.py /opt/prefect/flows/demo/\n"})
    load_folder(write_module(tmp_path, files=files), LIMITS)


@pytest.mark.parametrize("yaml_text,expected", [
    ("deployments: [\n", "prefect.yaml:2: is not valid YAML"),
    ("name: x\n", "has no deployments"),
    ("- a\n- b\n", "must be a mapping"),
    ("deployments:\n  - entrypoint: flow.py:hello\n", "deployment has no 'name'"),
    ("deployments:\n  - name: a\n    entrypoint: flow.py\n", "needs an 'entrypoint'"),
    ("deployments:\n  - name: a\n    entrypoint: ../x.py:f\n", "must be a relative path inside the module"),
    ("deployments:\n  - name: a\n    entrypoint: flow.py:nope\n", "defines no function 'nope'"),
    ("deployments:\n  - name: a\n    entrypoint: flow.py:hello\n  - name: a\n    entrypoint: flow.py:hello\n",
     "prefect.yaml:4: deployment name 'a' repeats line 2"),
])
def test_prefect_yaml_problems_are_located(tmp_path: Path, yaml_text: str, expected: str) -> None:
    found = problems(tmp_path, {"prefect.yaml": yaml_text})
    assert any(expected in p for p in found), found


def test_entrypoint_that_is_not_a_flow_is_reported_at_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, {"flow.py": "import os\n\n\ndef hello():\n    return 1\n"})
    assert found == ["flow.py:4: hello is not a Prefect flow (decorate it with @flow)"]


def test_entrypoint_with_a_syntax_error_is_reported_at_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, {"flow.py": "from prefect import flow\n\n@flow\ndef hello(:\n    pass\n"})
    assert len(found) == 1 and found[0].startswith("flow.py:4: syntax error")


@pytest.mark.parametrize("source", [
    "import prefect\n\n@prefect.flow(name='x', retries=2)\nasync def hello():\n    pass\n",
    "from prefect import flow\n\ndef _impl():\n    pass\n\nhello = flow(_impl)\n",
    "from prefect import flow\n\n@flow\ndef base():\n    pass\n\nhello = base.with_options(name='h')\n",
])
def test_flow_definitions_are_recognised_without_importing_the_code(tmp_path: Path, source: str) -> None:
    marker = tmp_path / "imported"
    code = f"open({str(marker)!r}, 'w').close()\n" + source
    load_folder(write_module(tmp_path, files=module_files(changes={"flow.py": code})), LIMITS)
    assert not marker.exists()


def test_yaml_alias_bombs_are_refused(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefg":
        prev = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    bomb += "deployments:\n  - name: a\n    entrypoint: flow.py:hello\n    parameters: {p: *g}\n"
    assert any("expands to more than" in p for p in problems(tmp_path, {"prefect.yaml": bomb}))


def test_symlinks_in_a_folder_are_rejected(tmp_path: Path) -> None:
    root = write_module(tmp_path)
    (root / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(BundleInvalid) as info:
        load_folder(root, LIMITS)
    assert [str(p) for p in info.value.problems] == [
        "passwd: symbolic links are not allowed in a bundle (copy the file in instead)"]


def test_folder_over_the_limits_is_rejected(tmp_path: Path) -> None:
    root = write_module(tmp_path)
    (root / "data").mkdir()
    for n in range(20):
        (root / "data" / f"{n}.csv").write_bytes(b"x" * 1000)
    with pytest.raises(BundleInvalid) as info:
        load_folder(root, BundleLimits(max_bytes=10_000, max_entries=10))
    text = str(info.value)
    assert "more than the limit of 10" in text and "more than the limit of 10000" in text


@pytest.mark.parametrize("key", ["AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID",
                                 "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT"])
def test_env_keys_that_change_the_agents_azure_identity_are_refused(tmp_path: Path, key: str) -> None:
    root = write_module(tmp_path, files=module_files(changes={".env": f"GREETING=hi\n{key}=x-value\n"}))
    with pytest.raises(BundleInvalid) as info:
        load_folder(root, BundleLimits())
    [problem] = [str(p) for p in info.value.problems]
    assert problem.startswith(".env:2: ") and key in problem and "identity" in problem and "x-value" not in problem


ENV_READS = '''import os
from os import environ, getenv

from prefect import flow

TOKEN = os.environ["API_TOKEN"]
REGION = environ["REGION"]
DEBUG = os.getenv("DEBUG")
LEVEL = os.environ.get("LEVEL", "info")
URL = os.environ["PREFECT_API_URL"]
HERE = getenv("GREETING")


@flow(name="demo")
def hello(seconds: float = 0.0) -> str:
    return os.environ["INSIDE_THE_FLOW"]
'''


def test_environment_variables_the_code_reads_by_name_must_be_in_env(tmp_path: Path) -> None:
    root = write_module(tmp_path, files=module_files(changes={"flow.py": ENV_READS, ".env": "GREETING=hi\nREGION=eu\n"}))
    with pytest.raises(BundleInvalid) as info:
        load_folder(root, BundleLimits())
    found = [str(p) for p in info.value.problems]
    assert found == [
        "flow.py:6: reads environment variable 'API_TOKEN' (os.environ[...]), which .env does not set: the flow "
        "would fail with KeyError; add API_TOKEN=... to .env (or a Key Vault reference), or read it with a default",
        "flow.py:16: reads environment variable 'INSIDE_THE_FLOW' (os.environ[...]), which .env does not set: the "
        "flow would fail with KeyError; add INSIDE_THE_FLOW=... to .env (or a Key Vault reference), or read it "
        "with a default"]
    fixed = write_module(tmp_path / "b", files=module_files(changes={
        "flow.py": ENV_READS, ".env": "GREETING=hi\nREGION=eu\nAPI_TOKEN=t\nINSIDE_THE_FLOW=x\n"}))
    module = load_folder(fixed, BundleLimits())
    assert module.notes == ("flow.py:8: os.getenv('DEBUG') is None: .env does not set DEBUG",)
