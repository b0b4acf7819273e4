"""What the loop reports (`Metrics`), and Prometheus metrics for it (prometheus_client: the
reference client, well kept); `NoMetrics` when none are served."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics(Protocol):
    def observe_run(self, seconds: float, result: str) -> None: ...
    def drift(self, kind: str, policy: str) -> None: ...
    def error(self, kind: str) -> None: ...
    def queue_depth(self, depth: int) -> None: ...


class NoMetrics:
    def observe_run(self, seconds: float, result: str) -> None:
        pass

    def drift(self, kind: str, policy: str) -> None:
        pass

    def error(self, kind: str) -> None:
        pass

    def queue_depth(self, depth: int) -> None:
        pass


class PrometheusMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._runs = Histogram(
            "recon_reconcile_duration_seconds",
            "Duration of one reconcile pass",
            ["result"],
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self._depth = Gauge(
            "recon_queue_depth", "Keys waiting in the work queue", registry=self.registry
        )
        self._drift = Counter(
            "recon_drift_events_total",
            "Drift found on the host",
            ["kind", "policy"],
            registry=self.registry,
        )
        self._errors = Counter(
            "recon_errors_total", "Errors by kind", ["kind"], registry=self.registry
        )

    def serve(self, address: str) -> None:
        """Serve on HOST:PORT ([::1]:PORT for IPv6; ":PORT" is 127.0.0.1). Raises ValueError
        for anything else, OSError when the address cannot be bound."""
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {address!r}")
        host = host.removeprefix("[").removesuffix("]")  # [::1]:9464
        start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)

    def observe_run(self, seconds: float, result: str) -> None:
        self._runs.labels(result=result).observe(seconds)

    def drift(self, kind: str, policy: str) -> None:
        self._drift.labels(kind=kind, policy=policy).inc()

    def error(self, kind: str) -> None:
        self._errors.labels(kind=kind).inc()

    def queue_depth(self, depth: int) -> None:
        self._depth.set(depth)
