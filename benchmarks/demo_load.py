"""Load test of the demo: concurrent gradio_client users against a demo on this machine.

Starts ``detente demo`` (``--model``, default: the default model) on a free 127.0.0.1 port in
a subprocess, or uses ``--url`` of a demo already running on loopback, then runs
``--clients`` client threads for ``--duration`` seconds. Each client does what the page does
on every Classify: ``/predict`` then ``/explain`` of a statement from the bundled corpus
(``--mix`` changes the share of ``/predict``, ``/explain`` and ``/batch`` of 20 pasted
lines). It records requests/s, p50/p95/p99 latency per endpoint, errors (goal: 0) and
tracebacks in the server's log, with the machine's load and busiest other processes, in
``benchmarks/results/demo_load.json`` and ``.md``.

Everything is bounded: loopback only, a fixed duration, at most ``--max-requests`` per
client, a timeout per request, and the demo it started is stopped at the end. Run:

    .venv/bin/python benchmarks/demo_load.py                      # 16 clients, 60 s
    .venv/bin/python benchmarks/demo_load.py --duration 10 --model ~/.cache/detente/models/default
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ACTIONS = ("predict+explain", "predict", "explain", "batch")


@dataclass
class Record:
    endpoint: str
    started: float
    seconds: float
    error: str | None = None


@dataclass
class Tally:
    records: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: Record) -> None:
        with self.lock:
            self.records.append(record)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def corpus_statements(n: int, seed: int) -> list[str]:
    """Statements of the bundled corpus: realistic lengths and words."""
    lines = (REPO / "data" / "statements.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def parse_mix(text: str) -> dict[str, float]:
    """``predict+explain=9,batch=1`` -> weights of the user actions."""
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in ACTIONS:
            raise SystemExit(f"--mix: unknown action {name!r}; use {', '.join(ACTIONS)}")
        try:
            mix[name.strip()] = float(weight or 1)
        except ValueError:
            raise SystemExit(f"--mix: {weight!r} is not a number") from None
    if sum(mix.values()) <= 0:
        raise SystemExit("--mix: the weights add up to 0")
    return mix


class Demo:
    """``detente demo`` in a subprocess on a free loopback port, its log kept in a file."""

    def __init__(self, model: str | None, folder: Path, start_timeout: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = folder / "demo.log"
        command = [sys.executable, "-m", "serve.cli", "demo", "--host", "127.0.0.1",
                   "--port", str(self.port), "--corrections", str(folder / "corrections.jsonl")]
        if model:
            command += ["--model", model]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, cwd=REPO, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        self._wait(start_timeout)

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("the demo exited while starting:\n" + self.log()[-3000:])
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise SystemExit(f"the demo did not answer within {timeout:.0f} s")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self._log.close()


def check_loopback(url: str) -> str:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"--url must be a demo on this machine (127.0.0.1, localhost or ::1), "
                         f"not {host!r}")
    return url if url.endswith("/") else url + "/"


def run_client(url: str, worker: int, args, texts: list[str], mix: dict[str, float],
               start: threading.Barrier, stop_at: list[float], tally: Tally) -> None:
    """One user: a loop bounded by the deadline, --max-requests and a timeout per request."""
    from gradio_client import Client

    try:
        client = Client(url, verbose=False, download_files=False)
    except Exception as err:  # counted as an error of this user; it sends nothing
        tally.add(Record("connect", time.monotonic(), 0.0, f"{type(err).__name__}: {err}"))
        start.wait()
        return
    rng = random.Random(args.seed + worker)
    names, weights = list(mix), list(mix.values())
    start.wait()
    sent = 0
    while time.monotonic() < stop_at[0] and sent < args.max_requests:
        for endpoint in plan(rng.choices(names, weights)[0]):
            if time.monotonic() >= stop_at[0] or sent >= args.max_requests:
                break
            text = rng.choice(texts)
            inputs = (("\n".join(rng.sample(texts, 20)), None, "text", "id")
                      if endpoint == "batch" else (text,))
            began = time.monotonic()
            error = None
            try:
                client.submit(*inputs, api_name=f"/{endpoint}").result(
                    timeout=args.request_timeout)
            except FutureTimeout:
                error = f"timeout after {args.request_timeout:.0f} s"
            except Exception as err:  # every failure is counted, whatever its kind
                error = f"{type(err).__name__}: {' '.join(str(err).split())[:120]}"
            tally.add(Record(endpoint, began, time.monotonic() - began, error))
            sent += 1


def plan(choice: str) -> list[str]:
    """What one user action sends: Classify is /predict followed by /explain."""
    return ["predict", "explain"] if choice == "predict+explain" else [choice]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarise(records: list[Record], elapsed: float) -> dict:
    def stats(rows: list[Record]) -> dict:
        ok = [r.seconds for r in rows if r.error is None]
        return {
            "requests": len(rows),
            "ok": len(ok),
            "errors": len(rows) - len(ok),
            "requests_per_s": round(len(ok) / elapsed, 2) if elapsed else None,
            **{f"{name}_ms": None if value is None else round(1000 * value, 1)
               for name, value in (("p50", percentile(ok, 0.50)), ("p95", percentile(ok, 0.95)),
                                   ("p99", percentile(ok, 0.99)), ("max", max(ok, default=None)))},
            "mean_ms": round(1000 * statistics.fmean(ok), 1) if ok else None,
        }

    by_endpoint = defaultdict(list)
    for record in records:
        by_endpoint[record.endpoint].append(record)
    return {
        "all": stats(records),
        "by_endpoint": {name: stats(rows) for name, rows in sorted(by_endpoint.items())},
        "error_kinds": dict(Counter(r.error for r in records if r.error).most_common(10)),
    }


def machine_state(exclude: set[int] = frozenset()) -> dict:
    """Load and the busiest other processes: what else competed for the CPUs.

    ``ps``' %CPU is the process's CPU time over its lifetime, not an instant reading.
    """
    state = {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    try:
        ps = subprocess.run(["ps", "-eo", "pid=,pcpu=,args=", "--sort=-pcpu"],
                            capture_output=True, text=True, timeout=10).stdout
        own = {os.getpid(), *exclude}
        busiest = []
        for line in ps.splitlines():
            pid, cpu, command = line.split(None, 2)
            if int(pid) not in own and float(cpu) >= 5.0:
                busiest.append({"pid": int(pid), "cpu_percent": float(cpu),
                                "command": command[:100]})
        state["busiest_processes"] = busiest[:6]
    except (OSError, ValueError, subprocess.SubprocessError):
        state["busiest_processes"] = "unavailable (no ps)"
    return state


def model_description(url: str) -> str:
    from gradio_client import Client

    raw = Client(url, verbose=False).predict("Talks resume on Monday.", api_name="/predict")[4]
    return raw.get("model_version", "?")


def write_results(result: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "demo_load.json", out_dir / "demo_load.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(result), encoding="utf-8")
    return json_path, md_path


def markdown(result: dict) -> str:
    config, summary = result["config"], result["summary"]
    lines = [
        "# Demo under load",
        "",
        f"{config['clients']} concurrent gradio_client users for {config['duration_s']:.0f} s "
        f"against `{config['target']}` (model version `{result['model_version']}`), mix "
        f"`{config['mix']}`; {result['when']}, {result['machine']['cpus']} CPUs, "
        f"{result['platform']}.",
        "",
        "| endpoint | requests | ok | errors | requests/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [("all", summary["all"]), *summary["by_endpoint"].items()]
    for name, s in rows:
        lines.append(f"| {name} | {s['requests']} | {s['ok']} | {s['errors']} | "
                     f"{s['requests_per_s']} | {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} | "
                     f"{s['max_ms']} |")
    lines += ["", f"Errors: {summary['all']['errors']} (goal: 0)"
              + (f"; kinds: {summary['error_kinds']}" if summary["error_kinds"] else "")
              + f". Tracebacks in the server log: {result['server_tracebacks']}.", ""]
    before, after = result["machine"], result["machine_after"]
    lines += [f"What else was running: load average {before['load_average']} before and "
              f"{after['load_average']} after (1, 5, 15 min)."]
    busy = before.get("busiest_processes")
    if isinstance(busy, list) and busy:
        lines += ["Busiest other processes before the run (lifetime %CPU from `ps`):", ""]
        lines += [f"- {p['cpu_percent']:.0f}% CPU: `{p['command']}`" for p in busy]
    if result.get("note"):
        lines += ["", f"Note: {result['note']}"]
    lines += ["", "Produced by `benchmarks/demo_load.py` "
              f"(`{' '.join(result['command'])}`).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=16, help="concurrent users")
    parser.add_argument("--model", help="model folder for the demo (default: the default model)")
    parser.add_argument("--url", help="use this running demo (loopback only) instead")
    parser.add_argument("--mix", default="predict+explain=1",
                        help="weights of the user actions: predict+explain (what Classify "
                        "sends), predict, explain, batch (20 pasted lines); e.g. "
                        "'predict+explain=9,batch=1'")
    parser.add_argument("--max-requests", type=int, default=100_000,
                        help="upper bound on requests per client")
    parser.add_argument("--request-timeout", type=float, default=120.0)
    parser.add_argument("--start-timeout", type=float, default=900.0,
                        help="seconds to wait for the demo (it may train the default model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="free text kept with the results")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not 0 < args.duration <= 3600 or not 1 <= args.clients <= 256:
        raise SystemExit("--duration must be in (0, 3600] and --clients in [1, 256]")
    mix = parse_mix(args.mix)
    texts = corpus_statements(300, args.seed)

    with tempfile.TemporaryDirectory(prefix="detente-load-") as folder:
        demo = None if args.url else Demo(args.model, Path(folder), args.start_timeout)
        url = check_loopback(args.url) if args.url else demo.url
        try:
            version = model_description(url)  # also warms the model up
            machine = machine_state({demo.process.pid} if demo else set())
            tally, stop_at = Tally(), [float("inf")]
            start = threading.Barrier(args.clients + 1)
            threads = [threading.Thread(target=run_client, daemon=True,
                                        args=(url, w, args, texts, mix, start, stop_at, tally))
                       for w in range(args.clients)]
            for thread in threads:
                thread.start()
            start.wait(timeout=300)  # every client connected
            began = time.monotonic()
            stop_at[0] = began + args.duration
            for thread in threads:  # in-flight requests end within their timeout
                thread.join(timeout=args.duration + args.request_timeout + 30)
            elapsed = time.monotonic() - began
            server_log = demo.log() if demo else ""
        finally:
            if demo:
                demo.stop()
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).as_posix(), *sys.argv[1:]],
        "config": {"clients": args.clients, "duration_s": args.duration, "mix": args.mix,
                   "target": args.url or f"detente demo --model {args.model or '(default)'}",
                   "max_requests_per_client": args.max_requests,
                   "request_timeout_s": args.request_timeout},
        "model_version": version,
        "platform": f"{platform.system()} {platform.machine()}, Python "
                    f"{platform.python_version()}",
        "elapsed_s": round(elapsed, 2),
        "summary": summarise(tally.records, elapsed),
        "server_tracebacks": server_log.count("Traceback") if demo else None,
        "machine": machine,
        "machine_after": machine_state(),
        "note": args.note,
    }
    json_path, md_path = write_results(result, args.out_dir)
    print(markdown(result))
    print(f"written: {json_path}, {md_path}")


if __name__ == "__main__":
    main()
