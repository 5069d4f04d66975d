"""Prometheus metrics, labelled by model version, on a registry owned by one app instance.

Latency histograms (TTFT, inter-token, end-to-end) and request counters are observed by the
routes; engine gauges and counters (running/waiting, KV usage, prefix-cache hit rate, prompt and
generation tokens, aborted, preempted) are read from each engine's `stats` at scrape time.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from app.api.replica_metrics import ReplicaCollector
from app.serving.model_host import ModelHost

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                      1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)


class ServingMetrics:
    def __init__(self, host: ModelHost) -> None:
        self.registry = CollectorRegistry()
        label = ["model_version"]
        self.ttft = Histogram("flywheel_time_to_first_token_seconds", "Time to first token",
                              label, buckets=_LATENCY_BUCKETS_S, registry=self.registry)
        self.inter_token = Histogram("flywheel_inter_token_latency_seconds",
                                     "Time between consecutive output tokens", label,
                                     buckets=_LATENCY_BUCKETS_S, registry=self.registry)
        self.e2e = Histogram("flywheel_e2e_request_latency_seconds", "Request latency",
                             label, buckets=_LATENCY_BUCKETS_S, registry=self.registry)
        self.requests = Counter("flywheel_requests", "Finished HTTP generation requests",
                                ["model_version", "endpoint", "finish_reason"], registry=self.registry)
        self.client_aborts = Counter("flywheel_client_disconnects",
                                     "Requests aborted because the client went away", label,
                                     registry=self.registry)
        self.registry.register(_EngineCollector(host))
        self.registry.register(ReplicaCollector(host))  # per replica under --replicas

    def observe_ttft(self, model_id: str, seconds: float) -> None:
        self.ttft.labels(model_id).observe(seconds)

    def observe_inter_token(self, model_id: str, seconds: float, num_tokens: int) -> None:
        per_token_s = seconds / max(num_tokens, 1)
        for _ in range(num_tokens):
            self.inter_token.labels(model_id).observe(per_token_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector:
    """Reads engine stats when Prometheus scrapes, so gauges are never stale."""

    def __init__(self, host: ModelHost) -> None:
        self._host = host

    def collect(self):
        gauges = {
            "num_requests_running": ("Requests in the running batch", lambda s: s.num_running),
            "num_requests_waiting": ("Requests waiting to be scheduled", lambda s: s.num_waiting),
            "kv_cache_usage_ratio": ("Fraction of KV-cache blocks in use", lambda s: s.kv_cache_usage),
            "prefix_cache_hit_rate": ("Prompt tokens found in the prefix cache / looked up",
                                      lambda s: s.prefix_cache_hit_rate),
        }
        counters = {
            "prompt_tokens": ("Prompt tokens processed", lambda s: s.num_prompt_tokens),
            "generation_tokens": ("Tokens generated", lambda s: s.num_generation_tokens),
            "requests_aborted": ("Requests aborted in the engine", lambda s: s.num_aborted),
            "requests_preempted": ("Preemptions (recompute)", lambda s: s.num_preemptions),
            "prefix_cache_queries": ("Prompt tokens looked up in the prefix cache",
                                     lambda s: s.num_prefix_cache_queries),
            "prefix_cache_hits": ("Prompt tokens found in the prefix cache",
                                  lambda s: s.num_prefix_cache_hits),
            # speculative decoding, vLLM's spec_decode_* names: acceptance = accepted / draft
            "spec_decode_num_drafts": ("Rows verified with draft tokens", lambda s: s.num_spec_drafts),
            "spec_decode_num_draft_tokens": ("Draft tokens proposed",
                                             lambda s: s.num_spec_draft_tokens),
            "spec_decode_num_accepted_tokens": ("Draft tokens accepted",
                                                lambda s: s.num_spec_accepted_tokens),
        }
        models = [(m.id, m.engine.stats) for m in self._host.ready()]
        for name, (doc, read) in gauges.items():
            family = GaugeMetricFamily(f"flywheel_{name}", doc, labels=["model_version"])
            for model_id, stats in models:
                family.add_metric([model_id], float(read(stats)))
            yield family
        for name, (doc, read) in counters.items():
            family = CounterMetricFamily(f"flywheel_{name}", doc, labels=["model_version"])
            for model_id, stats in models:
                family.add_metric([model_id], float(read(stats)))
            yield family
