"""Prometheus metrics: request counts and latencies, analyses, job progress, model version.

Each app has its own registry (tests build many apps in one process). Job progress and the model
version are read when `/metrics` is scraped, so they are true across processes and restarts.
"""

import time

from flask import Flask, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from sqlalchemy import func, select

from app.extensions import db


class Metrics:
    """The service's collectors, bound to one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "selah_http_requests_total", "HTTP requests", ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "selah_http_request_duration_seconds", "HTTP request latency", ["method", "endpoint"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.analyses = Counter(
            "selah_analyses_total", "Songs analysed, by outcome and source (model or cache)",
            ["outcome", "source"], registry=self.registry,
        )
        self.analysis_seconds = Histogram(
            "selah_analysis_duration_seconds", "Model time per analysed song",
            registry=self.registry, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30),
        )

    def render(self) -> bytes:
        """The text exposition format of every collector."""
        return generate_latest(self.registry)


class _StateCollector:
    """Reads job progress and the model version at scrape time."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        from app.models import AnalysisRecord, Job

        with self.app.app_context():
            store = self.app.extensions["selah.model_store"]
            info = InfoMetricFamily("selah_model", "The serving analyzer")
            info.add_metric([], {
                "backend": store.backend_cls.backend,
                "version": store.model_version or "",
                "runtime": store.runtime or "",
                "status": store.status,
            })
            yield info
            jobs = GaugeMetricFamily("selah_jobs", "Jobs by status", labels=["status"])
            items = GaugeMetricFamily(
                "selah_job_songs", "Songs of jobs by status", labels=["status"]
            )
            try:
                job_rows = db.session.execute(
                    select(Job.status, func.count()).group_by(Job.status)
                ).all()
                item_rows = db.session.execute(
                    select(AnalysisRecord.status, func.count())
                    .where(AnalysisRecord.job_id.is_not(None))
                    .group_by(AnalysisRecord.status)
                ).all()
            finally:
                db.session.remove()
            for status, count in job_rows:
                jobs.add_metric([status], count)
            for status, count in item_rows:
                items.add_metric([status], count)
            yield jobs
            yield items


def init_metrics(app: Flask) -> Metrics:
    """Attach the metrics and the request hooks to `app`."""
    metrics = Metrics()
    metrics.registry.register(_StateCollector(app))
    app.extensions["selah.metrics"] = metrics

    @app.before_request
    def _start_timer():
        g.selah_started = time.perf_counter()

    @app.after_request
    def _count(response):
        endpoint = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        started = g.get("selah_started")
        metrics.requests.labels(request.method, endpoint, str(response.status_code)).inc()
        if started is not None:
            elapsed = time.perf_counter() - started
            metrics.latency.labels(request.method, endpoint).observe(elapsed)
        return response

    return metrics
