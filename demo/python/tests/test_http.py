"""The Executor's HTTP/1.1 exchange (faas_client._http._Wire) against a loopback server that
answers scripted bytes: the response framings a gateway or a proxy in front of it may use."""

import socket
import threading
import time

import pytest

from faas_client import _http as faas_http
from faas_client._http import FastHttp
from faas_client.errors import GatewayError, GatewayUnreachable


def serve(replies):
    """A one-connection server on a free port: reads one request per reply (up to its blank
    line and Content-Length body) and sends the reply's byte pieces one by one."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    seen = []

    def run():
        conn, _ = listener.accept()
        with conn:
            data = b""
            for pieces in replies:
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, data = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(data) < length:
                    data += conn.recv(65536)
                seen.append((head, data[:length]))
                data = data[length:]
                for piece in pieces:
                    conn.sendall(piece)
        listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", seen, thread


def test_framings_on_one_keep_alive_connection():
    body = b'{"a":[1,2,3]}'
    url, seen, thread = serve([
        # Content-Length, the head and the body split across sends.
        [b"HTTP/1.1 200 OK\r\ncontent-len", b"gth: %d\r\n\r\n" % len(body), body[:5], body[5:]],
        # An interim 100 first, then a chunked body with an extension and a trailer.
        [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"5;x=1\r\n{\"a\":\r\n", b"3\r\n[1]\r\n1\r\n}\r\n0\r\nX-T: 1\r\n\r\n"],
        # A JSON error.
        [b'HTTP/1.1 404 Not Found\r\nContent-Length: 19\r\n\r\n{"error":"no task"}'],
        # Connection: close, so the client must reconnect for anything after it.
        [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"],
    ])
    http = FastHttp(url, "secret", 5.0)
    assert http.request("POST", "/x", {"k": 1}) == {"a": [1, 2, 3]}
    assert http.request("GET", "/y") == {"a": [1]}
    with pytest.raises(GatewayError) as e:
        http.request("POST", "/z", {})
    assert e.value.status == 404 and e.value.message == "no task"
    assert http.request("POST", "/w", [1]) == {}
    assert http._conn is None  # closed as the server said
    thread.join(5)
    heads = [h.decode() for h, _ in seen]
    assert heads[0].startswith("POST /x HTTP/1.1\r\n") and "Authorization: Bearer secret" in heads[0]
    assert seen[0][1] == b'{"k":1}' and seen[3][1] == b"[1]"
    assert heads[1].startswith("GET /y HTTP/1.1\r\n")


def test_a_connection_closed_mid_response_is_unreachable_and_maybe_sent():
    url, _, thread = serve([[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"]])
    http = FastHttp(url, None, 5.0)
    with pytest.raises(GatewayUnreachable) as e:
        http.request("POST", "/x", {})
    assert not e.value.not_sent
    thread.join(5)


def test_an_idle_connection_the_server_closed_is_replaced_before_sending():
    """The server closes the kept-alive connection after one reply, without saying so: the next
    request notices before sending (from the socket's TCP state on Linux) and goes out on a new
    connection, so nothing is sent into a closed one."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)
    close_now, closed = threading.Event(), threading.Event()
    seen = []

    def run():
        for n in range(2):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                seen.append(data)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"n\":%d}" % n)
                if n == 0:
                    close_now.wait(5)
                    conn.shutdown(socket.SHUT_RDWR)
                    closed.set()
        listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    http = FastHttp(f"http://127.0.0.1:{listener.getsockname()[1]}", None, 5.0)
    assert http.request("GET", "/a") == {"n": 0}
    first = http._conn.sock
    assert not faas_http._dropped(first)
    close_now.set()
    assert closed.wait(5)
    deadline = time.monotonic() + 5
    while not faas_http._dropped(first) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert faas_http._dropped(first)
    assert http.request("GET", "/b") == {"n": 1}
    assert http._conn.sock is not first
    thread.join(5)
    assert len(seen) == 2
