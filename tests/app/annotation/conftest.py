"""A real API server per test module (no model: chats are written into its store), with users of
every role logged in, and three chats: two by alice (one answer regenerated, one thumbed down)
and one by the annotator ann1."""
from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from app.api.main import create_app
from app.core.config import Settings
from app.serving.model_host import ModelHost
from app.store.crud_chat import ExchangeRecord, MessageRecord, record_exchange
from app.store.crud_users import get_user_by_username
from tests.app.api.conftest import ServerThread

ADMIN_KEY = "sk-annotation-admin-0123456789"
PASSWORD = "correct horse battery"
USERS = {"alice": "user", "ann1": "annotator", "ann2": "annotator", "ann3": "annotator", "boss": "admin"}


@dataclass(frozen=True, slots=True)
class AnnotationServer:
    url: str
    tokens: dict[str, str]  # username -> login session token
    clients: dict[str, httpx.Client]  # username -> client sending that token

    def __getitem__(self, username: str) -> httpx.Client:
        return self.clients[username]


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _chat(store, username: str, conversation_id: str, prefix: str, question: str, answers: list[str]) -> None:
    with store.transaction() as session:
        user_id = get_user_by_username(session, username=username).id
        records = [MessageRecord(f"{prefix}u", "user", question, None)]
        records += [MessageRecord(f"{prefix}{i}", "assistant", text, f"{prefix}u", model_version="mv-1")
                    for i, text in enumerate(answers)]
        record_exchange(session, exchange=ExchangeRecord(conversation_id, user_id, True, "t", "mv-1", records))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("annotation"), api_keys=[ADMIN_KEY])
    app = create_app(settings, host=ModelHost())
    with ServerThread(app) as url:
        for username, role in USERS.items():
            httpx.post(f"{url}/v1/users", headers=_auth(ADMIN_KEY),
                       json={"username": username, "password": PASSWORD, "role": role}).raise_for_status()
        tokens = {name: httpx.post(f"{url}/v1/auth/login", json={"username": name, "password": PASSWORD})
                  .json()["token"] for name in USERS}
        clients = {name: httpx.Client(base_url=url, timeout=30, headers=_auth(token))
                   for name, token in tokens.items()}
        store = app.state.flywheel.store
        _chat(store, "alice", "c1", "a", "What is 2 plus 3?", ["5", "six"])
        _chat(store, "alice", "c2", "s", "Tell a story", ["Once upon a time"])
        _chat(store, "ann1", "c3", "b", "What is 4 plus 4?", ["8", "eight"])
        clients["alice"].post("/v1/feedback", json={"message_id": "a0", "thumbs": "down"}).raise_for_status()
        yield AnnotationServer(url, tokens, clients)
        for client in clients.values():
            client.close()
