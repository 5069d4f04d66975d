"""A live API (real app, real tiny model) for the review, dataset and report route tests."""
import pytest

from tests.app.ui.live_servers import live_api


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with live_api(tmp_path_factory.mktemp("review-api")) as server:
        yield server
