"""One live API (real app, real tiny model, API keys required) for all UI tests in this folder."""
import pytest

from tests.app.ui.live_servers import live_api


@pytest.fixture(scope="session")
def api(tmp_path_factory):
    with live_api(tmp_path_factory.mktemp("ui-api")) as server:
        yield server
