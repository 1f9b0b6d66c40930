"""A tiny labelled toy pool shared by the attribute tests."""

from __future__ import annotations

import pytest

from vec2face.toyfaces.world import ToyfacesConfig, make_toyfaces


@pytest.fixture(scope="session")
def toy_pool(tmp_path_factory):
    out = tmp_path_factory.mktemp("attr") / "pool"
    make_toyfaces(
        ToyfacesConfig(pool="teacher", identities=6, images=4, seed=3, workers=1),
        out,
        progress=False,
    )
    return out
