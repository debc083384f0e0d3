"""How much time does ``secreason serve`` itself add to a request?

The server is started as a subprocess on loopback with the BENCHMARK-ONLY fixed-text
backend (``model.backend: fixed-text``: a constant reasoning + answer, no model), the
default system prompt and the guard off, so everything measured is the server's own
work: HTTP, JSON, limits, batching hand-off, the reasoning split, SSE framing.

This script is the second process: it drives ``--concurrency`` (default 32) concurrent
clients, ``--requests`` per row, bounded by ``--max-seconds``, each on one keep-alive
connection with a minimal HTTP/1.1 client (so that it steals as little CPU from the
server as possible on a small box). Two loads:

* paced: each client pauses ``--think-ms`` (jittered) between calls, as tools and users
  do. With a real model each stream lasts seconds, so a server in front of it is never
  hammered back to back; this is where the overhead targets apply.
* saturated: no pause. This measures capacity (requests/s, CPU per request); once the
  box's CPU is the limit, the "overhead" of these rows is queueing behind the other
  clients (Little's law), not the cost of one request.
It reports, per mode (streaming and not):

* server overhead: per request, wall time inside the server minus time awaiting the
  model, as the server measures it (read back from ``/metrics``'s histograms, so each
  quantile is a bucket's upper edge: at most 12 % above the true value);
* client latency: end to end as this process sees it (includes queueing behind the
  other 31 requests, the loopback and the client itself);
* errors: any non-200 or malformed stream.

Targets (issue 6): zero errors, overhead p50 <= 5 ms and p99 <= 20 ms.

Then the same paced load against a second server whose guard (both sides) is a stub
speaking the Llama-Guard protocol on loopback that answers ``safe`` after a fixed
``--guard-ms`` (50): the row shows that screening adds the guard's latency (two calls:
input, then output) and little else. Its "overhead" excludes the time awaiting the guard,
as it excludes the model's; "beyond guard" is the client p50 minus the unguarded row's
minus the two guard calls.

    .venv/bin/python benchmarks/serve_overhead.py [--concurrency 32] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from secreason.serve.metrics import quantile_between

TARGET_P50_MS, TARGET_P99_MS = 5.0, 20.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    workdir: Path, audit: bool, guard_url: str | None = None, arrival_wait_ms: float = 50.0
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "model": {
            "backend": "fixed-text",
            "max_batch_size": 32,
            "batch_arrival_wait_ms": arrival_wait_ms,
        },
        "limits": {"max_concurrent": 256, "api_keys": ["bench"]},
    }
    if guard_url:
        config["guard"] = {"model": guard_url, "served_name": "stub-guard"}
    if audit:
        config["audit"] = {"path": str(workdir / f"audit-{port}.jsonl")}
    path = workdir / f"serve-{port}.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = Path(sys.executable).with_name("secreason")
    process = subprocess.Popen(
        [str(cli), "serve", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / f"serve-{port}.log", "wb"),  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"server did not start: {(workdir / f'serve-{port}.log').read_text()[-2000:]}")


async def guard_stub(port: int, latency_s: float) -> None:
    """A Llama-Guard-protocol endpoint that says ``safe`` after ``latency_s`` (no model)."""
    verdict = {
        "choices": [{"index": 0, "message": {"content": "safe"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 1},
    }
    answer = json.dumps(verdict).encode()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if head.startswith(b"POST"):
                    await asyncio.sleep(latency_s)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def start_guard_stub(latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--guard-stub", str(port), "--guard-ms", str(latency_ms)]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}/v1"
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the guard stub did not start")


class Connection:
    """A minimal keep-alive HTTP/1.1 client for loopback: far less CPU per request than a
    full client library, so the load generator steals less of the box from the server."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer bench\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status = int((await self.reader.readline()).split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return status, await self.reader.readexactly(int(headers["content-length"]))
        chunks = []  # chunked transfer encoding (streamed responses)
        while size := int((await self.reader.readline()).strip(), 16):
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readline()
        await self.reader.readline()
        return status, b"".join(chunks)


BODY = {
    "model": "fixed-text",
    "messages": [{"role": "user", "content": "Which CWE describes SQL injection?"}],
    "max_tokens": 256,
}


async def one_request(connection: Connection, stream: bool) -> tuple[float, bool]:
    body = json.dumps({**BODY, "stream": stream}).encode()
    start = time.perf_counter()
    status, payload = await connection.post("/v1/chat/completions", body)
    elapsed = time.perf_counter() - start
    if status != 200:
        return elapsed, False
    if not stream:
        return elapsed, bool(json.loads(payload)["choices"][0]["message"]["content"])
    events = [e for e in payload.decode().split("\n\n") if e.startswith("data: ")]
    ok = events[-1] == "data: [DONE]" and any('"content"' in e for e in events[:-1])
    return elapsed, ok and all(json.loads(e[6:]).get("object") for e in events[:-1])


async def drive(
    base: str, stream: bool, concurrency: int, total: int, max_s: float, think_s: float = 0.0
) -> dict:
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + max_s
    url = httpx.URL(base)

    async def worker() -> None:
        nonlocal issued, errors
        connection = Connection(url.host, url.port or 80)
        while issued < total and time.perf_counter() < deadline:
            issued += 1
            try:
                elapsed, ok = await one_request(connection, stream)
            except (OSError, ValueError, KeyError, IndexError, asyncio.IncompleteReadError):
                elapsed, ok = float("nan"), False
                connection = Connection(url.host, url.port or 80)
            latencies.append(elapsed)
            errors += not ok
            if think_s:  # a client pausing between calls, jittered so workers do not align
                await asyncio.sleep(think_s * random.uniform(0.5, 1.5))
        if connection.writer is not None:
            connection.writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    return {"latencies": latencies, "errors": errors, "wall": wall}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to split the box's CPU."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_samples(base: str) -> dict:
    return httpx.get(base + "/metrics", headers={"authorization": "Bearer bench"}).json()


def measure(
    process: subprocess.Popen[bytes], base: str, stream: bool, think_s: float, args: Any
) -> dict:
    before = server_samples(base)
    cpu_before = cpu_seconds(process.pid)
    result = asyncio.run(
        drive(base, stream, args.concurrency, args.requests, args.max_seconds, think_s)
    )
    server_cpu = cpu_seconds(process.pid) - cpu_before
    after = server_samples(base)
    # /metrics keeps cumulative histograms: the row's own requests are the difference
    # (each quantile to within one bucket, at most 12 % above the true value).
    overhead = functools.partial(quantile_between, before["overhead_ms"], after["overhead_ms"])
    model = functools.partial(quantile_between, before["model_ms"], after["model_ms"])
    client_ms = [1000 * x for x in result["latencies"] if x == x]
    done = len(result["latencies"])
    batches = after["batches"] - before["batches"]
    return {
        "load": f"think {1000 * think_s:.0f}ms" if think_s else "saturated",
        "mode": "stream" if stream else "non-stream",
        "requests": done,
        "errors": result["errors"],
        "req/s": done / result["wall"],
        "overhead p50": overhead(50),
        "overhead p99": overhead(99),
        "model-wait p50": model(50),
        "client p50": percentile(client_ms, 50),
        "client p99": percentile(client_ms, 99),
        "server CPU/req": 1000 * server_cpu / max(1, done),
        # streams from a streaming backend are not batched: "-"
        "mean batch": (after["batched_requests"] - before["batched_requests"]) / batches
        if batches
        else "-",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000, help="per row")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="per row")
    parser.add_argument(
        "--think-ms", type=float, default=100.0, help="pause of each client between calls"
    )
    parser.add_argument("--audit", action="store_true", help="also write the audit log (fsync)")
    parser.add_argument(
        "--guard-ms", type=float, default=50.0, help="latency of the loopback guard stub"
    )
    parser.add_argument("--no-guard-row", action="store_true", help="skip the guarded rows")
    parser.add_argument("--guard-stub", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.guard_stub:  # the stub's own process
        asyncio.run(guard_stub(args.guard_stub, args.guard_ms / 1000))
        return

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        process, base = start_server(Path(tmp), args.audit)
        try:
            asyncio.run(drive(base, False, 4, 50, 10))  # warm up
            for think_s in (args.think_ms / 1000, 0.0):
                for stream in (False, True):
                    rows.append({"guard": "off", **measure(process, base, stream, think_s, args)})
        finally:
            process.terminate()
            process.wait(10)
        if not args.no_guard_row:
            stub, guard_url = start_guard_stub(args.guard_ms)
            # Default settings, then without the batcher's wait for requests still in the
            # input guard (model.batch_arrival_wait_ms: worth it for a real model's batch,
            # pure cost for the fixed text): the second isolates what screening costs.
            try:
                for wait_ms, label in ((50.0, ""), (0.0, ", no arrival wait")):
                    process, base = start_server(Path(tmp), args.audit, guard_url, wait_ms)
                    try:
                        asyncio.run(drive(base, False, 4, 20, 10))  # warm up
                        for stream in (False, True):
                            row = measure(process, base, stream, args.think_ms / 1000, args)
                            rows.append({"guard": f"{args.guard_ms:g} ms{label}", **row})
                    finally:
                        process.terminate()
                        process.wait(10)
            finally:
                stub.terminate()
                stub.wait(10)
    unguarded = {(r["load"], r["mode"]): r["client p50"] for r in rows if r["guard"] == "off"}
    for row in rows:
        if row["guard"] == "off":
            row["beyond guard"] = "-"
        else:
            base_p50 = unguarded[(row["load"], row["mode"])]
            row["beyond guard"] = row["client p50"] - base_p50 - 2 * args.guard_ms

    print(
        f"\nsecreason serve overhead: {args.concurrency} concurrent clients, fixed-text "
        f"benchmark backend, guard off or a {args.guard_ms:g} ms loopback stub (both "
        f"sides), audit {'on' if args.audit else 'off'}, "
        f"{os.cpu_count()} CPUs shared by client and server, load average before the run "
        f"{load_before:.2f}\n"
    )
    header = list(rows[0])
    widths = [22 if h == "guard" else 14 for h in header]
    print(" | ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        cells = [
            f"{v:>{w}.2f}" if isinstance(v, float) else f"{v!s:>{w}}"
            for v, w in zip(row.values(), widths, strict=True)
        ]
        print(" | ".join(cells))
    print(
        "\n(ms unless noted; overhead = time in the server not spent awaiting the model"
        "\n or the guard; model-wait includes the guard calls;"
        "\n 'saturated' rows have no pause: they measure capacity, and their overhead is"
        "\n mostly queueing behind the other 31 requests once the box's CPU is the limit)"
    )
    for row in rows:
        if row["load"] == "saturated" or row["guard"] != "off":
            continue
        verdict = (
            "PASS"
            if row["errors"] == 0
            and row["overhead p50"] <= TARGET_P50_MS
            and row["overhead p99"] <= TARGET_P99_MS
            else "MISS"
        )
        print(
            f"{row['mode']:>10} ({row['load']}): target p50 <= {TARGET_P50_MS} ms, "
            f"p99 <= {TARGET_P99_MS} ms, 0 errors -> {verdict}"
        )
    saturated_errors = sum(r["errors"] for r in rows if r["load"] == "saturated")
    print(f"saturated rows: {saturated_errors} errors")
    for row in rows:
        if row["guard"] != "off":
            print(
                f"{row['mode']:>10} with the {row['guard']} guard: client p50 +"
                f"{row['beyond guard'] + 2 * args.guard_ms:.1f} ms over the guard-off row "
                f"(2 guard calls = {2 * args.guard_ms:g} ms; beyond them "
                f"{row['beyond guard']:.1f} ms), overhead p50 {row['overhead p50']:.2f} ms, "
                f"{row['errors']} errors"
            )


if __name__ == "__main__":
    main()
