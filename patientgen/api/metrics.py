"""Prometheus metrics: request latency (observed here), job counts and job figures (from the store).

Job figures come from the job store at scrape time, so they are right whichever process (embedded
or separate worker) ran the jobs: jobs by status from `JobService.counts()`, and job durations and
patients generated over the most recent completed jobs (at most `RECENT_JOBS`). Store results are
cached for a few seconds so that scrapes stay cheap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

RECENT_JOBS = 2000
CACHE_SECONDS = 5.0
DURATION_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))
STATUSES = ("pending", "running", "completed", "failed", "cancelled")


def _status_name(value: Any) -> str:
    return str(getattr(value, "value", value))


class JobCollector(Collector):
    def __init__(self, get_service: Callable[[], Any]) -> None:
        self.get_service = get_service
        self._lock = threading.Lock()
        self._cached_at = 0.0
        self._cached: tuple[dict[str, int], list[float], int, int] | None = None

    def _gather(self) -> tuple[dict[str, int], list[float], int, int]:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached_at < CACHE_SECONDS:
                return self._cached
            service = self.get_service()
            counts = {_status_name(k): int(v) for k, v in service.counts().items()}
            durations: list[float] = []
            patients = 0
            seen = 0
            cursor = None
            while seen < RECENT_JOBS:
                page = service.list(owner=None, statuses=["completed"], limit=200, cursor=cursor)
                for job in page.items:
                    seen += 1
                    if job.started_at and job.completed_at:
                        durations.append((job.completed_at - job.started_at).total_seconds())
                    scenario = (job.config or {}).get("scenario") or {}
                    patients += int(scenario.get("total_patients") or 0)
                cursor = page.next_cursor
                if not cursor or not page.items:
                    break
            self._cached = (counts, durations, patients, seen)
            self._cached_at = now
            return self._cached

    def collect(self) -> Iterator[Any]:
        try:
            counts, durations, patients, seen = self._gather()
        except Exception:
            up = GaugeMetricFamily("patientgen_store_up", "1 if the job store answered the scrape")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("patientgen_store_up", "1 if the job store answered the scrape")
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily(
            "patientgen_jobs", "Jobs in the store by status", labels=["status"]
        )
        for status in STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        buckets = []
        for bound in DURATION_BUCKETS:
            label = "+Inf" if bound == float("inf") else str(bound)
            buckets.append((label, sum(1 for d in durations if d <= bound)))
        hist = HistogramMetricFamily(
            "patientgen_job_duration_seconds",
            f"Run time (start to completion) of the latest completed jobs (up to {RECENT_JOBS})",
            buckets=buckets,
            sum_value=sum(durations),
        )
        yield hist
        generated = CounterMetricFamily(
            "patientgen_patients_generated",
            f"Patients in the most recent completed jobs (up to {RECENT_JOBS})",
        )
        generated.add_metric([], patients)
        yield generated
        recent = GaugeMetricFamily(
            "patientgen_completed_jobs_sampled", "Completed jobs the figures above cover"
        )
        recent.add_metric([], seen)
        yield recent


class Metrics:
    """One registry per app, so several apps (tests) never collide on the global registry."""

    def __init__(self, get_service: Callable[[], Any]) -> None:
        self.registry = CollectorRegistry()
        self.request_latency = Histogram(
            "patientgen_http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.registry.register(JobCollector(get_service))

    def render(self) -> bytes:
        return generate_latest(self.registry)
