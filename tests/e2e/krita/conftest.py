"""The Krita profile every real-Krita e2e module starts from (installed by the real installer)."""

from __future__ import annotations

import pytest
from krita_runner import prepare_profile


@pytest.fixture(scope="module")
def krita_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("krita-home")
    prepare_profile(home)
    return home
