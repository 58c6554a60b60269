"""Hot reload: the watcher, SIGHUP and the reload route swap checkpoints under live requests; a
broken checkpoint is refused and the serving one stays."""

import os
import signal
import threading
import time

import pytest

from app import start_background
from selah.analyzers import GPTOSSChristianAnalyzer
from selah.analyzers.store import ModelStore, ModelWatcher, install_sighup_reload
from tests.checkpoints import copy_checkpoint, corrupt
from tests.fake_analyzer import FakeAnalyzer

LYRICS = "When the morning breaks I lift my eyes\nYour mercy new with every sunrise"


def _wait(predicate, timeout: float = 30.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


class _Disk(FakeAnalyzer):
    """A fake whose 'checkpoint on disk' is a class attribute: version, or broken."""

    disk = {"version": "v1", "broken": False}

    @classmethod
    def fingerprint(cls, config):
        return repr(sorted(cls.disk.items()))

    @classmethod
    def from_config(cls, config):
        if cls.disk["broken"]:
            raise RuntimeError("checkpoint /x: model.safetensors SHA-256 does not match")
        return cls(version=cls.disk["version"])


def test_reload_if_changed_follows_the_fingerprint():
    _Disk.disk = {"version": "v1", "broken": False}
    store = ModelStore(_Disk, {})
    assert store.reload_if_changed() is None  # nothing loaded yet: the first use loads
    store.get()
    assert store.reload_if_changed() is None  # unchanged
    _Disk.disk = {"version": "v2", "broken": False}
    assert store.reload_if_changed() == (True, "loaded v2")
    _Disk.disk = {"version": "v3", "broken": True}
    ok, message = store.reload_if_changed()
    assert not ok and "SHA-256" in message and store.model_version == "v2"
    assert store.reload_if_changed() is None  # a refused checkpoint is not retried until it changes
    _Disk.disk = {"version": "v4", "broken": False}
    assert store.reload_if_changed() == (True, "loaded v4")


def test_the_watcher_survives_a_failing_check(caplog):
    class Flaky(_Disk):
        gone = False

        @classmethod
        def fingerprint(cls, config):
            if cls.gone:
                raise OSError("disk went away")
            return "same"

    _Disk.disk = {"version": "v1", "broken": False}
    store = ModelStore(Flaky, {})
    store.get()
    Flaky.gone = True
    watcher = ModelWatcher(store, 0.01).start()
    _wait(lambda: "checking for a new model failed" in caplog.text, 5, "the logged failure")
    watcher.stop()
    assert store.status == "ready"


class _Traffic:
    """Threads posting POST /api/analyze through their own test clients until stopped."""

    def __init__(self, app, threads: int = 4):
        self.app, self.responses, self._stop = app, [], threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, index: int) -> None:
        client, n = self.app.test_client(), 0
        while not self._stop.is_set():
            n += 1
            response = client.post("/api/analyze", json={
                "title": f"Song {index}", "artist": "Band", "lyrics": f"{LYRICS} {index} {n}"})
            body = response.get_json()
            with self._lock:
                self.responses.append((response.status_code, body.get("error_message"),
                                       body.get("configuration_snapshot", {}).get("model_version")))

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def served_since(self, mark: int) -> int:
        return len(self.responses) - mark


@pytest.fixture
def serving(make_app, int8_checkpoint, tmp_path):
    """An app serving a copy of checkpoint v1 from GPTOSS_MODEL_PATH, watched every 50 ms."""
    path = copy_checkpoint(int8_checkpoint, tmp_path / "model")
    app = make_app(ANALYZER_CLASS=GPTOSSChristianAnalyzer, GPTOSS_MODEL_PATH=str(path),
                   GPTOSS_DEVICE="cpu", RESULT_CACHE_SIZE=0, MODEL_WATCH_SECONDS=0.05)
    previous = signal.getsignal(signal.SIGHUP)
    start_background(app)
    store = app.extensions["selah.model_store"]
    store.get()
    yield app, store, path
    app.extensions["selah.model_watcher"].stop()
    signal.signal(signal.SIGHUP, previous)


def test_watcher_swaps_checkpoints_under_load_and_refuses_a_broken_one(
        serving, int8_checkpoint_v2):
    app, store, path = serving
    v1 = store.model_version
    with _Traffic(app) as traffic:
        _wait(lambda: traffic.served_since(0) >= 8, what="requests on v1")
        copy_checkpoint(int8_checkpoint_v2, path)
        _wait(lambda: store.model_version != v1, what="the watcher to swap in v2")
        v2 = store.model_version
        mark = len(traffic.responses)
        _wait(lambda: traffic.served_since(mark) >= 8, what="requests on v2")

        corrupt(path / "model.safetensors")  # v3: same manifest, damaged weights
        _wait(lambda: store.error is not None, what="the watcher to refuse v3")
        mark = len(traffic.responses)
        _wait(lambda: traffic.served_since(mark) >= 8, what="requests after the refusal")
    assert "model.safetensors: SHA-256 does not match" in store.error
    assert store.status == "ready" and store.model_version == v2
    assert [r for r in traffic.responses if r[0] != 200 or r[1] is not None] == []
    versions = [version for _, _, version in traffic.responses]
    assert {v1, v2} <= set(versions) and versions[-1] == v2
    assert v2 == "gptoss-" + __import__("hashlib").sha256(
        (int8_checkpoint_v2 / "manifest.json").read_bytes()).hexdigest()[:12]


def test_reload_route_and_sighup_swap_under_load(serving, int8_checkpoint,
                                                 int8_checkpoint_v2, admin_headers):
    app, store, path = serving
    app.extensions["selah.model_watcher"].stop()  # only the route and the signal here
    v1 = store.model_version
    client = app.test_client()
    with _Traffic(app) as traffic:
        copy_checkpoint(int8_checkpoint_v2, path)
        response = client.post("/api/admin/model/reload", headers=admin_headers)
        assert response.status_code == 200
        v2 = response.get_json()["model_version"]
        assert v2 != v1 and store.model_version == v2

        copy_checkpoint(int8_checkpoint, path)
        os.kill(os.getpid(), signal.SIGHUP)
        _wait(lambda: store.model_version == v1, what="the SIGHUP reload")

        (path / "tokenizer.json").unlink()
        response = client.post("/api/admin/model/reload", headers=admin_headers)
        assert response.status_code == 409
        assert "tokenizer.json is missing" in response.get_json()["error"]["message"]
        mark = len(traffic.responses)
        _wait(lambda: traffic.served_since(mark) >= 4, what="requests after the refusal")
    assert store.model_version == v1
    assert [r for r in traffic.responses if r[0] != 200 or r[1] is not None] == []
    assert {v1, v2} <= {version for _, _, version in traffic.responses}


def test_sighup_is_only_installed_from_the_main_thread():
    store = ModelStore(FakeAnalyzer, {})
    installed = []
    thread = threading.Thread(target=lambda: installed.append(install_sighup_reload(store)))
    thread.start()
    thread.join()
    assert installed == [False]


def test_no_watcher_when_disabled(make_app):
    app = make_app(MODEL_WATCH_SECONDS=0.0)
    previous = signal.getsignal(signal.SIGHUP)
    try:
        start_background(app)
        assert "selah.model_watcher" not in app.extensions
    finally:
        signal.signal(signal.SIGHUP, previous)
