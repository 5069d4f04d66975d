"""Flywheel settings: where data lives, which broker, the base model, the recipe and the gate.

Built once at the entry point (CLI, worker) from keyword arguments, then `FLYWHEEL_*` environment
variables, then defaults, and passed to every step as a JSON-safe dict (Celery payloads carry it,
so a worker needs no global configuration to run a task).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.demo.recipe import DEMO_MODEL_DIR


def default_recipe() -> dict:
    """Fine-tuning recipe of one iteration: LoRA SFT on the snapshot plus replay of the domain.

    LoRA (merged on export) and a replay set four times the up-weighted feedback keep the original
    domain within the gate while the corrections are learned (see benchmarks/flywheel.py).
    """
    return {"stages": ["sft"], "learning_rate": 3e-3, "num_epochs": 2, "micro_batch_size": 16,
            "feedback_repeat": 8,  # feedback examples count this many times against the replay
            "warmup_steps": 5, "min_lr_ratio": 0.1, "weight_decay": 0.0, "lora_rank": 16,
            "lora_alpha": 32.0, "beta": 0.1, "seed": 0, "replay_conversations": 1024,
            "eval_percent": 0}


@dataclass(slots=True)
class FlywheelSettings:
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("FLYWHEEL_DATA_DIR", "./data")))
    database_url: str | None = None  # None: FLYWHEEL_DATABASE_URL or SQLite under data_dir
    broker_url: str | None = None  # None: FLYWHEEL_BROKER_URL or the embedded SQLite broker
    result_backend: str | None = None  # None: FLYWHEEL_RESULT_BACKEND or SQLite under data_dir
    base_model_dir: str = field(default_factory=lambda: os.environ.get(
        "FLYWHEEL_BASE_MODEL", str(DEMO_MODEL_DIR)))
    min_new_feedback: int = 20  # the nightly beat iterates only after this many new items
    eval_suite: str = "demo"
    eval_cases_per_family: int = 40
    max_regression_points: float = 2.0
    max_loss_increase: float = 0.25  # relative; accuracy suites are the main guard
    canary_min_feedback: int = 20  # below this, promotion rests on the offline gate alone
    min_canary_thumbs_up_ratio: float = 0.9  # canary rate must be >= ratio * production rate
    # How long the canary serves its share of traffic before the verdict: the promote step waits
    # this long after the canary starts (0: decide at once, on the offline gate and any feedback).
    canary_soak_s: float = field(default_factory=lambda: float(os.environ.get(
        "FLYWHEEL_CANARY_SOAK_S", 0)))
    recipe: dict = field(default_factory=default_recipe)
    # Redis only: an unacked task is redelivered after this; a long fine-tune must not run twice.
    visibility_timeout_s: float = field(default_factory=lambda: float(os.environ.get(
        "FLYWHEEL_VISIBILITY_TIMEOUT_S", 6 * 3600)))
    # Workers re-enqueue runs whose worker died mid-step (app.flywheel.recovery).
    recover_orphaned_runs: bool = field(default_factory=lambda: os.environ.get(
        "FLYWHEEL_RECOVER_ORPHANED_RUNS", "1") not in ("0", "false", "no"))

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        if self.database_url is None:
            self.database_url = os.environ.get("FLYWHEEL_DATABASE_URL") or (
                f"sqlite:///{self.data_dir / 'flywheel.db'}")
        if self.broker_url is None:
            self.broker_url = os.environ.get("FLYWHEEL_BROKER_URL") or (
                f"sqla+sqlite:///{self.data_dir / 'broker.db'}")
        if self.result_backend is None:
            self.result_backend = os.environ.get("FLYWHEEL_RESULT_BACKEND") or (
                f"db+sqlite:///{self.data_dir / 'celery-results.db'}")
        if self.min_new_feedback < 1 or self.max_regression_points < 0:
            raise ValueError("min_new_feedback must be >= 1 and max_regression_points >= 0")
        if not 0 <= self.canary_soak_s <= 7 * 24 * 3600:
            raise ValueError(f"canary_soak_s must be between 0 and one week, got {self.canary_soak_s}")
        self.recipe = {**default_recipe(), **self.recipe}

    @property
    def registry_dir(self) -> Path:
        return self.data_dir / "registry"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["data_dir"] = str(self.data_dir)
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "FlywheelSettings":
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
