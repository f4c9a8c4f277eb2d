"""The `world` fixture: the pipeline with every port faked."""

from tests.unit.pipeline_world import world  # noqa: F401
