"""Load test of a real `tandem serve` process on loopback: 8 concurrent clients, 500 requests.
Run it alone with `pytest -m load -s` to see throughput and latency.

What passes or fails it is counted, never timed: every request answered 200 with its own
inputs, the server's counters add up to what was sent, memory stays bounded. Throughput and
latency depend on the machine and what else runs on it, so they are printed, not asserted."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

CLIENTS, REQUESTS = 8, 500
WORDS = ["abc", "hello", "xyz", "tandem", "qwerty", "ab", "serve", "loop"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


WAIT_S = 120
"""The server's --timeout and each request's: bounds on a hang, far above a loaded machine's
latency, so they decide nothing."""


def post(url: str, payload: dict) -> tuple[int, dict, float]:
    """POST `payload` as JSON: (status, the JSON answer, seconds it took)."""
    data = json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=WAIT_S) as r:
        body = json.loads(r.read())
        return r.status, body, time.perf_counter() - t0


@pytest.fixture()
def server(attention_checkpoint):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tandem.cli", "serve", "--model",
                             str(attention_checkpoint), "--port", str(port),
                             "--timeout", str(WAIT_S)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + WAIT_S  # bounds a start that hangs
    while True:
        try:
            urllib.request.urlopen(base + "/v1/health", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise AssertionError(proc.stdout.read().decode()) from None
            time.sleep(0.2)
    yield base, proc
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.load
def test_eight_clients_500_requests_no_failures_and_bounded_memory(server):
    base, proc = server
    url = base + "/v1/translate"
    for i in range(40):  # warm-up
        post(url, {"inputs": [WORDS[i % len(WORDS)]], "beam": 3})
    warm = rss_kb(proc.pid)
    latencies: list[float] = []
    failures: list[str] = []
    counter = iter(range(REQUESTS))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            inputs = [WORDS[i % len(WORDS)], WORDS[(i + 3) % 8]]
            try:
                status, body, dt = post(url, {"inputs": inputs, "beam": 3})
                latencies.append(dt)
                if status != 200:
                    failures.append(f"request {i}: HTTP {status}")
                elif [r["input"] for r in body["results"]] != inputs:  # batched with others
                    failures.append(f"request {i}: answered for {body['results']}")
            except Exception as e:  # noqa: BLE001 - every failure is reported below
                failures.append(f"request {i}: {e}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    wall = time.perf_counter() - t0
    after = rss_kb(proc.pid)
    assert not failures, failures[:5]
    assert len(latencies) == REQUESTS
    latencies.sort()
    p50, p95 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)]
    health = json.loads(urllib.request.urlopen(base + "/v1/health").read())
    print(f"\n{REQUESTS} requests from {CLIENTS} clients in {wall:.1f} s: "
          f"{REQUESTS / wall:.1f} requests/s, p50 {1000 * p50:.0f} ms, p95 {1000 * p95:.0f} ms; "
          f"{health['batches']} batches for {health['items']} sentences; "
          f"RSS {warm / 1024:.0f} -> {after / 1024:.0f} MB")
    assert after <= warm * 1.10, f"RSS grew from {warm} kB to {after} kB"
    # every sentence sent was decoded once: 40 warm-up requests of one, 500 of two
    assert health["items"] == 40 + 2 * REQUESTS and health["requests"] == 40 + REQUESTS
    # a request is never split between decode calls; how many share one depends on timing
    assert 1 <= health["batches"] <= 40 + REQUESTS and health["queued"] == 0
