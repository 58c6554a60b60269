"""The fault campaign: real servers and processes stopped, killed and starved mid-job.

- PostgreSQL stopped (as a crash) and started again while a worker process runs a job: the API
  answers 503 with Retry-After while it is down, the job finishes after, every song once.
- Redis stopped and started again (empty: it keeps nothing on disk) while an RQ worker runs a
  job: a job started while Redis is down is accepted, both finish after, every song once.
- A worker killed with SIGKILL at random points of a 200-song job, several times.
- The disk full while a checkpoint is exported: the export says so, the served checkpoint and the
  service are untouched, the partial copy is never loaded; with space again, the export lands.
- A corrupt checkpoint on reload: refused (409), `/readyz` still ready and naming the version it
  serves and why the one on disk was refused; analyses go on with the old model.

PostgreSQL and Redis are private servers on free ports (`tests.integration.servers`), never the
machine's own, so stopping them disturbs nothing else.
"""

import random
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.checkpoints import SONGS as FIXTURE_SONGS
from tests.checkpoints import corrupt, write_tiny_student
from tests.integration.servers import PrivatePostgres, PrivateRedis, postgres_bin
from tests.integration.support import (assert_each_song_completed_once, counts, finished,
                                       playlist_job, start_worker, wait)

pytestmark = pytest.mark.slow


@pytest.fixture
def private_postgres():
    """A private PostgreSQL server, started; stopped and removed after the test."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    server = PrivatePostgres()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def private_redis(tmp_path):
    """A private Redis server, started; stopped after the test."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def _stop(process) -> None:
    """SIGTERM, as a supervisor stops a worker; SIGKILL if it is still there after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # worker_main prints its threads' stacks
            time.sleep(1)
            process.kill()
            process.wait(10)
            raise AssertionError(f"the worker ignored SIGTERM for 10 s: "
                                 f"{process.log.read_text()[-6000:]}") from None


@pytest.mark.postgres
def test_postgres_stopped_and_started_mid_job(make_app, private_postgres, tmp_path):
    songs = 20
    app = make_app(DATABASE_URL=private_postgres.url)
    job_id = playlist_job(app, songs)
    worker = start_worker(["thread", private_postgres.url], delay=0.2, log=tmp_path / "w.log",
                          JOB_POLL_SECONDS=0.1)
    try:
        wait(app, job_id, lambda c: c["completed"] >= 3, 60, worker)
        private_postgres.stop("immediate")  # as a crash: connections cut, no clean shutdown
        client = app.test_client()
        down = client.get(f"/api/jobs/{job_id}")
        assert down.status_code == 503 and down.headers["Retry-After"] == "5"
        assert down.get_json()["error"]["code"] == "database_unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["database"] == "unreachable"
        time.sleep(3)  # the worker keeps retrying, and stays up
        assert worker.poll() is None, worker.log.read_text()[-3000:]
        private_postgres.start()
        wait(app, job_id, finished(songs), 90, worker)
        assert client.get(f"/api/jobs/{job_id}").status_code == 200
    finally:
        _stop(worker)
    assert_each_song_completed_once(app, songs, [job_id])
    assert "database unavailable" in worker.log.read_text()


@pytest.mark.postgres
@pytest.mark.redis
def test_redis_stopped_and_started_mid_job(make_app, pg_database, private_redis, tmp_path):
    songs, lease = 12, 3.0
    queue = f"selah-fault-{uuid.uuid4().hex[:8]}"
    app = make_app(DATABASE_URL=pg_database, JOB_RUNNER="rq", REDIS_URL=private_redis.url,
                   RQ_QUEUE=queue, JOB_LEASE_SECONDS=lease, JOB_POLL_SECONDS=0.1)
    app.extensions["selah.runner"].start()  # the sweeper, as in the serving process
    first = playlist_job(app, songs, name="Before")
    worker = start_worker(["rq", pg_database, private_redis.url, queue], delay=0.2,
                          log=tmp_path / "w.log", JOB_LEASE_SECONDS=lease)
    try:
        wait(app, first, lambda c: c["completed"] >= 3, 60, worker)
        private_redis.stop()
        client = app.test_client()
        assert client.get(f"/api/jobs/{first}").status_code == 200  # the database still answers
        # A job started while Redis is down is accepted; its songs are queued when Redis is back.
        new = [{"title": f"Down {i}", "artist": "Band", "lyrics": f"sung while the queue was down {i}"}
               for i in range(songs)]
        playlist = client.post("/api/playlists", json={"name": "While down", "songs": new})
        started = client.post(f"/api/playlists/{playlist.get_json()['id']}/analyze")
        assert started.status_code == 200, started.get_json()
        second = started.get_json()["job_id"]
        time.sleep(2)
        private_redis.start()  # empty: the queued messages are gone
        wait(app, first, finished(songs), 120, worker)
        wait(app, second, finished(songs), 120, worker)
    finally:
        _stop(worker)
        app.extensions["selah.runner"].stop()
    assert_each_song_completed_once(app, 2 * songs, [first, second])


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_worker_killed_at_random_points_of_a_200_song_job(make_app, tmp_path, request, database):
    songs, kills = 200, 4
    url = (f"sqlite:///{tmp_path / 'kills.db'}" if database == "sqlite"
           else request.getfixturevalue("pg_database"))
    app = make_app(DATABASE_URL=url)
    job_id = playlist_job(app, songs)
    rng = random.Random(14)
    points = sorted(rng.sample(range(10, songs - 50), kills))  # leave the last kill time to land
    killed_at = []
    for number, point in enumerate(points):
        worker = start_worker(["thread", url], delay=0.02, log=tmp_path / f"w{number}.log")
        try:
            wait(app, job_id, lambda c, point=point: c["completed"] >= point, 120, worker)
            time.sleep(rng.uniform(0, 0.1))  # mid-song, not just after a commit
            worker.send_signal(signal.SIGKILL)
        finally:
            worker.kill()
            worker.wait(10)
        killed_at.append(counts(app, job_id)["completed"])
    assert killed_at[-1] < songs, f"the job finished before the last kill: {killed_at}"
    last = start_worker(["thread", url], delay=0.02, log=tmp_path / "last.log")
    try:
        wait(app, job_id, finished(songs), 120, last)
    finally:
        _stop(last)
    assert_each_song_completed_once(app, songs, [job_id])


def _mount_tmpfs(folder: Path, size_kb: int) -> None:
    folder.mkdir(parents=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs",
                             str(folder)], capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")


@pytest.mark.mount
def test_disk_full_while_exporting_keeps_the_served_checkpoint(
        make_app, tiny_student, int8_checkpoint, tmp_path, capsys):
    from training.quantize.export import main as export

    size = sum(f.stat().st_size for f in int8_checkpoint.rglob("*") if f.is_file())
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, size_kb=(3 * size) // 1024 + 256)
    try:
        served = shutil.copytree(int8_checkpoint, disk / "checkpoint")
        before = (served / "manifest.json").read_bytes()
        app = make_app(ANALYZER_CLASS=None, ANALYZER_BACKEND="gptoss",
                       GPTOSS_MODEL_PATH=str(served), GPTOSS_DEVICE="cpu")
        store = app.extensions["selah.model_store"]
        version = store.get().model_version
        # Leave less room than a second checkpoint needs.
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * max(free - size // 3, 0))

        code = export(["--student", str(tiny_student), "--data", str(FIXTURE_SONGS),
                       "--out", str(served)])
        assert code == 2
        error = capsys.readouterr().err
        assert "could not write the checkpoint" in error and "No space left" in error
        assert (served / "manifest.json").read_bytes() == before
        assert sorted(p.name for p in disk.iterdir()) == ["checkpoint", "filler"]  # no partial

        client = app.test_client()
        reload = client.post("/api/admin/model/reload",
                             headers={"Authorization": "Bearer test-admin-token"})
        assert reload.status_code == 200, reload.get_json()
        assert store.get().model_version == version
        analysed = client.post("/api/analyze", json={
            "title": "Still Here", "artist": "A", "lyrics": "the old checkpoint still answers me"})
        assert analysed.status_code == 200
        assert analysed.get_json()["configuration_snapshot"]["model_version"] == version

        (disk / "filler").unlink()  # room again: a new model's export lands and is served
        other = write_tiny_student(tmp_path / "other-student", seed=1)
        assert export(["--student", str(other), "--data", str(FIXTURE_SONGS),
                       "--out", str(served)]) == 0
        assert (served / "manifest.json").read_bytes() != before
        assert client.post("/api/admin/model/reload",
                           headers={"Authorization": "Bearer test-admin-token"}).status_code == 200
        assert store.get().model_version != version
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_corrupt_checkpoint_on_reload_is_refused_and_the_old_one_serves(
        make_app, int8_checkpoint, tmp_path):
    served = shutil.copytree(int8_checkpoint, tmp_path / "checkpoint")
    app = make_app(ANALYZER_CLASS=None, ANALYZER_BACKEND="gptoss", GPTOSS_MODEL_PATH=str(served),
                   GPTOSS_DEVICE="cpu")
    version = app.extensions["selah.model_store"].get().model_version
    client = app.test_client()
    weights = next(p for p in served.iterdir() if p.suffix == ".safetensors")
    corrupt(weights)  # as a disk or a copy would: same size, other bytes

    reload = client.post("/api/admin/model/reload",
                         headers={"Authorization": "Bearer test-admin-token"})
    assert reload.status_code == 409
    assert reload.get_json()["error"]["details"]["serving_model_version"] == version
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["model_version"] == version and body["checks"]["model_on_disk"] == "refused"
    assert body["warning"].startswith(f"ready, serving {version}; the model on disk was refused: ")
    assert weights.name in body["warning"]
    analysed = client.post("/api/analyze", json={"title": "T", "artist": "A",
                                                 "lyrics": "the old checkpoint keeps answering"})
    assert analysed.status_code == 200
    assert analysed.get_json()["configuration_snapshot"]["model_version"] == version
