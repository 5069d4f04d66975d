"""The registry in one JSON file under a directory: one machine (and model/-only use).

Each change is a read-modify-write under an exclusive file lock, written to a temporary file and
`os.replace`d, so readers never see a torn file and concurrent processes (API server, worker) on
the same machine never lose an update. A shared network filesystem does not make this safe across
machines (flock there is advisory at best): several machines use the database store.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from model.registry_types import ModelVersion

REGISTRY_FILE = "registry.json"


class JsonFileRegistryStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / REGISTRY_FILE

    def read(self) -> dict[str, ModelVersion]:
        return read_registry_file(self.path)

    def revision(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _write(self, versions: dict[str, ModelVersion]) -> None:
        data = {"versions": [v.to_dict() for v in versions.values()]}
        fd, tmp = tempfile.mkstemp(prefix=".registry.", dir=self.root)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, ModelVersion]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".registry.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                versions = self.read()
                yield versions
                self._write(versions)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def read_registry_file(path: Path) -> dict[str, ModelVersion]:
    """The versions in a registry.json ({} when there is none); ValueError when it is corrupt."""
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {item["id"]: ModelVersion(**item) for item in raw["versions"]}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: corrupt model registry ({e!r})") from e
