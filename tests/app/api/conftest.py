"""A live uvicorn server on 127.0.0.1 (random free port, in a thread) serving the real engine on
the real tiny model stories260K, with its store in a temp SQLite file."""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from app.api.main import create_app
from app.core.config import Settings
from app.serving.loading import load_served_model
from app.serving.model_host import ModelHost, ServedModel
from shared import EngineConfig
from tests.shared_data import STORIES_HF

MODEL_DIR = STORIES_HF
MODEL_ID = "stories260K-hf"


@dataclass
class LiveServer:
    url: str
    app: object
    model: ServedModel
    settings: Settings

    @property
    def state(self):
        return self.app.state.flywheel


class ServerThread:
    """uvicorn in a daemon thread on a socket bound to a free port."""

    def __init__(self, app) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@contextlib.contextmanager
def demo_model_server(data_dir: Path, model_id: str, **engine) -> Iterator[str]:
    """The bundled demo model alone behind a live server (its URL), with its store in `data_dir`."""
    from app.demo.recipe import DEMO_MODEL_DIR

    host = ModelHost()
    host.add(load_served_model(DEMO_MODEL_DIR, EngineConfig(**engine), model_id=model_id))
    with ServerThread(create_app(Settings(data_dir=data_dir), host=host)) as url:
        yield url


def load_model(**engine_overrides) -> ServedModel:
    settings = {"num_kv_blocks": 2048, "max_num_seqs": 128, **engine_overrides}
    config = EngineConfig(**settings)
    return load_served_model(MODEL_DIR, config)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    model = load_model()
    host = ModelHost()
    host.add(model)
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    app = create_app(settings, host=host)
    with ServerThread(app) as url:
        yield LiveServer(url, app, model, settings)


@pytest.fixture(scope="session")
def client(live_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0,
                         timeout=120)


@pytest.fixture
def http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=120) as session:
        yield session
