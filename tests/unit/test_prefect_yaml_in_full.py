"""prefect.yaml checked in full at validate time, the rest of the module contract, and hostile
input: every problem with file and line, all at once, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.adapters.prefect_deployments import PrefectDeploymentChecker
from deployer.bundle import BundleLimits, load_folder
from deployer.errors import BundleInvalid
from tests.builders import module_files, write_module

LIMITS = BundleLimits()
CHECKER = PrefectDeploymentChecker()
FLOW = '''from prefect import flow


@flow
def hello(name: str = "world", times: int = 1) -> str:
    return name * times


@flow
def needs(day: str) -> str:
    return day
'''


def problems(tmp_path: Path, changes: dict[str, str | bytes | None], name: str = "demo") -> list[str]:
    root = write_module(tmp_path, name, module_files(name, {"flow.py": FLOW, **changes}))
    with pytest.raises(BundleInvalid) as info:
        load_folder(root, LIMITS, checker=CHECKER)
    return [str(p) for p in info.value.problems]


def deployment(body: str, entrypoint: str = "flow.py:hello") -> str:
    return f"name: demo\ndeployments:\n  - name: hello\n    entrypoint: {entrypoint}\n{body}"


def test_a_module_with_every_honoured_setting_is_valid(tmp_path: Path) -> None:
    text = deployment(
        "    description: says hello\n"
        "    tags: [a, b]\n"
        "    paused: false\n"
        "    concurrency_limit: {limit: 2, collision_strategy: ENQUEUE}\n"
        "    parameters: {name: you, times: 3}\n"
        "    work_pool:\n      job_variables: {env: {X: '1'}}\n"
        "    schedules:\n"
        "      - cron: '30 6 * * 1-5'\n        timezone: Europe/Paris\n"
        "      - interval: 3600\n"
        "      - rrule: 'FREQ=WEEKLY;BYDAY=MO'\n        parameters: {times: 2}\n"
        "    deployer:\n      smoke:\n        parameters: {times: 1}\n        timeout_seconds: 120\n")
    root = write_module(tmp_path, "demo", module_files("demo", {"flow.py": FLOW, "prefect.yaml": text}))
    module = load_folder(root, LIMITS, checker=CHECKER)
    assert [d.name for d in module.deployments] == ["hello"]


@pytest.mark.parametrize("schedule,expected", [
    ("- cron: '0 0 30 2 *'", "prefect.yaml:6: deployment 'hello': schedule 1: never produces a run"),
    ("- cron: '61 * * * *'", "prefect.yaml:6: deployment 'hello': schedule 1: Invalid cron string"),
    ("- cron: '* * * * *'\n        timezone: Mars/Olympus", "schedule 1: Invalid timezone"),
    ("- rrule: 'FREQ=SOMETIMES'", "schedule 1: Invalid RRule string"),
    ("- interval: -5", "prefect.yaml:6: deployment 'hello': schedule 1: interval must be a positive number"),
    ("- {cron: '* * * * *', interval: 60}", "needs exactly one of cron, interval or rrule (has cron, interval)"),
    ("- cron: '* * * * *'\n        every: day", "prefect.yaml:7: deployment 'hello': schedule 1: unknown key 'every'"),
])
def test_schedules_are_built_with_prefects_own_models(tmp_path: Path, schedule: str, expected: str) -> None:
    found = problems(tmp_path, {"prefect.yaml": deployment(f"    schedules:\n      {schedule}\n")})
    assert any(expected in p for p in found), found


@pytest.mark.parametrize("body,expected", [
    ("    parameters: {nme: x}\n", "prefect.yaml:5: deployment 'hello': parameter 'nme' is not one of hello()'s parameters (name, times)"),
    ("    parameters: {times: lots}\n", "parameter 'times' must be integer"),
    ("    schedules:\n      - cron: '* * * * *'\n        parameters: {whom: x}\n", "prefect.yaml:7: deployment 'hello': parameter 'whom'"),
    ("    deployer: {smoke: {parameters: {nope: 1}}}\n", "parameter 'nope' is not one of"),
])
def test_parameters_are_checked_against_the_flows_signature(tmp_path: Path, body: str, expected: str) -> None:
    found = problems(tmp_path, {"prefect.yaml": deployment(body)})
    assert any(expected in p for p in found), found


def test_a_required_parameter_without_a_value_is_named(tmp_path: Path) -> None:
    found = problems(tmp_path, {"prefect.yaml": deployment("", entrypoint="flow.py:needs")})
    assert any("needs() needs parameter(s) day, which have no default" in p for p in found), found


def test_without_the_schema_enforced_types_are_not_checked(tmp_path: Path) -> None:
    text = deployment("    enforce_parameter_schema: false\n    parameters: {times: lots}\n")
    root = write_module(tmp_path, "demo", module_files("demo", {"flow.py": FLOW, "prefect.yaml": text}))
    load_folder(root, LIMITS, checker=CHECKER)


@pytest.mark.parametrize("body,expected", [
    ("    build: []\n", "prefect.yaml:5: deployment 'hello': 'build' is not honoured: the deployer builds"),
    ("    pull: []\n", "'pull' is not honoured: the deployer sets each deployment's pull steps"),
    ("    triggers: []\n", "'triggers' is not honoured"),
    ("    version: '1.2'\n", "'version' is not honoured: the deployer sets each deployment's version"),
    ("    work_pool: {name: my-pool}\n", "work_pool.name is not honoured: the deployer gives module demo its own pool"),
    ("    schedulez: []\n", "unknown key 'schedulez' (Prefect would ignore it)"),
    ("    tags: a, b\n", "tags must be a list of strings"),
    ("    concurrency_limit: 0\n", "concurrency_limit must be at least 1"),
    ("    concurrency_limit: {limit: 2, collision_strategy: DROP}\n", "collision_strategy must be one of ENQUEUE, CANCEL_NEW"),
    ("    paused: sometimes\n", "paused must be true or false"),
    ("    deployer: {smoke: {timeout_seconds: 99999}}\n", "deployer.smoke.timeout_seconds must be 1 to 3600"),
])
def test_sections_the_deployer_does_not_honour_and_wrong_shapes_are_reported(
        tmp_path: Path, body: str, expected: str) -> None:
    found = problems(tmp_path, {"prefect.yaml": deployment(body)})
    assert any(expected in p for p in found), found


def test_top_level_build_push_pull_are_reported(tmp_path: Path) -> None:
    text = "build:\n  - x: {}\npush: []\n" + deployment("").removeprefix("name: demo\n")
    found = problems(tmp_path, {"prefect.yaml": text})
    assert any(p.startswith("prefect.yaml:1: 'build' is not honoured") for p in found), found
    assert any(p.startswith("prefect.yaml:3: 'push' is not honoured") for p in found), found


def test_every_problem_comes_at_once(tmp_path: Path) -> None:
    text = deployment("    version: x\n    parameters: {nope: 1}\n    schedules:\n      - cron: '0 0 30 2 *'\n")
    found = problems(tmp_path, {"prefect.yaml": text, "Dockerfile": "FROM x\n"})
    assert len(found) == 4, found


# -- the rest of the module contract -------------------------------------------------------------


@pytest.mark.parametrize("line,expected", [
    ("-r ../shared/requirements.txt", "requirements.txt:2: ../shared/requirements.txt is outside the module"),
    ("-c /etc/constraints.txt", "is outside the module"),
    ("-e ../lib", "is outside the module"),
    ("--requirement=~/x.txt", "is outside the module"),
    ("file:///opt/wheels/x.whl", "is outside the module"),
    ("-r missing.txt", "requirements.txt:2: missing.txt does not exist in the module"),
])
def test_requirement_lines_that_reach_outside_the_bundle_are_rejected(tmp_path: Path, line: str, expected: str) -> None:
    found = problems(tmp_path, {"requirements.txt": f"prefect>=3.4,<4\n{line}\n"})
    assert any(expected in p for p in found), found


def test_requirement_lines_inside_the_bundle_and_urls_are_fine(tmp_path: Path) -> None:
    files = module_files("demo", {"flow.py": FLOW, "base.txt": "six\n", "lib/setup.py": "",
                                  "requirements.txt": "prefect>=3.4,<4\n-r base.txt\n-e ./lib\n"
                                  "-e git+https://example.invalid/x.git#egg=x\n"})
    load_folder(write_module(tmp_path, "demo", files), LIMITS, checker=CHECKER)


def test_a_dockerfile_that_puts_the_code_elsewhere_is_rejected(tmp_path: Path) -> None:
    found = problems(tmp_path, {"Dockerfile": "FROM prefecthq/prefect:3\nWORKDIR /app\nCOPY flow.py ./\n"})
    assert any("Dockerfile:1: no COPY or ADD puts the module's code in /opt/prefect/flows/demo" in p for p in found)


def test_workdir_then_relative_copy_counts(tmp_path: Path) -> None:
    files = module_files("demo", {"flow.py": FLOW, "Dockerfile": "FROM x\nWORKDIR /opt/prefect\n"
                                  "WORKDIR flows/demo\nCOPY flow.py .\n"})
    load_folder(write_module(tmp_path, "demo", files), LIMITS, checker=CHECKER)


@pytest.mark.parametrize("name,expected", [("ab-", "no '--' and no '-' at the end"), ("a--b", "no '--'"),
                                           ("prefect-etl", "Prefect reserves work pool names")])
def test_module_names_azure_or_prefect_refuse_are_rejected_with_the_reason(
        tmp_path: Path, name: str, expected: str) -> None:
    assert any(expected in p for p in problems(tmp_path, {}, name=name))


# -- hostile input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "deployments: " + "[" * 5000 + "]" * 5000 + "\n",
    "deployments:\n" + "".join("  " * n + "- \n" for n in range(1, 400)),
    "a: &a [1]\n" + "".join(f"b{n}: &b{n} [*{'a' if n == 0 else f'b{n - 1}'}]\n" for n in range(60)) + "deployments: [*b59]\n",
])
def test_deeply_nested_yaml_is_a_problem_not_a_crash(tmp_path: Path, text: str) -> None:
    found = problems(tmp_path, {"prefect.yaml": text})
    assert any("nests more than 32 levels deep" in p for p in found), found


def test_a_flow_file_that_exhausts_the_parser_is_a_problem_with_its_name(tmp_path: Path) -> None:
    found = problems(tmp_path, {"flow.py": "x = " + "(" * 200_000 + ")" * 200_000 + "\n"})
    assert any(p.startswith("flow.py:") and ("cannot be parsed" in p or "syntax error" in p) for p in found), found


def test_an_env_larger_than_the_limit_is_refused_whole_never_read_in_part(tmp_path: Path) -> None:
    big = "PAD=" + "x" * 30_000 + "\n"
    text = "".join(big.replace("PAD", f"PAD{n}") for n in range(40)) + "LAST=changed\n"
    found = problems(tmp_path, {".env": text})
    assert any(p.startswith(".env: is larger than 1024 KiB") for p in found), found


def test_a_value_too_large_for_the_agents_environment_is_a_contract_error(tmp_path: Path) -> None:
    found = problems(tmp_path, {".env": "OK=1\nHUGE=" + "v" * 40_000 + "\n"})
    assert any(p.startswith(".env:2: the value of HUGE is larger than 32 KiB") for p in found), found
    assert not any("vvvv" in p for p in found)


def test_prefect_settings_in_env_are_named_since_the_deployer_sets_them(tmp_path: Path) -> None:
    found = problems(tmp_path, {".env": "PREFECT_API_KEY=pnu_x\n"})
    assert any(".env:1: PREFECT_API_KEY is set by the deployer" in p for p in found), found


@pytest.mark.parametrize("name", ["a/b", "50%", "q&a", "<hello>"])
def test_deployment_names_prefect_refuses_are_refused_at_validate_with_their_line(tmp_path: Path, name: str) -> None:
    text = f"name: demo\ndeployments:\n  - entrypoint: flow.py:hello\n    name: '{name}'\n"
    found = problems(tmp_path, {"prefect.yaml": text})
    assert any(p.startswith("prefect.yaml:4: ") and "Prefect refuses it" in p for p in found), found


def test_a_flow_name_prefect_refuses_is_refused_at_validate(tmp_path: Path) -> None:
    flow = FLOW.replace("@flow\ndef hello", "@flow(name='etl/daily')\ndef hello")
    found = problems(tmp_path, {"flow.py": flow, "prefect.yaml": deployment("")})
    assert any("flow name 'etl/daily'" in p and "prefect.yaml:4" in p for p in found), found


def test_prefects_definitions_section_holds_anchors_the_deployments_use(tmp_path: Path) -> None:
    text = ("name: demo\ndefinitions:\n  sizes: &sizes {memory: 1}\ndeployments:\n"
            "  - name: hello\n    entrypoint: flow.py:hello\n    work_pool:\n      job_variables: *sizes\n")
    root = write_module(tmp_path, "demo", module_files("demo", {"flow.py": FLOW, "prefect.yaml": text}))
    module = load_folder(root, LIMITS, checker=CHECKER)
    assert module.deployments[0].config["work_pool"] == {"job_variables": {"memory": 1}}


@pytest.mark.parametrize("body,expected", [
    ("    work_pool:\n      job_variables: {env: 'FOO=1'}\n",
     "prefect.yaml:6: deployment 'hello': work_pool.job_variables.env must be a mapping of NAME: "
     "value (the runs' environment)"),
    ("    deployer:\n      agent: {cpu: 1, memory: 2}\n",
     "prefect.yaml:6: deployment 'hello': 'agent' goes in prefect.yaml's top-level 'deployer:' "
     "section (the module's agent); a deployment's runs are sized by work_pool.job_variables cpu "
     "and memory"),
])
def test_job_variables_and_the_deployment_section_are_checked_whatever_else_is_set(
        tmp_path: Path, body: str, expected: str) -> None:
    assert problems(tmp_path, {"prefect.yaml": deployment(body)}) == [expected]
