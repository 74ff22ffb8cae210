"""One sandbox (Redis behind the fault proxy) for every safety test, always brought down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .trials import Estate, running_estate


@pytest.fixture(scope="package")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    with running_estate(tmp_path_factory.mktemp("safety-estate")) as running:
        yield running
