import pytest


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RELAY_IN_PROCESS = False


@pytest.fixture
def world(db):
    from eoms.testing.world import build_world

    return build_world()
