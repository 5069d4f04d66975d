"""A version whose weights are not the registered ones is never served: the watcher checks the
content hash the registry recorded before loading (another machine, a shared model root)."""
from __future__ import annotations

import asyncio
import shutil

from app.core.registry import open_registry
from app.serving.model_host import ModelHost, ServedModel
from app.serving.registry_watcher import RegistryWatcher, version_to_serve
from model.artifacts import content_hash
from model.registry import BASE_VERSION_ID


def _model_dir(path, fill: bytes):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(fill * 4096)
    return path


def _served(version_id: str, model_dir) -> ServedModel:
    return ServedModel(id=version_id, engine=None, tokenizer=None, max_model_len=16,
                       model_dir=str(model_dir))


def test_the_watcher_loads_a_version_only_with_the_registered_weights(tmp_path):
    base = _model_dir(tmp_path / "models" / "base", b"\x00")
    good = _model_dir(tmp_path / "models" / "good", b"\x01")
    bad = _model_dir(tmp_path / "models" / "bad", b"\x02")
    registry = open_registry(tmp_path / "registry", f"sqlite:///{tmp_path / 'flywheel.db'}")
    registry.ensure_production(base)
    recorded = content_hash(bad)
    registry.register("bad", bad, parent_id=BASE_VERSION_ID, version_id="mv-bad",
                      content_hash=recorded)
    (bad / "model.safetensors").write_bytes(b"\x03" * 4096)  # overwritten after registration
    registry.register("good", good, parent_id=BASE_VERSION_ID, version_id="mv-good",
                      content_hash=content_hash(good))
    loaded: list[str] = []

    def load_version(path, version_id, _current):
        loaded.append(version_id)
        return _served(version_id, path)

    from app.serving.rollout import Rollout

    host = ModelHost()
    host.add(_served(BASE_VERSION_ID, base))
    rollout = Rollout("public", BASE_VERSION_ID)
    watcher = RegistryWatcher(registry, rollout, host, load_version, poll_s=0.01)

    async def scenario():
        registry.start_canary("mv-bad")
        assert await watcher.check()
        assert loaded == [] and rollout.canary_id is None  # refused, base still serves alone
        registry.start_canary("mv-good")
        assert await watcher.check()
        assert loaded == ["mv-good"] and rollout.canary_id == "mv-good"
        assert not await watcher.check()  # nothing changed since: no reload

    asyncio.run(scenario())


def test_a_starting_server_refuses_production_weights_that_changed(tmp_path):
    base = _model_dir(tmp_path / "models" / "base", b"\x00")
    v2 = _model_dir(tmp_path / "models" / "v2", b"\x01")
    registry = open_registry(tmp_path / "registry", f"sqlite:///{tmp_path / 'flywheel.db'}")
    registry.ensure_production(base)
    registry.register("v2", v2, parent_id=BASE_VERSION_ID, version_id="mv-v2",
                      content_hash=content_hash(v2))
    registry.promote("mv-v2")
    assert version_to_serve(registry, base, "public").id == "mv-v2"
    shutil.copy(base / "model.safetensors", v2 / "model.safetensors")  # a different model there
    assert version_to_serve(registry, base, "public") is None  # serves the model dir instead
