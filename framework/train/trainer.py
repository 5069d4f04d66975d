"""The training loop, in nanoGPT's reading order: setup -> loop -> result.

One optimizer step consumes a *global batch* of `micro_batch_size * grad_accum_steps * world_size`
examples. Each micro-batch is packed into one sequence (see `packing`), its loss is a sum divided
by the global batch's count, and gradients are summed across ranks — so any split of the same
global batch over accumulation steps and processes yields the same update.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from framework.train import losses
from framework.train.config import TrainConfig
from framework.train.data import KTOExample, PreferenceExample, SFTExample, completion_sequence, pack
from framework.train.distributed import DistContext
from framework.lora.adapter import LoRAWeights
from framework.train.lora import apply_lora, lora_weights, merge_lora

logger = logging.getLogger(__name__)

Example = SFTExample | PreferenceExample | KTOExample
_EXPECTED = {"sft": SFTExample, "dpo": PreferenceExample, "kto": KTOExample}


@dataclass(slots=True)
class TrainResult:
    step_losses: list[float] = field(default_factory=list)
    step_metrics: list[dict] = field(default_factory=list)  # DPO margin/accuracy, KTO reward
    num_tokens: int = 0  # tokens processed by this rank
    seconds: float = 0.0
    # LoRA runs: the trained adapter as it was before merging (framework.lora.save_lora_adapter
    # writes it in PEFT's layout; served with enable_lora it answers like the merged model)
    lora: LoRAWeights | None = None

    @property
    def num_steps(self) -> int:
        return len(self.step_losses)

    @property
    def tokens_per_s(self) -> float:
        return self.num_tokens / self.seconds if self.seconds > 0 else 0.0


def train(model: nn.Module, examples: list[Example], config: TrainConfig,
          dist: DistContext | None = None) -> TrainResult:
    """Fine-tune `model` in place on `examples`; LoRA adapters (if any) are merged at the end."""
    dist = dist or DistContext.from_process_group()
    _check_examples(examples, config)
    torch.manual_seed(config.seed)
    dist.broadcast_parameters(model)
    if config.lora_rank:
        apply_lora(model, config.lora_rank, config.lora_alpha, config.lora_targets)
    ref_logps = _reference_logps(model, examples, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = _plan_steps(len(examples), config, dist)
    result = _loop(model, examples, ref_logps, steps, optimizer, params, config, dist)
    if config.lora_rank:
        result.lora = lora_weights(model)
        merge_lora(model)
    return result


def _check_examples(examples: list, config: TrainConfig) -> None:
    if not examples:
        raise ValueError("no training examples")
    wanted = _EXPECTED[config.objective]
    bad = next((e for e in examples if not isinstance(e, wanted)), None)
    if bad is not None:
        raise ValueError(f"objective {config.objective!r} needs {wanted.__name__} examples, "
                         f"got {type(bad).__name__}")


def _plan_steps(num_examples: int, config: TrainConfig, dist: DistContext) -> list[list[int]]:
    """Example indices of each optimizer step's global batch, reshuffled every epoch."""
    global_batch = config.micro_batch_size * config.grad_accum_steps * dist.world_size
    steps_per_epoch = math.ceil(num_examples / global_batch)
    total = config.max_steps or steps_per_epoch * config.num_epochs
    generator = torch.Generator().manual_seed(config.seed)
    steps: list[list[int]] = []
    while len(steps) < total:
        order = torch.randperm(num_examples, generator=generator).tolist()
        for start in range(0, num_examples, global_batch):
            steps.append(order[start:start + global_batch])
            if len(steps) == total:
                break
    return steps


def _micro_batches(step: list[int], config: TrainConfig, dist: DistContext) -> list[list[int]]:
    """This rank's micro-batches of one step: window w of the global batch, sharded over ranks."""
    window = config.micro_batch_size * dist.world_size
    out = []
    for start in range(0, len(step), window):
        mine = dist.shard(step[start:start + window])
        if mine:
            out.append(mine)
    return out


def _sequences(example: Example) -> list[SFTExample]:
    if isinstance(example, SFTExample):
        return [example]
    if isinstance(example, PreferenceExample):
        return [completion_sequence(example.prompt_ids, example.chosen_ids),
                completion_sequence(example.prompt_ids, example.rejected_ids)]
    return [completion_sequence(example.prompt_ids, example.completion_ids)]


def _sequence_logps(model: nn.Module, batch_examples: list[Example], config: TrainConfig):
    """(packed batch, token logps (T,), per-sequence logps (S,)) for a list of examples."""
    batch = pack([seq for ex in batch_examples for seq in _sequences(ex)])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
        token_logp = losses.token_logps(model, batch)
    return batch, token_logp, losses.sequence_logps(token_logp, batch)


@torch.no_grad()
def _reference_logps(model: nn.Module, examples: list[Example], config: TrainConfig):
    """Sequence log-probs under the starting model (the DPO/KTO reference); None for SFT."""
    if config.objective == "sft":
        return None
    out = []
    for start in range(0, len(examples), config.micro_batch_size):
        _, _, seq = _sequence_logps(model, examples[start:start + config.micro_batch_size], config)
        out.append(seq.float())
    return torch.cat(out)  # (S,) in example order, 2 per pair for DPO


def _ref_rows(ref_logps: torch.Tensor, indices: list[int], per_example: int) -> torch.Tensor:
    rows = [ref_logps[i * per_example + j] for i in indices for j in range(per_example)]
    return torch.stack(rows)


def _learning_rate(step: int, total: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    floor = config.min_lr_ratio
    return config.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def _loop(model, examples, ref_logps, steps, optimizer, params, config, dist) -> TrainResult:
    from tqdm import tqdm

    model.train()
    result = TrainResult()
    kl_estimate = 0.0
    bar = tqdm(total=len(steps), desc=f"train {config.objective}", unit="step",
               disable=not (config.progress and dist.is_main))
    started = time.perf_counter()
    for step_index, step in enumerate(steps):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step_index, len(steps), config)
        loss, metrics, tokens = _accumulate(model, examples, ref_logps, step, kl_estimate, config,
                                            dist)
        dist.sum_gradients(model)
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        kl_estimate = metrics.get("mean_reward", 0.0)
        result.num_tokens += tokens
        result.step_losses.append(dist.sum_scalar(loss))
        result.step_metrics.append(metrics)
        result.seconds = time.perf_counter() - started
        bar.update(1)
        bar.set_postfix(loss=f"{result.step_losses[-1]:.4f}",
                        tok_s=f"{result.tokens_per_s * dist.world_size:.0f}")
    bar.close()
    logger.info("trained %d steps in %.1fs (%.0f tokens/s on rank %d)", result.num_steps,
                result.seconds, result.tokens_per_s, dist.rank)
    return result


def _accumulate(model, examples, ref_logps, step, kl_estimate, config, dist):
    """Forward+backward over this rank's share of one global batch. Returns (loss, metrics, tokens)."""
    items = [examples[i] for i in step]
    if config.objective == "sft":
        denominator = sum(sum(ex.loss_mask[1:]) for ex in items)  # known to every rank
    else:
        denominator = len(items)
    denominator = max(denominator, 1)
    loss_total, tokens = 0.0, 0
    rewards_sum, margins_sum, correct = 0.0, 0.0, 0.0
    for micro in _micro_batches(step, config, dist):
        batch_examples = [examples[i] for i in micro]
        batch, token_logp, seq_logp = _sequence_logps(model, batch_examples, config)
        if config.objective == "sft":
            loss = losses.sft_loss_sum(token_logp, batch)
        elif config.objective == "dpo":
            policy = seq_logp.view(-1, 2)
            ref = _ref_rows(ref_logps, micro, 2).view(-1, 2)
            loss = losses.dpo_losses(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1],
                                     config.beta).sum()
            margin = ((policy[:, 0] - ref[:, 0]) - (policy[:, 1] - ref[:, 1])).detach()
            margins_sum += float(margin.sum())
            correct += float((margin > 0).sum())
        else:
            ref = _ref_rows(ref_logps, micro, 1)
            desirable = torch.tensor([examples[i].desirable for i in micro])
            weights = torch.tensor([examples[i].weight for i in micro], dtype=seq_logp.dtype)
            loss = (losses.kto_losses(seq_logp, ref, desirable, kl_estimate, config.beta,
                                      config.kto_desirable_weight,
                                      config.kto_undesirable_weight) * weights).sum()
            rewards_sum += float((seq_logp - ref).detach().sum())
        (loss / denominator).backward()
        loss_total += float(loss.detach()) / denominator
        tokens += batch.num_tokens
    return loss_total, _step_metrics(config, dist, denominator, rewards_sum, margins_sum,
                                     correct), tokens


def _step_metrics(config, dist, count, rewards_sum, margins_sum, correct) -> dict:
    if config.objective == "dpo":
        return {"reward_margin": dist.sum_scalar(margins_sum) / count,
                "reward_accuracy": dist.sum_scalar(correct) / count}
    if config.objective == "kto":
        # Next step's KL reference point z0: this step's mean implied reward over all ranks.
        return {"mean_reward": dist.sum_scalar(rewards_sum) / count}
    return {}
