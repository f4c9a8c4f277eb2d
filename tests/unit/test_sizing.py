"""Sizes where users write them: a deployment's job_variables cpu/memory and the module's agent
(prefect.yaml's deployer.agent), checked at validate time against ACI's limits with file:line,
and what they become: the agent's size, each run's memory limit, the config digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.adapters.prefect_deployments import deployment_payload
from deployer.bundle import BundleLimits, Module, load_folder
from deployer.bundle.sizing import Size
from deployer.errors import BundleInvalid
from deployer.run_limits import RUN_MEMORY_ENV
from tests.builders import module_files, write_module

LIMITS = BundleLimits()
FLOW = "from prefect import flow\n\n\n@flow\ndef small() -> None: ...\n\n\n@flow\ndef big() -> None: ...\n"
DEFAULT = Size(1.0, 1.5)


def prefect_yaml(small: str = "", big: str = "", top: str = "") -> str:
    def pool(variables: str) -> str:
        return f"    work_pool:\n      job_variables: {{{variables}}}\n" if variables else ""
    return (f"name: demo\n{top}deployments:\n"
            f"  - name: small\n    entrypoint: flow.py:small\n{pool(small)}"
            f"  - name: big\n    entrypoint: flow.py:big\n{pool(big)}")


def load(tmp_path: Path, text: str) -> Module:
    root = write_module(tmp_path, "demo", module_files("demo", {"flow.py": FLOW, "prefect.yaml": text}))
    return load_folder(root, LIMITS)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(BundleInvalid) as info:
        load(tmp_path, text)
    return [str(p) for p in info.value.problems]


def test_sizes_within_acis_limits_are_valid_and_size_the_agent_to_fit(tmp_path: Path) -> None:
    module = load(tmp_path, prefect_yaml(small="cpu: 0.5, memory: 0.5", big="cpu: 2, memory: 4"))
    assert module.agent_size(DEFAULT) == Size(2.0, 4.5)  # the biggest deployment, and its worker
    unsized = load(tmp_path / "b", prefect_yaml())
    assert unsized.agent_size(DEFAULT) == DEFAULT


def test_a_declared_agent_size_is_the_agents(tmp_path: Path) -> None:
    module = load(tmp_path, prefect_yaml(big="memory: 3", top="deployer:\n  agent: {cpu: 2, memory: 6}\n"))
    assert module.agent_size(DEFAULT) == Size(2.0, 6.0)


@pytest.mark.parametrize("variables,line,expected", [
    ("cpu: 0", 8, "deployment 'big': work_pool.job_variables.cpu must be a number of vCPU above 0 "
                  "and at most 4; it is 0. 4 vCPU is ACI's limit"),
    ("cpu: 8", 8, "it is 8. 4 vCPU is ACI's limit for a standard Linux container group (Microsoft "
                  "Learn, 'Resource availability & quota limits for ACI')"),
    ("memory: 32", 8, "work_pool.job_variables.memory must be a number of GB from 0.5 to 16, in "
                      "steps of 0.1; it is 32. 16 GB and the steps are ACI's limit"),
    ("memory: 0.2", 8, "it is 0.2. 16 GB and the steps are ACI's limit for a standard Linux "
                       "container group (Microsoft Learn, 'Resource availability & quota limits "
                       "for ACI'); a flow run alone needs about 0.2 GB"),
    ("memory: '2Gi'", 8, "it is the text '2Gi' (write a number)"),
    ("memory: 1e0", 8, "it is the text '1e0' (write a number)"),  # YAML 1.1 reads 1e0 as text
    ("memory: true", 8, "it is True"),
    ("memory: 1.25", 8, "in steps of 0.1; it is 1.25"),
    ("memory: 2.3000000001", 8, "in steps of 0.1; it is 2.3000000001"),
    ("Memory: 30", 8, "work_pool.job_variables.Memory: did you mean 'memory'? (names are "
                      "case-sensitive)"),
    ("memory: 16", 8, "asks for 16 GB: its agent needs 0.5 GB beside it, and ACI's limit for a "
                      "standard Linux container group (Microsoft Learn, 'Resource availability & "
                      "quota limits for ACI') is 16 GB, so at most 15.5 GB"),
    ("memory: 2, env: [A]", 8, "work_pool.job_variables.env must be a mapping of NAME: value"),
])
def test_sizes_out_of_range_are_refused_with_file_and_line(tmp_path: Path, variables: str, line: int,
                                                           expected: str) -> None:
    found = problems(tmp_path, prefect_yaml(big=variables))
    assert len(found) == 1, found
    assert found[0].startswith(f"prefect.yaml:{line}: "), found
    assert expected in found[0]


def test_a_deployment_bigger_than_the_declared_agent_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, prefect_yaml(small="memory: 1", big="cpu: 2, memory: 8",
                                            top="deployer:\n  agent: {cpu: 1, memory: 4}\n"))
    assert found == [
        "prefect.yaml:12: deployment 'big': asks for 2 vCPU, more than the module's agent has "
        "(deployer.agent.cpu: 1): its runs share that agent; raise deployer.agent.cpu or lower this",
        "prefect.yaml:12: deployment 'big': asks for 8 GB, more than the module's agent has room for "
        "(3.5 GB: deployer.agent.memory 4 less 0.5 GB for its worker): its runs share that agent; "
        "raise deployer.agent.memory or lower this"]


@pytest.mark.parametrize("top,expected", [
    ("deployer: [1]\n", "prefect.yaml:2: 'deployer' must be a mapping"),
    ("deployer:\n  isolate: run\n", "prefect.yaml:3: unknown key 'isolate' in 'deployer' (known: agent, isolation)"),
    ("deployer:\n  agent: 2\n", "prefect.yaml:3: deployer.agent must be a mapping"),
    ("deployer:\n  agent: {cpu: 1, memory: 2, gpu: 1}\n",
     "prefect.yaml:3: unknown key 'gpu' in deployer.agent (known: cpu, memory)"),
    ("deployer:\n  agent: {cpu: 2}\n", "deployer.agent needs both cpu and memory (no memory)"),
    ("deployer:\n  agent: {CPU: 2, memory: 2}\n", "deployer.agent.CPU: did you mean 'cpu'?"),
    ("deployer:\n  agent: {cpu: 1, memory: 0.5}\n", "deployer.agent.memory must be at least 1 GB: "
     "0.5 GB for its worker, and a run needs 0.5 GB; it is 0.5"),
    ("deployer:\n  agent:\n    cpu: 1\n    memory: 20\n",
     "prefect.yaml:5: deployer.agent.memory must be a number of GB from 0.5"),
    ("deployer:\n  isolation: container\n", "prefect.yaml:3: deployer.isolation must be one of "
     "agent, run; it is 'container'"),
    ("deployer:\n  isolation: Run\n", "deployer.isolation must be one of agent, run; it is 'Run'"),
    ("deployer:\n  isolation: run\n  agent: {cpu: 1, memory: 2}\n",
     "prefect.yaml:4: deployer.agent has no meaning with isolation: run"),
])
def test_a_wrong_module_section_is_named(tmp_path: Path, top: str, expected: str) -> None:
    found = problems(tmp_path, prefect_yaml(top=top))
    assert len(found) == 1 and expected in found[0], found


def test_every_problem_of_the_module_section_is_named_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, prefect_yaml(top="deployer:\n  agent: {memory: 2}\n  isolate: run\n"))
    assert found == ["prefect.yaml:3: deployer.agent needs both cpu and memory (no cpu)",
                     "prefect.yaml:4: unknown key 'isolate' in 'deployer' (known: agent, isolation)"]


def test_sizes_change_the_config_digest_only_when_given(tmp_path: Path) -> None:
    plain = load(tmp_path / "a", prefect_yaml())
    digest = plain.config_digest("k")
    from deployer.bundle.digest import config_digest
    assert digest == config_digest(plain.env.pairs, "k")  # modules without sizes keep theirs
    sized = load(tmp_path / "b", prefect_yaml(big="memory: 2"))
    bigger = load(tmp_path / "c", prefect_yaml(big="memory: 3"))
    agent = load(tmp_path / "d", prefect_yaml(top="deployer:\n  agent: {cpu: 1, memory: 2}\n"))
    assert len({digest, sized.config_digest("k"), bigger.config_digest("k"),
                agent.config_digest("k")}) == 4
    # a revision of it accepted before sizes joined the digest still loads (handback, rollback)
    legacy = config_digest(sized.env.pairs, "k")
    assert sized.has_config_digest("k", legacy) and sized.has_config_digest("k", sized.config_digest("k"))
    assert not sized.has_config_digest("k", bigger.config_digest("k"))


def test_a_deployment_with_memory_registers_its_limit_in_its_runs_environment(tmp_path: Path) -> None:
    module = load(tmp_path, prefect_yaml(small="memory: 0.5, env: {A: '1'}", big="cpu: 2"))
    small, big = module.deployments
    payload = deployment_payload(small, "demo", "q", [], "rev")
    assert payload["job_variables"] == {"memory": 0.5, "env": {"A": "1", RUN_MEMORY_ENV: str(512 * 1024**2)}}
    assert deployment_payload(big, "demo", "q", [], "rev")["job_variables"] == {"cpu": 2}


def test_the_scaffolds_sizing_hints_validate_once_uncommented(tmp_path: Path) -> None:
    from deployer.scaffold import create_module

    root = create_module(tmp_path, "risk-report")
    text = (root / "prefect.yaml").read_text()
    for hint, line in (("# deployer:", "deployer:"), ("#   agent:", "  agent:"),
                       ("#   isolation:", "  isolation:"),
                       ("    # work_pool:", "    work_pool:"),
                       ("    #   job_variables:", "      job_variables:")):
        assert hint in text
        text = text.replace(hint, line)
    (root / "prefect.yaml").write_text(text)
    module = load_folder(root, LIMITS)
    assert module.options.agent == Size(1.0, 1.5) and module.options.isolation == "agent"
    assert [d.config["work_pool"] for d in module.deployments] == [{"job_variables": {"memory": 1}}]


def test_isolation_run_is_a_revision_of_its_own_and_its_runs_may_use_a_whole_container(
        tmp_path: Path) -> None:
    from deployer.bundle.sizing import container_size
    from deployer.models import Revision

    per_run = load(tmp_path / "a", prefect_yaml(big="memory: 16", top="deployer:\n  isolation: run\n"))
    assert per_run.options.per_run  # 16 GB: no agent needs room beside the run
    assert container_size(per_run.deployments[1], DEFAULT) == Size(1.0, 16.0)
    assert container_size(per_run.deployments[0], DEFAULT) == DEFAULT  # none said: the default
    assert Revision.of(per_run, "k").per_run
    agent = load(tmp_path / "b", prefect_yaml(big="memory: 15", top="deployer:\n  isolation: agent\n"))
    unsaid = load(tmp_path / "c", prefect_yaml(big="memory: 15"))
    # saying the default leaves the configuration as it was; switching to run changes it
    assert Revision.of(agent, "k").config_digest == Revision.of(unsaid, "k").config_digest
    switched = load(tmp_path / "d", prefect_yaml(big="memory: 15", top="deployer:\n  isolation: run\n"))
    assert Revision.of(switched, "k").config_digest != Revision.of(unsaid, "k").config_digest
