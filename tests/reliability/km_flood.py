"""A greedy SAE in a process of its own (reliability item 7): ``threads`` keep-alive TLS
connections to its KM, each sending ETSI 014 enc_keys as fast as the answers come back.

Its own process, so that the measuring client (another process) does not share a GIL with the
flood, and plain ``http.client`` with a pre-encoded request, so that the flood spends as little
of the machine's CPU as a client can (what is measured is the KM, not the load generator).

    python tests/reliability/km_flood.py --url https://127.0.0.1:PORT --slave sae-b0 \
        --ca CA --cert CERT --key KEY --threads 8 --number 4 --size 256

waits, idle, for commands on stdin: ``flood SECONDS`` floods for that long (its connections
opened anew, all of them before the first request) and prints one JSON line: accepted keys, refusals by status, the time
(``time.monotonic``, the system-wide CLOCK_MONOTONIC, comparable across processes) of the
first request and of the last accepted one, and the CPU seconds the process spent on it. It
exits at the end of its input. The process lives through the whole measurement, so that the
phases with and without the flood have the same client processes (the start of a Python
process is a CPU burst of its own, which made the flood phases look worse than they were).
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


def flood(url: str, slave: str, context: ssl.SSLContext, *, threads: int, number: int,
          size: int, seconds: float) -> dict:
    """Run the flood for ``seconds``; the figures as a dict."""
    parts = urlsplit(url)
    path = f"/api/v1/keys/{slave}/enc_keys"
    body = json.dumps({"number": number, "size": size}).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    lock = threading.Lock()
    statuses: Counter[str] = Counter()
    accepted = [0]
    first_sent: list[float] = []
    last_accepted = [0.0]
    # the connections (TCP + TLS handshakes) are opened before the clock starts: the bound
    # counts from the first request, and a handshake at a load of 30-45 took ≈ 50-160 ms, in
    # which the full bucket could not be used (0.3-1 % of the long run's bound)
    connected = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def connect() -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(parts.hostname, parts.port, context=context,
                                           timeout=30)

    def hammer() -> None:
        conn = connect()
        try:
            conn.connect()
        except OSError:
            conn.close()   # the first request reconnects (and counts the error if it fails)
        try:
            connected.wait(60)
        except threading.BrokenBarrierError:
            pass
        while time.monotonic() < stop_at[0]:
            sent = time.monotonic()
            with lock:
                if not first_sent:
                    first_sent.append(sent)
            try:
                conn.request("POST", path, body, headers)
                answer = conn.getresponse()
                data = answer.read()
                status = str(answer.status)
                if answer.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = connect()
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                conn.close()
                conn = connect()
            with lock:
                statuses[status] += 1
                if status == "200":
                    accepted[0] += len(json.loads(data)["keys"])
                    last_accepted[0] = time.monotonic()
        conn.close()

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for w in workers:
        w.start()
    stop_at[0] = time.monotonic() + 60   # while connecting, in case the barrier breaks
    try:
        connected.wait(60)
    except threading.BrokenBarrierError:
        pass
    stop_at[0] = time.monotonic() + seconds
    for w in workers:
        w.join(seconds + 60)
    return {"accepted_keys": accepted[0], "statuses": dict(statuses),
            "requests": sum(statuses.values()),
            "first_sent": first_sent[0] if first_sent else None,
            "last_accepted": last_accepted[0] or None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--slave", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--number", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    context = ssl.create_default_context(cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command != "flood":
            continue
        cpu0 = time.process_time()
        result = flood(args.url, args.slave, context, threads=args.threads,
                       number=args.number, size=args.size, seconds=float(value))
        result["cpu_s"] = round(time.process_time() - cpu0, 3)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
