"""Throughput of `tandem serve` under concurrent load, with dynamic batching on and off, for a
model of any structure (the endpoint is the one POST path the server's schema lists:
/v1/translate, /v1/predict or /v1/generate).

    .venv/bin/python benchmarks/speed/serve.py --model runs/g2p_cmudict/best.pt \
        [--clients 16] [--requests 400] [--beam 5] [--per-request 1] [--repeats 3]
    .venv/bin/python benchmarks/speed/serve.py --model runs/sst2/best.pt --inputs texts.txt

To compare two source trees, run it with each tree first on PYTHONPATH (the server is started
as `python -m tandem.cli serve`, so it runs the tree this script finds).

Starts a real `tandem serve` process on loopback for each mode; --clients threads, each on its
own keep-alive connection, send --requests requests in total (--per-request inputs each, taken
in turn from --inputs or the model's dev/test words). Reports requests/s, sentences/s and p50/p95
latency (median over --repeats runs per mode, the modes interleaved). The clients share the
machine's cores with the server. Writes benchmarks/results/serve-<date>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: str, batching: bool) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, "-m", "tandem.cli", "serve", "--model", model, "--port", str(port)]
    if not batching:
        cmd.append("--no-batching")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v1/health")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server failed: {proc.stderr.read().decode()}") from None
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start within 120 s")


def endpoint(port: int) -> str:
    """The server's one POST endpoint under /v1, from its OpenAPI schema."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/openapi.json")
    paths = json.loads(c.getresponse().read())["paths"]
    return next(p for p, ops in paths.items() if "post" in ops and p.startswith("/v1/"))


def load_test(port: int, inputs: list[str], clients: int, requests: int, beam: int,
              per_request: int = 1) -> dict:
    latencies: list[float] = []
    failures = []
    counter = iter(range(requests))
    lock = threading.Lock()
    path = endpoint(port)
    extra = {"beam": beam} if path == "/v1/translate" else {}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            batch = [inputs[(i * per_request + k) % len(inputs)] for k in range(per_request)]
            body = json.dumps({"inputs": batch, **extra})
            t0 = time.perf_counter()
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            latencies.append(time.perf_counter() - t0)
            if r.status != 200:
                failures.append(r.status)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    return {"requests_per_s": round(requests / wall, 1),
            "sentences_per_s": round(requests * per_request / wall, 1),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p95_ms": round(1000 * latencies[int(0.95 * len(latencies))], 1),
            "failures": len(failures), "wall_s": round(wall, 2)}


def default_inputs(model: str) -> list[str]:
    from tandem.data.dataset import load_splits
    from tandem.structures.translator import load

    splits = load_splits(load(model).config.data)
    pairs = splits.test or splits.dev
    return list(dict.fromkeys(src for src, _ in pairs))[:2000]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--inputs", help="one input per line (default: the model's test/dev sources)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--per-request", type=int, default=1, help="inputs in each request")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--results", default="benchmarks/results")
    p.add_argument("--tag", default="", help="appended to the result's file name")
    a = p.parse_args()
    inputs = (Path(a.inputs).read_text(encoding="utf-8").splitlines() if a.inputs
              else default_inputs(a.model))
    servers = {mode: start(a.model, mode == "batching") for mode in ("batching", "one_by_one")}
    runs: dict[str, list[dict]] = {m: [] for m in servers}
    try:
        for _, port in servers.values():  # warm-up
            load_test(port, inputs, a.clients, 2 * a.clients, a.beam, a.per_request)
        for _ in range(a.repeats):
            for mode, (_, port) in servers.items():
                runs[mode].append(load_test(port, inputs, a.clients, a.requests, a.beam,
                                            a.per_request))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    summary = {}
    for mode, rs in runs.items():
        summary[mode] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        summary[mode]["failures"] = sum(r["failures"] for r in rs)
    speedup = round(summary["batching"]["requests_per_s"]
                    / summary["one_by_one"]["requests_per_s"], 2)
    body = {"model": a.model, "clients": a.clients, "requests": a.requests, "beam": a.beam,
            "inputs_per_request": a.per_request, "repeats": a.repeats, "median": summary,
            "runs": runs, "batching_speedup": speedup}
    body["tandem"] = str(Path(__import__("tandem").__file__).parent)
    out = write_report(a.results, "serve", f"-{a.tag}" if a.tag else "", body)
    for mode, s in summary.items():
        print(f"{mode:<11} {s['requests_per_s']:>7} req/s  p50 {s['p50_ms']} ms  "
              f"p95 {s['p95_ms']} ms  failures {s['failures']}")
    print(f"batching speed-up {speedup}x; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
