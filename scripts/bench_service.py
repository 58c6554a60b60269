"""Benchmark the served analyzer over HTTP: single-song latency and the serving process's memory.

Starts gunicorn exactly as `make serve` does (boot.sh: migrations, then gunicorn) on a temporary
SQLite database, waits for /readyz, sends songs one at a time to POST /api/analyze (in-memory
result cache off, so every request runs the model), and reads the peak resident memory (VmHWM)
of the gunicorn processes. Lyrics are read at run time from the data file; nothing is stored.

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


def _peak_rss_mb(pid: int) -> float:
    """Largest VmHWM (peak resident set) of `pid` and its children, in MiB."""
    pids = [pid] + [int(p) for p in subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    peaks = []
    for each in pids:
        status = Path(f"/proc/{each}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def main() -> None:
    """Run the benchmark and print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="JSONL with title, artist, lyrics per line")
    parser.add_argument("--songs", type=int, default=200, help="songs to send, one at a time")
    parser.add_argument("--model", default="", help="checkpoint folder (default: embedded)")
    args = parser.parse_args()

    songs = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    songs = songs[: args.songs]
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="selah-bench-"))
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
           "RESULT_CACHE_SIZE": "0", "GPTOSS_MODEL_PATH": args.model, "REDIS_URL": "",
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
        latencies = []
        for song in songs:
            payload = {k: song[k] for k in ("title", "artist", "lyrics")}
            payload["lyrics"] = payload["lyrics"][:20000]
            t0 = time.perf_counter()
            status, _ = _post(f"{base}/api/analyze", payload)
            latencies.append((time.perf_counter() - t0) * 1000)
            assert status == 200, status
        latencies.sort()
        summary = {
            "songs": len(latencies),
            "model_version": body.get("model_version"),
            "startup_to_ready_s": round(ready_s, 1),
            "latency_ms_p50": round(statistics.median(latencies), 1),
            "latency_ms_p95": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
            "latency_ms_mean": round(statistics.fmean(latencies), 1),
            "peak_rss_mib": round(_peak_rss_mb(server.pid), 1),
        }
        print(json.dumps(summary, indent=2))
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)


if __name__ == "__main__":
    main()
