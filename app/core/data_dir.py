"""The data directory the server, the worker and the CLI share, and where each part lives in it.

One place derives the layout, so `flywheel serve` and `flywheel worker` started on the same
directory always agree on the store (which holds the model registry and the run records):
- `flywheel.db`: the store (unless `$FLYWHEEL_DATABASE_URL` or an explicit URL points elsewhere)
- `registry/`: where a registry.json from before the registry moved into the store may lie
  (imported on first start: `app.core.registry`)
- `models/`: fine-tuned candidates, one directory per training key (or `$FLYWHEEL_MODEL_ROOT`)
- `runs/`: where flywheel run records from before they moved into the store may lie
  (imported on first open: `app.flywheel.runs`)
- `flywheel_trigger.json`, `lm_eval_tasks/`: the beat trigger's state and the registered
  lm-eval tasks from before they moved into the store (imported on first use:
  `app.flywheel.trigger`, `app.flywheel.lm_eval_tasks`)
- `cache/`: local copies of what the store holds (lm-eval task files for lm_eval to read)
- `broker.db`, `celery-results.db`: the embedded Celery broker and result backend
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DataDir:
    root: Path  # absolute
    database_url: str  # the store's SQLAlchemy URL

    @classmethod
    def at(cls, root: str | Path | None = None, database_url: str | None = None) -> DataDir:
        """`root` or `$FLYWHEEL_DATA_DIR` or `./data`, resolved; the store URL likewise from
        `database_url`, `$FLYWHEEL_DATABASE_URL` or SQLite under the root."""
        root = Path(root if root is not None else os.environ.get("FLYWHEEL_DATA_DIR", "./data"))
        root = root.resolve()
        url = database_url or os.environ.get("FLYWHEEL_DATABASE_URL") or (
            f"sqlite:///{root / 'flywheel.db'}")
        return cls(root=root, database_url=url)

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def models_dir(self) -> Path:
        """Fine-tuned candidates: `$FLYWHEEL_MODEL_ROOT` (a filesystem every machine mounts at
        the same path, in a multi-machine deployment) or `models/` under the data dir."""
        root = os.environ.get("FLYWHEEL_MODEL_ROOT")
        return Path(root).resolve() if root else self.root / "models"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def default_broker_url(self) -> str:
        return f"sqla+sqlite:///{self.root / 'broker.db'}"

    @property
    def default_result_backend(self) -> str:
        return f"db+sqlite:///{self.root / 'celery-results.db'}"
