"""The server's and the worker's settings derive the data dir's layout in one place (DataDir)."""
from __future__ import annotations

from app.core.config import Settings
from app.flywheel.settings import FlywheelSettings


def test_server_and_worker_agree_on_every_path_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", "rel/data")  # relative: resolved once, the same way
    monkeypatch.delenv("FLYWHEEL_DATABASE_URL", raising=False)
    server, worker = Settings(), FlywheelSettings()
    assert server.data == worker.data
    assert server.data_dir == worker.data_dir == tmp_path / "rel" / "data"
    assert server.database_url == worker.database_url == f"sqlite:///{tmp_path}/rel/data/flywheel.db"
    assert server.data.registry_dir == worker.registry_dir == tmp_path / "rel/data/registry"
    assert server.data.runs_dir == worker.runs_dir
    assert worker.broker_url == f"sqla+sqlite:///{tmp_path}/rel/data/broker.db"


def test_the_server_queues_iterations_with_its_own_store(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path / "elsewhere"))
    server = Settings(data_dir=tmp_path / "served", database_url="postgresql://db/flywheel")
    worker = FlywheelSettings.for_data_dir(server.data)
    assert worker.data == server.data and worker.database_url == "postgresql://db/flywheel"
    assert worker.registry_dir == tmp_path / "served" / "registry"


def test_fine_tuned_models_go_under_the_configured_model_root(tmp_path, monkeypatch):
    monkeypatch.delenv("FLYWHEEL_MODEL_ROOT", raising=False)
    worker = FlywheelSettings(data_dir=tmp_path / "data")
    assert worker.models_dir == tmp_path / "data" / "models"
    monkeypatch.setenv("FLYWHEEL_MODEL_ROOT", str(tmp_path / "shared" / "models"))
    assert worker.models_dir == Settings(data_dir=tmp_path / "data").data.models_dir
    assert worker.models_dir == tmp_path / "shared" / "models"
