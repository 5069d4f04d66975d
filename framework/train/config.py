"""One dataclass holding every knob of a training run (the recipe)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

OBJECTIVES = ("sft", "dpo", "kto")


@dataclass(slots=True)
class TrainConfig:
    objective: str = "sft"  # sft | dpo | kto
    learning_rate: float = 1e-3
    num_epochs: int = 1
    max_steps: int | None = None  # optimizer steps; overrides num_epochs when set
    micro_batch_size: int = 8  # sequences (or pairs) per forward, per process
    grad_accum_steps: int = 1
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # cosine decay floor, as a fraction of learning_rate
    max_grad_norm: float | None = 1.0
    seed: int = 0
    beta: float = 0.1  # DPO / KTO temperature
    kto_desirable_weight: float = 1.0
    kto_undesirable_weight: float = 1.0
    lora_rank: int = 0  # 0 = full fine-tuning
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj",
                                     "gate_proj", "up_proj", "down_proj")
    bf16: bool = False  # autocast matmuls to bfloat16 where the device supports it
    progress: bool = False  # tqdm bar with loss and tokens/s (rank 0 only)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for name in ("micro_batch_size", "grad_accum_steps", "num_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"TrainConfig.max_steps must be >= 1, got {self.max_steps}")
        if self.learning_rate <= 0 or self.beta <= 0:
            raise ValueError("learning_rate and beta must be positive")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0, got {self.lora_rank}")
        self.lora_targets = tuple(self.lora_targets)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["lora_targets"] = list(self.lora_targets)
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "TrainConfig":
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)
