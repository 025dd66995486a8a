"""Load test of ``detente serve``: micro-batching against one statement per batch and the demo.

Starts ``detente serve`` (``--model``, default: the default model) on free 127.0.0.1 ports in
subprocesses and, for each configuration, runs 1, 8, 32 and 128 concurrent clients (``--clients``)
for ``--duration`` seconds each. Every client sends one statement per request, in a closed
loop (the next request when the last is answered), cycling through statements of the
bundled corpus. Configurations:

- ``batching``: the server as ``make serve`` runs it (``--max-batch-size 64 --max-wait-ms 5``),
  requests to ``POST /v1/classify``;
- ``batch1``: the same server with ``--max-batch-size 1`` (every request its own batch);
- ``demo``: the demo mounted in the ``batching`` server, through ``gradio_client``'s
  ``/predict`` (what programs used before the API);
- ``overload``: the ``batching`` server with ``--max-queue`` small (``--overload-queue``) at
  the largest client count: above the queue limit the goal is 429s, not timeouts.

Baseline: ``detente score`` on a file of the same statements (``--score-rows`` rows), its
reported statements/s. Per point: throughput (answered statements/s), p50/p95/p99 latency,
errors by kind (HTTP status, timeout, connection), 429s, and the server's peak RSS (its
resident memory sampled every 0.1 s). Results go to ``benchmarks/results/service_load.json``
and ``.md`` with the machine's load and busiest other processes before each point.

The API clients speak HTTP/1.1 keep-alive over asyncio streams (a few dozen lines below):
the load generator shares the CPUs with the server, and a lighter client takes less from
it than httpx would. Everything is bounded: loopback only, a fixed duration per point, at
most ``--max-requests`` per client per point, a ``--timeout`` per request, servers stopped
at the end. Run (about 6 minutes with the defaults):

    .venv/bin/python benchmarks/service_load.py
    .venv/bin/python benchmarks/service_load.py --duration 5 --clients 1,8 --model PATH
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.demo_load import (  # noqa: E402 - shared helpers of the demo's load test
    corpus_statements,
    free_port,
    machine_state,
    percentile,
)

RESULTS = REPO / "benchmarks" / "results"
SCORE_RATE = re.compile(r"at ([\d,]+) statements/s")


class Server:
    """``detente serve`` in a subprocess, log to a file, stopped with SIGTERM."""

    def __init__(self, model: str | None, extra: list[str], home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"serve-{self.port}.log"
        args = [sys.executable, "-m", "serve.cli", "serve", "--port", str(self.port), *extra]
        if model:
            args += ["--model", model]
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                            cwd=REPO)

    def wait_ready(self, timeout: float) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise SystemExit(f"the server was not ready in {timeout} s")

    def rss_mb(self) -> float:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0.0
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


class RssSampler:
    """Peak resident memory of the server while a point runs."""

    def __init__(self, server: Server) -> None:
        self.server, self.peak, self._stop = server, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss_mb())
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ----------------------------------------------------------------------------- HTTP client


class Connection:
    """One keep-alive HTTP/1.1 connection to the loopback server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        payload = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def api_point(port: int, texts: list[str], clients: int, duration: float,
                    max_requests: int, timeout: float) -> tuple[list[float], Counter, float]:
    """Closed-loop clients for ``duration`` s; latencies of answered requests and errors."""
    latencies: list[float] = []
    errors: Counter = Counter()
    counter = iter(range(10**12))
    end = time.perf_counter() + duration

    async def client() -> None:
        conn = Connection(port)
        for _ in range(max_requests):
            if time.perf_counter() >= end:
                break
            text = texts[next(counter) % len(texts)]
            body = json.dumps({"texts": [text]}).encode()
            started = time.perf_counter()
            try:
                status, headers, _ = await asyncio.wait_for(
                    conn.post("/v1/classify", body), timeout)
            except asyncio.TimeoutError:
                errors["client timeout"] += 1
                conn.close()
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError) as err:
                errors[f"connection: {type(err).__name__}"] += 1
                conn.close()
                await asyncio.sleep(0.05)
                continue
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors[f"HTTP {status}"] += 1
                if status == 429:  # back off briefly, as a client following Retry-After would
                    await asyncio.sleep(0.05)
        conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors, time.perf_counter() - started


def demo_point(url: str, texts: list[str], clients: int, duration: float, max_requests: int,
               timeout: float) -> tuple[list[float], Counter, float]:
    """The same closed loop through gradio_client's /predict of the mounted demo."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as FutureTimeout

    from gradio_client import Client

    client = Client(url + "/demo/", verbose=False)
    latencies: list[float] = []
    errors: Counter = Counter()
    lock = threading.Lock()
    counter = iter(range(10**12))
    end = time.perf_counter() + duration

    def user() -> None:
        for _ in range(max_requests):
            if time.perf_counter() >= end:
                break
            with lock:
                text = texts[next(counter) % len(texts)]
            started = time.perf_counter()
            try:
                client.submit(text, api_name="/predict").result(timeout=timeout)
            except FutureTimeout:
                with lock:
                    errors["client timeout"] += 1
                continue
            except Exception as err:  # noqa: BLE001 - every failure is counted, by kind
                with lock:
                    errors[type(err).__name__] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(user) for _ in range(clients)]:
            future.result()
    return latencies, errors, time.perf_counter() - started


def summary(latencies: list[float], errors: Counter, elapsed: float) -> dict:
    ms = {f"p{q}_ms": None if not latencies else round(1000 * percentile(latencies, q / 100), 1)
          for q in (50, 95, 99)}
    return {"answered": len(latencies),
            "statements_per_s": round(len(latencies) / elapsed, 1) if elapsed else None,
            **ms, "errors": sum(errors.values()), "rejected_429": errors.get("HTTP 429", 0),
            "timeouts": errors.get("client timeout", 0) + errors.get("HTTP 504", 0),
            "error_kinds": dict(errors)}


def score_baseline(model: str | None, texts: list[str], rows: int, work: Path) -> dict:
    """``detente score`` on ``rows`` statements cycling through ``texts``; its statements/s."""
    source = work / "statements.jsonl"
    source.write_text("".join(json.dumps({"text": texts[i % len(texts)]}) + "\n"
                              for i in range(rows)), encoding="utf-8")
    args = [sys.executable, "-m", "serve.cli", "score", str(source), "-o",
            str(work / "scored.jsonl"), "--no-progress"] + (["--model", model] if model else [])
    done = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=1800)
    match = SCORE_RATE.search(done.stderr)
    if done.returncode != 0 or not match:
        raise SystemExit(f"detente score failed:\n{done.stderr[-2000:]}")
    return {"rows": rows, "statements_per_s": float(match.group(1).replace(",", "")),
            "line": done.stderr.strip().splitlines()[-1]}


def run_config(name: str, server: Server, args, texts: list[str], clients: list[int],
               demo: bool = False) -> list[dict]:
    points = []
    for n in clients:
        before = machine_state(exclude={server.process.pid})
        with RssSampler(server) as rss:
            if demo:
                lat, err, elapsed = demo_point(server.url, texts, n, args.duration,
                                               args.max_requests, args.timeout)
            else:
                lat, err, elapsed = asyncio.run(api_point(server.port, texts, n, args.duration,
                                                          args.max_requests, args.timeout))
        point = {"config": name, "clients": n, **summary(lat, err, elapsed),
                 "peak_rss_mb": round(rss.peak, 1), "machine_before": before}
        print(f"{name:>9} {n:>4} clients: {point['statements_per_s']} statements/s, p50 "
              f"{point['p50_ms']} p99 {point['p99_ms']} ms, errors {point['errors']} "
              f"({point['error_kinds']}), peak RSS {point['peak_rss_mb']} MB", flush=True)
        points.append(point)
    return points


def warm_up(server: Server, texts: list[str]) -> None:
    asyncio.run(api_point(server.port, texts, 4, 3.0, 50, 30.0))


def evaluate(points: list[dict], baseline: dict, overload_queue: int) -> dict:
    """The issue's goals, measured."""
    at = {(p["config"], p["clients"]): p for p in points}
    goals: dict = {}
    batching, single = at.get(("batching", 32)), at.get(("batch1", 32))
    if batching and single and single["statements_per_s"]:
        ratio = batching["statements_per_s"] / single["statements_per_s"]
        goals["speedup_at_32_vs_batch1"] = {"value": round(ratio, 2), "goal": ">= 4",
                                            "met": ratio >= 4}
    if batching and baseline.get("statements_per_s"):
        share = batching["statements_per_s"] / baseline["statements_per_s"]
        goals["share_of_detente_score_at_32"] = {"value": round(share, 3), "goal": ">= 0.70",
                                                 "met": share >= 0.70}
    ours = [p for p in points if p["config"] == "batching"]
    if ours:
        peak = max(ours, key=lambda p: p["statements_per_s"] or 0)
        goals["p99_at_peak_throughput"] = {
            "value": peak["p99_ms"], "clients": peak["clients"], "goal": "<= 250 ms",
            "met": peak["p99_ms"] is not None and peak["p99_ms"] <= 250}
    below = [p for p in points if p["config"] in ("batching", "batch1", "demo")]
    goals["errors_below_queue_limit"] = {"value": sum(p["errors"] for p in below), "goal": "0",
                                         "met": all(p["errors"] == 0 for p in below)}
    over = [p for p in points if p["config"] == "overload"]
    if over:
        goals["above_queue_limit"] = {
            "value": {"429": sum(p["rejected_429"] for p in over),
                      "timeouts": sum(p["timeouts"] for p in over)},
            "max_queue": overload_queue, "goal": "429s, no timeouts",
            "met": all(p["rejected_429"] > 0 and p["timeouts"] == 0 for p in over)}
    return goals


def markdown(result: dict) -> str:
    lines = [
        "# `detente serve` under load", "",
        f"{result['measured']}, {result['machine']['cpus']} CPUs, {result['platform']}; model "
        f"version `{result['model_version']}` ({result['backend']} backend); "
        f"{result['duration_s']:g} s per point, closed-loop clients sending one statement per "
        "request, loopback. Produced by `benchmarks/service_load.py` "
        f"(`{result['command']}`).", "",
        f"`detente score` on {result['baseline']['rows']:,} of the same statements: "
        f"**{result['baseline']['statements_per_s']:,.0f} statements/s**.", "",
        "| server | clients | statements/s | p50 ms | p95 ms | p99 ms | errors | 429 | "
        "timeouts | peak RSS MB | load avg before |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"batching": "micro-batching (64, 5 ms)", "batch1": "--max-batch-size 1",
             "demo": "demo via gradio_client",
             "overload": f"micro-batching, --max-queue {result['overload_queue']}"}
    for p in result["points"]:
        lines.append(
            f"| {names[p['config']]} | {p['clients']} | {p['statements_per_s']} | "
            f"{p['p50_ms']} | {p['p95_ms']} | {p['p99_ms']} | {p['errors']} | "
            f"{p['rejected_429']} | {p['timeouts']} | {p['peak_rss_mb']} | "
            f"{p['machine_before']['load_average'][0]} |")
    lines += ["", "## Goals", "", "| goal | measured | target | met |", "|---|---|---|---|"]
    for name, goal in result["goals"].items():
        value = goal["value"]
        if "clients" in goal:
            value = f"{value} ms at {goal['clients']} clients"
        lines.append(f"| {name.replace('_', ' ')} | {value} | {goal['goal']} | "
                     f"{'yes' if goal['met'] else '**no**'} |")
    lines += ["", f"Note: {result['note']}" if result.get("note") else "", ""]
    busiest = result["points"][0]["machine_before"].get("busiest_processes")
    if isinstance(busiest, list) and busiest:
        lines += ["Busiest other processes before the first point (ps %CPU over their "
                  "lifetime): " + "; ".join(f"{b['command'][:60]} ({b['cpu_percent']}%)"
                                            for b in busiest[:4]) + ".", ""]
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="Model folder (default: the default model).")
    parser.add_argument("--clients", default="1,8,32,128",
                        help="Concurrent clients per point, comma-separated.")
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds per point.")
    parser.add_argument("--max-requests", type=int, default=20_000,
                        help="Most requests per client per point.")
    parser.add_argument("--timeout", type=float, default=30.0, help="Seconds per request.")
    parser.add_argument("--overload-queue", type=int, default=16,
                        help="--max-queue of the overload configuration.")
    parser.add_argument("--score-rows", type=int, default=5000,
                        help="Rows for the detente score baseline.")
    parser.add_argument("--configs", default="batching,batch1,demo,overload",
                        help="Which configurations to run.")
    parser.add_argument("--note", default="", help="A sentence about the machine's state.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Folder for the results.")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    configs = args.configs.split(",")
    texts = corpus_statements(1000, seed=0)
    points: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="service-load-") as tmp:
        work = Path(tmp)
        baseline = score_baseline(args.model, texts, args.score_rows, work)
        print(f"detente score: {baseline['line']}", flush=True)
        servers = [("batching", []), ("batch1", ["--max-batch-size", "1"]),
                   ("overload", ["--max-queue", str(args.overload_queue), "--no-demo"])]
        info: dict = {}
        for name, extra in servers:
            wanted = [c for c in configs if c == name or (name == "batching" and c == "demo")]
            if not wanted:
                continue
            server = Server(args.model, extra, work)
            try:
                server.wait_ready(timeout=900)
                if not info:
                    import urllib.request

                    with urllib.request.urlopen(server.url + "/v1/model", timeout=30) as r:
                        info = json.load(r)
                warm_up(server, texts)
                if name in configs:
                    points += run_config(name, server, args, texts,
                                         [max(clients)] if name == "overload" else clients)
                if name == "batching" and "demo" in configs:
                    points += run_config("demo", server, args, texts, clients, demo=True)
            finally:
                server.stop()
    result = {
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": f"Linux {os.uname().machine}, Python {sys.version.split()[0]}",
        "machine": machine_state(), "model_version": info.get("model_version", "?"),
        "backend": info.get("backend", "?"), "duration_s": args.duration,
        "overload_queue": args.overload_queue, "baseline": baseline, "points": points,
        "command": "benchmarks/service_load.py " + " ".join(sys.argv[1:]),
        "note": args.note,
    }
    result["goals"] = evaluate(points, baseline, args.overload_queue)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "service_load.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "service_load.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
