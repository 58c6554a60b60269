"""/metrics: request counts and latencies, analyses, job progress, model version."""

from prometheus_client.parser import text_string_to_metric_families

from tests.app.conftest import songs_job


def _samples(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_report_requests_model_and_jobs(app, client):
    client.get("/healthz")
    with app.app_context():
        app.extensions["selah.model_store"].get()
    samples = _samples(client)
    key = ("selah_http_requests_total",
           (("endpoint", "/healthz"), ("method", "GET"), ("status", "200")))
    assert samples[key] == 1.0
    assert any(name == "selah_http_request_duration_seconds_count" for name, _ in samples)
    model = [labels for name, labels in samples if name == "selah_model_info"]
    assert dict(model[0]) == {"backend": "fake", "version": "fake-1", "status": "ready"}


def test_metrics_count_analyses_by_source(app, client):
    from app.extensions import db
    from app.runners import job_service
    job_id = songs_job(app, 2)
    with app.app_context():
        service = job_service(app)
        while (record_id := service.claim_next("w")) is not None:
            service.run_record(record_id, "w")
        db.session.remove()
    samples = _samples(client)
    assert samples[("selah_analyses_total", (("outcome", "completed"), ("source", "model")))] >= 2
    assert samples[("selah_job_songs", (("status", "completed"),))] == 2
    assert samples[("selah_jobs", (("status", "completed"),))] == 1
    assert job_id == 1
