"""Prometheus series per engine replica (`--replicas`), read at scrape time.

`flywheel_replica_*{model_version, replica}` for each version served by Ray Serve replicas; a
version on one in-process engine has none. The counters are as of each replica's last finished
request (its stats travel with the answer), in-flight is this front's open requests on it.
"""
from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from app.serving.model_host import ModelHost

_COUNTERS = {
    "requests": ("Requests started on the replica", lambda v: v.stats.num_requests),
    "prompt_tokens": ("Prompt tokens the replica processed",
                      lambda v: v.stats.engine.num_prompt_tokens),
    "generation_tokens": ("Tokens the replica generated",
                          lambda v: v.stats.engine.num_generation_tokens),
    "prefix_cache_queries": ("Prompt tokens looked up in the replica's prefix cache",
                             lambda v: v.stats.engine.num_prefix_cache_queries),
    "prefix_cache_hits": ("Prompt tokens found in the replica's prefix cache",
                          lambda v: v.stats.engine.num_prefix_cache_hits),
}


class ReplicaCollector:
    def __init__(self, host: ModelHost) -> None:
        self._host = host

    def collect(self):
        views = [(m.id, replica_id, view) for m in self._host.ready()
                 if hasattr(m.engine, "replica_views")
                 for replica_id, view in m.engine.replica_views().items()]
        labels = ["model_version", "replica"]
        in_flight = GaugeMetricFamily("flywheel_replica_requests_in_flight",
                                      "This front's requests the replica is answering",
                                      labels=labels)
        for model_id, replica_id, view in views:
            in_flight.add_metric([model_id, replica_id], float(view.num_in_flight))
        yield in_flight
        for name, (doc, read) in _COUNTERS.items():
            family = CounterMetricFamily(f"flywheel_replica_{name}", doc, labels=labels)
            for model_id, replica_id, view in views:
                family.add_metric([model_id, replica_id], float(read(view)))
            yield family
