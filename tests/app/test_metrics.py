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
    assert dict(model[0]) == {"backend": "fake", "version": "fake-1", "runtime": "",
                              "status": "ready"}


def test_readyz_and_metrics_name_the_gptoss_runtime(make_app, int8_checkpoint):
    from selah.analyzers import GPTOSSChristianAnalyzer

    app = make_app(ANALYZER_CLASS=GPTOSSChristianAnalyzer, GPTOSS_MODEL_PATH=str(int8_checkpoint),
                   GPTOSS_DEVICE="cpu", GPTOSS_RUNTIME="float32")
    client = app.test_client()
    with app.app_context():
        app.extensions["selah.model_store"].get()
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["runtime"] == "float32"
    model = [dict(labels) for name, labels in _samples(client) if name == "selah_model_info"]
    assert model[0]["runtime"] == "float32" and model[0]["backend"] == "gptoss"


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
