"""Flywheel settings: where data lives, which broker, the base model, the recipe and the gate.

Built once at the entry point (CLI, worker) from keyword arguments, then `FLYWHEEL_*` environment
variables, then defaults, and passed to every step as a JSON-safe dict (Celery payloads carry it,
so a worker needs no global configuration to run a task).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.core.data_dir import DataDir
from app.demo.recipe import DEMO_MODEL_DIR


def default_recipe() -> dict:
    """Fine-tuning recipe of one iteration: LoRA SFT on the snapshot plus replay of the domain.

    LoRA (merged on export) and a replay of the domain keep the original domain within the gate
    while the corrections are learned (see benchmarks/flywheel.py). feedback_repeat 12 (was 8):
    with four skills taught in a row on the demo model, 8 left held-out phrasings of earlier
    skills at 63-78% and routed to the newest skill's answers, so accuracy swung by more than 10%
    from one iteration to the next; the snapshot holds every earlier correction, so repeats
    rehearse the earlier skills too. rehearsal_repeat 4: a correction that already taught the
    base version is rehearsed 4 times, not 12, so an iteration's training time grows with what is
    new rather than with everything taught so far.
    """
    return {"stages": ["sft"], "learning_rate": 3e-3, "num_epochs": 2, "micro_batch_size": 16,
            "feedback_repeat": 12,  # feedback examples count this many times against the replay
            "rehearsal_repeat": 4,  # ... and those that already taught the base version this many
            "warmup_steps": 5, "min_lr_ratio": 0.1, "weight_decay": 0.0, "lora_rank": 16,
            "lora_alpha": 32.0, "beta": 0.1, "seed": 0, "replay_conversations": 1024,
            "eval_fraction": 0.25}  # prompts (whole groups) held out to measure the skill


@dataclass(slots=True)
class FlywheelSettings:
    data_dir: Path | None = None  # None: FLYWHEEL_DATA_DIR or ./data; resolved (app.core.data_dir)
    database_url: str | None = None  # None: FLYWHEEL_DATABASE_URL or SQLite under data_dir
    broker_url: str | None = None  # None: FLYWHEEL_BROKER_URL or the embedded SQLite broker
    result_backend: str | None = None  # None: FLYWHEEL_RESULT_BACKEND or SQLite under data_dir
    base_model_dir: str = field(default_factory=lambda: os.environ.get(
        "FLYWHEEL_BASE_MODEL", str(DEMO_MODEL_DIR)))
    min_new_feedback: int = 20  # the nightly beat iterates only after this many new items
    eval_cases_per_family: int = 40  # the demo domain's regression suite, when the base is the demo
    max_regression_points: float = 2.0
    # Held-out loss is a sanity check only: it rejects a rise of more than max(50%, this many nats
    # per token) — a broken model — never the small rise that learning a few new facts causes.
    max_loss_rise_nats: float = 0.5
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
        data = DataDir.at(self.data_dir, self.database_url)  # the server derives it the same way
        self.data_dir, self.database_url = data.root, data.database_url
        self.broker_url = (self.broker_url or os.environ.get("FLYWHEEL_BROKER_URL")
                           or data.default_broker_url)
        self.result_backend = (self.result_backend or os.environ.get("FLYWHEEL_RESULT_BACKEND")
                               or data.default_result_backend)
        if self.min_new_feedback < 1 or self.max_regression_points < 0:
            raise ValueError("min_new_feedback must be >= 1 and max_regression_points >= 0")
        if not 0 <= self.canary_soak_s <= 7 * 24 * 3600:
            raise ValueError(f"canary_soak_s must be between 0 and one week, got {self.canary_soak_s}")
        self.recipe = {**default_recipe(), **self.recipe}

    @property
    def data(self) -> DataDir:
        return DataDir(self.data_dir, self.database_url)

    @property
    def registry_dir(self) -> Path:
        return self.data.registry_dir

    @property
    def models_dir(self) -> Path:
        return self.data.models_dir

    @property
    def runs_dir(self) -> Path:
        return self.data.runs_dir

    @classmethod
    def for_data_dir(cls, data: DataDir, **overrides) -> "FlywheelSettings":
        """The flywheel's settings on the server's data dir (the server queues iterations)."""
        return cls(data_dir=data.root, database_url=data.database_url, **overrides)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["data_dir"] = str(self.data_dir)
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "FlywheelSettings":
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
