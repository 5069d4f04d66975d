"""What travels between the front process and a replica (pickled by Ray)."""
from __future__ import annotations

from dataclasses import dataclass, field

from shared import EngineStats, LoRARequest, RequestOutput, SamplingParams


@dataclass(slots=True)
class ReplicaRequest:
    prompt_token_ids: list[int]  # the router hashes their full blocks for prefix affinity
    params: SamplingParams
    request_id: str
    priority: int = 0  # lower is admitted first, as on one engine
    lora_request: LoRARequest | None = None  # an adapter (its path readable on every node)


@dataclass(slots=True)
class ReplicaStats:
    replica_id: str  # Ray Serve's unique id of the replica (a restarted replica gets a new one)
    actor_name: str  # its Ray actor (namespace "serve"), for ray.get_actor / ray.kill
    node_id: str  # the Ray node it runs on
    engine: EngineStats = field(default_factory=EngineStats)
    num_requests: int = 0  # requests this replica has started since it came up


@dataclass(slots=True)
class ReplicaOutput:
    output: RequestOutput  # cumulative, as the engine reports it
    replica_id: str  # which replica answers (every item: the front counts in-flight per replica)
    stats: ReplicaStats | None = None  # the replica's stats, on the request's last item only
