"""Benchmark the served analyzer over HTTP: single-song latency and the serving process's memory.

Starts gunicorn exactly as `make serve` does (boot.sh: migrations, then gunicorn) on a temporary
SQLite database, waits for /readyz, sends songs one at a time to POST /api/analyze (in-memory
result cache off, so every request runs the model): first the data set's songs as they are (up
to 20,000 characters), then the same songs cut to `--chars` characters (1,500: the latency
target's song) where they are that long. Reports p50/p95 of each phase, the resident memory
(VmRSS) of the gunicorn processes every 100 songs and their peak (VmHWM). Lyrics are read at
run time from the data file; nothing is stored.

    .venv/bin/python scripts/bench_service.py --data ../shared/data/songs.jsonl --songs 200
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.loads(response.read())


def _rss_mb(pid: int, field: str = "VmHWM") -> float:
    """Largest `field` (VmHWM: peak resident set; VmRSS: now) of `pid` and its children, MiB."""
    pids = [pid] + [int(p) for p in subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    values = []
    for each in pids:
        status = Path(f"/proc/{each}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith(f"{field}:"):
                    values.append(int(line.split()[1]) / 1024)
    return max(values)


def _percentiles(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {"songs": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
            "mean_ms": round(statistics.fmean(ordered), 1)}


def main() -> None:
    """Run the benchmark and print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="JSONL with title, artist, lyrics per line")
    parser.add_argument("--songs", type=int, default=200, help="songs to send, one at a time")
    parser.add_argument("--model", default="", help="checkpoint folder (default: embedded)")
    parser.add_argument("--chars", type=int, default=1500, help="song length of the second phase")
    parser.add_argument("--runtime", default="auto", help="GPTOSS_RUNTIME")
    args = parser.parse_args()

    songs = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    songs = songs[: args.songs]
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="selah-bench-"))
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
           "RESULT_CACHE_SIZE": "0", "GPTOSS_MODEL_PATH": args.model, "REDIS_URL": "",
           "GPTOSS_RUNTIME": args.runtime,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    server = subprocess.Popen(["./boot.sh"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        while True:
            try:
                status, body = _get(f"{base}/readyz")
            except OSError:
                status, body = 0, {}
            if status == 200:
                break
            if time.monotonic() - started > 300 or server.poll() is not None:
                raise SystemExit(f"service not ready: {status} {body}")
            time.sleep(0.5)
        ready_s = time.monotonic() - started
        phases = {"as_they_are": [(s, s["lyrics"][:20000]) for s in songs],
                  f"cut_to_{args.chars}_chars": [(s, s["lyrics"][:args.chars]) for s in songs
                                                 if len(s["lyrics"]) >= args.chars]}
        results, trace, sent = {}, [{"songs": 0, "rss_mb": round(_rss_mb(server.pid, "VmRSS"))}], 0
        for phase, texts in phases.items():
            latencies = []
            for song, lyrics in texts:
                payload = {"title": song["title"], "artist": song["artist"], "lyrics": lyrics}
                t0 = time.perf_counter()
                status, _ = _post(f"{base}/api/analyze", payload)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert status == 200, status
                sent += 1
                if sent % 100 == 0:
                    trace.append({"songs": sent, "rss_mb": round(_rss_mb(server.pid, "VmRSS"))})
            results[phase] = _percentiles(latencies)
        summary = {
            "model_version": body.get("model_version"),
            "runtime": body.get("runtime"),
            "startup_to_ready_s": round(ready_s, 1),
            "latency": results,
            "rss_mb_every_100_songs": trace,
            "peak_rss_mib": round(_rss_mb(server.pid), 1),
        }
        print(json.dumps(summary, indent=2))
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)


if __name__ == "__main__":
    main()
