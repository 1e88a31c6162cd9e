"""``kms.https_server.hold_connection`` on a real guarded cheroot server (plain HTTP on
loopback): an answer goes out at once, the connection's next request is read only after the
hold, and the held connection occupies no worker thread (a one-thread server keeps serving
other clients meanwhile)."""

import http.client
import time

from cheroot import wsgi

from kms.https_server import MAX_HOLD_S, GuardedServer, guard_server, hold_connection


def app(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        hold_connection(float(environ.get("QUERY_STRING") or 0.6))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def serve(threads: int = 1) -> GuardedServer:
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=threads, shutdown_timeout=1)
    return GuardedServer(server, guard_server(server, name="holds-test", read_deadline_s=5),
                         scheme="http", url_host="127.0.0.1", label="test",
                         thread_name="holds-test")


def ask(conn: http.client.HTTPConnection, path: str) -> float:
    t0 = time.monotonic()
    conn.request("GET", path)
    answer = conn.getresponse()
    assert answer.status == 200 and answer.read() == b"ok"
    return time.monotonic() - t0


def held_soon(server: GuardedServer, count: int) -> bool:
    """The worker hands the connection back just after the answer went out."""
    deadline = time.monotonic() + 1
    while server.connection_holds.held != count and time.monotonic() < deadline:
        time.sleep(0.005)
    return server.connection_holds.held == count


def test_next_request_waits_for_the_hold_without_a_worker_thread():
    with serve(threads=1) as server:
        held = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        other = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        assert ask(held, "/hold") < 0.5                  # the refusal itself is not delayed
        assert held_soon(server, 1)
        # the only worker thread is free: another client is served during the hold
        assert max(ask(other, "/") for _ in range(3)) < 0.3
        assert ask(held, "/") >= 0.45                    # read only once the hold ran out
        assert server.connection_holds.held == 0
        assert ask(held, "/") < 0.3                      # and not held any more
        held.close()
        other.close()


def test_hold_is_capped_and_stop_closes_held_connections():
    with serve() as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        ask(conn, f"/hold?{MAX_HOLD_S * 5}")
        assert ask(conn, "/") < MAX_HOLD_S + 0.5
        ask(conn, "/hold")
        assert held_soon(server, 1)
    assert server.connection_holds.held == 0


def test_hold_outside_a_server_is_a_no_op():
    hold_connection(1.0)
