"""The `world` fixture: the pipeline with every port faked."""

import pytest

from tests.unit.pipeline_world import World, world  # noqa: F401


@pytest.fixture
def cli(world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]  # noqa: F811
    """``deployer ARGV`` in-process on the world's services: (exit code, stdout, stderr), as a
    100-column terminal shows them whatever ran before."""
    from deployer.cli import main, output

    for console in (output.out, output.err):
        monkeypatch.setattr(console, "width", 100)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv), services=lambda args: world.services)
        out, err = capsys.readouterr()
        return code, out, err

    return run
