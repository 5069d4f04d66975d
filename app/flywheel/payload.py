"""What passes from one flywheel step to the next: a `RunPayload`, JSON-safe for Celery.

Each step returns a copy of its input with its own part filled in, so a run can be resumed from
any step with that step's input (`app.flywheel.recovery` stores it). Celery carries payloads as
JSON: task wrappers call `to_dict` / `from_dict` at the boundary; steps only see the dataclasses.
This module knows nothing about how the steps compute their parts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from app.flywheel.runs import RunStatus
from app.flywheel.settings import FlywheelSettings


@dataclass(slots=True)
class SnapshotInfo:
    """The dataset snapshot built from the store's feedback (build_dataset)."""
    id: str  # DatasetSnapshot id in the store
    version: int  # snapshot number, increasing
    content_hash: str  # hash of the exported records: equal data, equal hash
    counts: dict[str, int]  # records per format ("sft", "dpo", "kto")


@dataclass(slots=True)
class Candidate:
    """The fine-tuned model (finetune)."""
    key: str  # training key: hash of (snapshot hash, base version, recipe); names the directory
    path: str  # Hugging Face model directory of the candidate
    train: dict  # the trainer's summary (stages, steps, losses)


@dataclass(slots=True)
class GateResult:
    """The offline gate's decision on the candidate's metrics against the base's (canary)."""
    passed: bool
    reasons: list[str]  # one line per check, shown in the version's history


@dataclass(slots=True)
class CanaryVerdict:
    """Live feedback on the canary against production (promote)."""
    healthy: bool  # promote when True, roll back otherwise
    canary_feedback: int  # thumbs the canary's answers received
    reason: str


_PARTS = {"snapshot": SnapshotInfo, "candidate": Candidate, "gate": GateResult,
          "canary": CanaryVerdict}


@dataclass(slots=True)
class RunPayload:
    settings: FlywheelSettings  # the run's settings, carried so a worker needs no global config
    run_id: str
    started_at: float  # epoch seconds the run was created
    base_version_id: str | None = None  # the production version the candidate starts from
    snapshot: SnapshotInfo | None = None
    skip: str | None = None  # why the rest of the run does nothing (e.g. no feedback yet)
    candidate: Candidate | None = None
    metrics: dict | None = None  # the gate report: base and candidate on the same items (evaluate)
    version_id: str | None = None  # the candidate's registry id (register)
    gate: GateResult | None = None
    canary_until: float | None = None  # epoch seconds the canary soak ends (kept on replay)
    canary: CanaryVerdict | None = None
    status: RunStatus | None = None  # set by the last step
    wall_s: float | None = None  # the whole run's wall time, set by the last step

    def to_dict(self) -> dict:
        """JSON-safe; parts not filled in yet are left out."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "settings":
                value = value.to_dict()
            elif f.name in _PARTS:
                value = dataclasses.asdict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> RunPayload:
        """The inverse of `to_dict`; unknown keys are an error (a payload from another version)."""
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown flywheel payload fields: {', '.join(sorted(unknown))}")
        values = dict(raw)
        values["settings"] = FlywheelSettings.from_dict(raw["settings"])
        for name, part in _PARTS.items():
            if values.get(name) is not None:
                values[name] = part(**values[name])
        if values.get("status") is not None:
            values["status"] = RunStatus(values["status"])
        return cls(**values)

    def replace(self, **changes) -> RunPayload:
        """A copy with `changes`: steps never mutate the payload they were given."""
        return dataclasses.replace(self, **changes)
