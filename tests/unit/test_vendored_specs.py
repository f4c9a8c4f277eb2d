"""The vendored copies of the published specs stay byte-identical to ../shared/azure-specs."""

from __future__ import annotations

import pytest

from tests.fakes.azure.swagger import SHARED_SPECS, VENDORED_SPECS


def test_vendored_specs_match_the_shared_ones() -> None:
    if not SHARED_SPECS.is_dir():
        pytest.skip("../shared/azure-specs is not beside this checkout")
    copies = [p for p in VENDORED_SPECS.rglob("*.json")]
    assert copies
    for copy in copies:
        relative = copy.relative_to(VENDORED_SPECS)
        assert copy.read_bytes() == (SHARED_SPECS / relative).read_bytes(), relative
