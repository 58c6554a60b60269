"""Load test: mixed traffic (scripts/locustfile.py) against a real stack on loopback, bounded in
users and time, with the server's memory sampled as it runs.

Stacks (`--stack`):
- `serve`: what `make serve` runs (boot.sh: migrations, then gunicorn with the embedded worker
  threads) on a fresh SQLite file;
- `rq-postgres`: gunicorn with JOB_RUNNER=rq on a fresh PostgreSQL database, plus `--workers`
  `rq worker` processes (app.tasks.SelahWorker) on a queue of its own.

    pip install -e '.[load]'
    python scripts/load_test.py --stack serve --minutes 10 --out runs/load/serve
    python scripts/load_test.py --stack rq-postgres --minutes 10 --out runs/load/rq-postgres

Writes `summary.json` and `summary.md` under `--out` (requests, failures and p50/p95/p99 by
route, songs analysed a minute, RSS of every server process over time, responses by status as
the service counted them, tracebacks in its log) and locust's own CSV files. Exits 1 when any request failed.
"""

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_songs(data: Path | None, path: Path) -> int:
    """Title, artist and lyrics of the data set's songs (or of written stand-ins) into `path`."""
    songs = []
    if data is not None and data.exists():
        for line in data.read_text(encoding="utf-8").splitlines():
            song = json.loads(line)
            songs.append({"title": song["title"], "artist": song["artist"],
                          "lyrics": song["lyrics"][:20_000]})
    else:  # no data set: songs of a few hundred to a few thousand characters
        verse = "We walk in the light of the morning, and the river runs to the sea\n"
        songs = [{"title": f"Song {i}", "artist": "Load", "lyrics": verse * (4 + i % 40)}
                 for i in range(200)]
    path.write_text("".join(json.dumps(s) + "\n" for s in songs), encoding="utf-8")
    return len(songs)


def wait_ready(url: str, timeout: float, processes: list[subprocess.Popen]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        for process in processes:
            if process.poll() is not None:
                raise SystemExit(f"a server process exited early ({process.args})")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} was not ready after {timeout:.0f} s")


def rss_sample(processes: list[subprocess.Popen]) -> dict[str, float]:
    """MB of resident memory of each server process and its children, by role."""
    sample = {}
    for process in processes:
        try:
            root = psutil.Process(process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for member in tree:
            try:
                name = f"{process.role}:{member.pid}"
                sample[name] = round(member.memory_info().rss / 2**20, 1)
            except psutil.NoSuchProcess:
                pass
    return sample


def read_stats(prefix: Path) -> list[dict]:
    rows = []
    with open(f"{prefix}_stats.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows.append({
                "route": row["Name"] if row["Type"] in ("", "None") else
                f"{row['Type']} {row['Name']}".replace("GET GET", "GET").replace(
                    "POST POST", "POST"),
                "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "p50_ms": float(row["50%"] or 0), "p95_ms": float(row["95%"] or 0),
                "p99_ms": float(row["99%"] or 0), "max_ms": float(row["Max Response Time"] or 0),
                "rps": float(row["Requests/s"] or 0)})
    return rows


def server_statuses(url: str) -> dict[str, float]:
    """Requests the service counted by HTTP status (its /metrics), 5xx included."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("selah_http_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            status = labels.split('status="', 1)[1].split('"', 1)[0]
            totals[status] = totals.get(status, 0) + float(value)
    return totals


def start_stack(args, port: int, work: Path) -> tuple[list[subprocess.Popen], dict]:
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1",
           "PATH": f"{BIN}:{os.environ['PATH']}", "MODEL_WATCH_SECONDS": "0",
           "LOG_LEVEL": "INFO"}
    log = (work / "server.log").open("ab")
    processes = []
    if args.stack == "serve":
        env.update(DATABASE_URL=f"sqlite:///{work / 'load.db'}", JOB_RUNNER="thread")
        env.pop("REDIS_URL", None)
    else:
        database = f"selah_load_{os.getpid()}"
        subprocess.run(["psql", args.postgres_admin, "-qc", f"CREATE DATABASE {database}"],
                       check=True)
        env.update(DATABASE_URL=args.postgres_admin.rsplit("/", 1)[0] + "/" + database,
                   REDIS_URL=args.redis_url, JOB_RUNNER="rq", RQ_QUEUE=f"selah-load-{port}")
        env["SELAH_LOAD_DATABASE"] = database
    server = subprocess.Popen(["./boot.sh"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    server.role = "gunicorn"
    processes.append(server)
    if args.stack == "rq-postgres":
        time.sleep(20)  # let boot.sh migrate the new database before workers query it
        for index in range(args.workers):
            worker = subprocess.Popen(
                [str(BIN / "rq"), "worker", "--url", args.redis_url, "--worker-class",
                 "app.tasks.SelahWorker", env["RQ_QUEUE"]],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            worker.role = f"rq-worker-{index}"
            processes.append(worker)
    return processes, env


def stop_stack(processes: list[subprocess.Popen], env: dict, args) -> None:
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    if "SELAH_LOAD_DATABASE" in env:
        subprocess.run(["psql", args.postgres_admin, "-qc",
                        f"DROP DATABASE IF EXISTS {env['SELAH_LOAD_DATABASE']}"], check=False)


def markdown(summary: dict) -> str:
    lines = [f"Stack `{summary['stack']}`, {summary['users']} users for "
             f"{summary['seconds'] / 60:.1f} min ({summary['command']}).", "",
             "| route | requests | failures | p50 ms | p95 ms | p99 ms | max ms |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary["routes"]:
        lines.append(f"| {row['route']} | {row['requests']} | {row['failures']} | "
                     f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['p99_ms']:.0f} | "
                     f"{row['max_ms']:.0f} |")
    songs = summary["songs"]
    lines += ["", f"Songs analysed: {songs} ({summary['songs_per_minute']}/min: model and cache "
                  f"together). Responses by status (the service's own count): "
                  f"{summary['server_statuses']}; 5xx: {summary['server_500s']}; tracebacks in "
                  f"its log: {summary['server_tracebacks']}.", "",
              "| process | RSS first MB | RSS max MB | RSS last MB |", "| --- | --- | --- | --- |"]
    for name, (first, peak, last) in summary["rss_mb"].items():
        lines.append(f"| {name} | {first} | {peak} | {last} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=("serve", "rq-postgres"), default="serve")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--spawn-rate", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=1, help="rq workers (rq-postgres)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/songs.jsonl")
    parser.add_argument("--postgres-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="selah-load-"))
    songs_file, counts_file = work / "songs.jsonl", args.out / "counts.json"
    write_songs(args.data, songs_file)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes, env = start_stack(args, port, work)
    rss: dict[str, list[float]] = {}
    timeline = []
    try:
        ready_after = wait_ready(url, 600, processes)
        before = server_statuses(url)  # the readiness polls above count too: left out below
        locust = subprocess.Popen(
            [str(BIN / "locust"), "-f", str(ROOT / "scripts/locustfile.py"), "--headless",
             "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{int(args.minutes * 60)}s",
             "--host", url, "--csv", str(args.out / "locust"), "--only-summary",
             "--stop-timeout", "60"],
            cwd=ROOT, env={**os.environ, "SELAH_LOAD_SONGS": str(songs_file),
                           "SELAH_LOAD_COUNTS": str(counts_file)},
            stdout=(args.out / "locust.log").open("wb"), stderr=subprocess.STDOUT)
        started = time.monotonic()
        while locust.poll() is None:
            sample = rss_sample(processes)
            timeline.append({"t": round(time.monotonic() - started), **sample})
            for name, mb in sample.items():
                rss.setdefault(name, []).append(mb)
            time.sleep(10)
        seconds = time.monotonic() - started
        statuses = {status: n - before.get(status, 0)
                    for status, n in server_statuses(url).items() if n - before.get(status, 0)}
    finally:
        stop_stack(processes, env, args)
    log_text = (work / "server.log").read_text(errors="replace")
    (args.out / "server.log").write_text(log_text)
    shutil.rmtree(work, ignore_errors=True)
    counts = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    songs = sum(counts.get(k, 0) for k in ("single_model", "single_cached", "batch", "job"))
    summary = {
        "stack": args.stack, "users": args.users, "seconds": round(seconds, 1),
        "ready_after_seconds": round(ready_after, 1),
        "command": "python scripts/load_test.py " + " ".join(argv or sys.argv[1:]),
        "routes": read_stats(args.out / "locust"), "counts": counts, "songs": songs,
        "songs_per_minute": round(songs / (seconds / 60), 1),
        "server_statuses": statuses,
        "server_500s": sum(n for status, n in statuses.items() if status.startswith("5")),
        "server_tracebacks": log_text.count("Traceback"),
        "rss_mb": {name: (values[0], max(values), values[-1]) for name, values in rss.items()},
        "rss_timeline": timeline,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    (args.out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    failures = sum(row["failures"] for row in summary["routes"] if row["route"] != "Aggregated")
    return 1 if failures or summary["server_500s"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
