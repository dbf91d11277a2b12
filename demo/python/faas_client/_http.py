"""The HTTP transports of faas_client: JSON in and out over one keep-alive connection, and the
mapping of failures to GatewayUnreachable / GatewayError. ``Http`` (a ``requests.Session``)
serves the Client; ``FastHttp`` (``_Wire``, a plain HTTP/1.1 exchange written here, or
``http.client`` for https) the Executor's hot path.

Measured on loopback against the gateway (release build, a busy 2-core machine), client CPU
per small POST: ``requests.Session`` 1.06-1.75 ms (25% more with ``trust_env`` on), an
``httpx.Client`` 1.43-1.61 ms, ``http.client`` 0.28-0.32 ms; all three keep the connection
alive. A request written and parsed here (``_Wire``) costs a quarter of ``http.client``'s CPU
again (83-91 us against 338-408 us, measured later on a busier machine). So the Executor, whose
request rate is what a Python program's tasks per second and round trips depend on, speaks
``_Wire`` to http:// gateways (``http.client`` to https:// ones); the Client keeps ``requests`` (the original clients' library, its
``session`` is public), with ``trust_env`` off unless a proxy variable is set, since it reads
``~/.netrc`` and the proxy settings on every request otherwise.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import urllib.parse
from typing import Any, Optional

import requests

from .errors import GatewayError, GatewayUnreachable

DEFAULT_URL = "http://127.0.0.1:8000"
_JSON = {"Content-Type": "application/json"}
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def gateway_url(url: Optional[str]) -> str:
    return (url or os.environ.get("FAAS_GATEWAY_URL") or DEFAULT_URL).rstrip("/")


def gateway_token(token: Optional[str]) -> Optional[str]:
    return token if token is not None else os.environ.get("FAAS_TOKEN")


def error_message(status: int, text: str) -> str:
    try:
        return str(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return text.strip() or f"HTTP {status}"


class Http:
    """JSON requests to one gateway over one keep-alive session (not shared across threads
    that use it at the same time: every thread of the SDK has its own)."""

    def __init__(self, url: str, token: Optional[str], timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        # With trust_env, requests reads ~/.netrc and the proxy settings on every request,
        # which costs more than the request itself on loopback; keep it only for proxies.
        self.session.trust_env = any(os.environ.get(v) for v in _PROXY_VARS)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, body: Any = None, extra: float = 0.0) -> Any:
        """The decoded JSON reply. ``extra`` seconds are added to the timeout (long polls)."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        try:
            resp = self.session.request(
                method, self.url + path, data=data, headers=_JSON if data else None,
                timeout=self.timeout + extra,
            )
        except requests.RequestException as e:
            err = GatewayUnreachable(f"cannot reach the gateway at {self.url}: {e}")
            # Refused or timed out while connecting: the request never left, so resending it
            # cannot submit anything twice.
            err.not_sent = isinstance(e, requests.ConnectTimeout) or "NewConnectionError" in repr(e)
            raise err from e
        if resp.status_code >= 400:
            raise GatewayError(error_message(resp.status_code, resp.text), resp.status_code)
        try:
            return resp.json()
        except ValueError as e:
            raise GatewayError(f"the gateway answered {path} with non-JSON: {resp.text[:200]!r}", resp.status_code) from e

    def close(self) -> None:
        self.session.close()


class _OneSend:
    """Sends a request's head and bytes body in one ``send`` (http.client sends them in two,
    which costs a second system call and a second wake-up of the gateway per request)."""

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if isinstance(message_body, bytes):
            buffer = self._buffer  # type: ignore[attr-defined]
            buffer.extend((b"", b""))
            head = b"\r\n".join(buffer)
            del buffer[:]
            self.send(head + message_body)  # type: ignore[attr-defined]
        else:
            super()._send_output(message_body, encode_chunked)  # type: ignore[misc]


class _Connection(_OneSend, http.client.HTTPConnection):
    pass


class _TlsConnection(_OneSend, http.client.HTTPSConnection):
    pass


class _Wire:
    """One keep-alive plain HTTP/1.1 connection, written and parsed here: a request is one
    ``sendall``, a response is its status, body and whether the server will close. Measured
    against the gateway on loopback (a ``POST /results/wait``, busy 2-core machine), it costs
    the client 83-91 us of CPU where ``http.client`` costs 338-408 us (which parses every
    response's headers with the ``email`` package), and the request's wall time halves.
    Bodies with ``Content-Length``, chunked bodies and bodies ended by the connection's close
    are read; ``1xx`` interim responses are skipped."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock: Optional[socket.socket] = socket.create_connection((host, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rest = b""

    def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        assert self.sock is not None
        self.sock.sendall(request)
        while True:
            status, body, close = self._response()
            if status >= 200:
                return status, body, close

    def _recv(self) -> bytes:
        assert self.sock is not None
        data = self.sock.recv(262_144)
        if not data:
            raise ConnectionError("the gateway closed the connection")
        return data

    def _response(self) -> tuple[int, bytes, bool]:
        data = self._rest
        while (end := data.find(b"\r\n\r\n")) < 0:
            if len(data) > 65_536:
                raise http.client.HTTPException("response headers longer than 64 KiB")
            data += self._recv()
        lines = data[:end].decode("latin-1").split("\r\n")
        data = data[end + 4:]
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise http.client.HTTPException(f"bad status line {lines[0][:80]!r}")
        status = int(rest[:3])
        length: Optional[int] = None
        chunked = False
        close = version == "HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                close = value.strip().lower() == "close" or (close and value.strip().lower() != "keep-alive")
        if status < 200 or status in (204, 304):
            body = b""
        elif chunked:
            body, data = self._chunked(data)
        elif length is not None:
            parts, have = [data], len(data)
            while have < length:
                parts.append(self._recv())
                have += len(parts[-1])
            data = b"".join(parts)
            body, data = data[:length], data[length:]
        else:  # the body ends with the connection
            parts = [data]
            while chunk := self.sock.recv(262_144) if self.sock is not None else b"":
                parts.append(chunk)
            body, data, close = b"".join(parts), b"", True
        self._rest = data
        return status, body, close

    def _chunked(self, data: bytes) -> tuple[bytes, bytes]:
        out = []
        while True:
            while (eol := data.find(b"\r\n")) < 0:
                data += self._recv()
            size = int(data[:eol].split(b";")[0], 16)
            data = data[eol + 2:]
            if size == 0:
                while True:  # trailers, up to the empty line
                    while (eol := data.find(b"\r\n")) < 0:
                        data += self._recv()
                    line, data = data[:eol], data[eol + 2:]
                    if not line:
                        return b"".join(out), data
            while len(data) < size + 2:
                data += self._recv()
            out.append(data[:size])
            data = data[size + 2:]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# Linux's TCP_INFO (its first byte is the connection's state) and the state of an open one.
_TCP_INFO: Optional[int] = getattr(socket, "TCP_INFO", None)
_TCP_ESTABLISHED = 1


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle keep-alive socket was closed by the server.

    Where the kernel tells a TCP socket's state (Linux), that is read: a server's close or
    reset takes the socket out of ESTABLISHED. ``getsockopt`` keeps the GIL, where ``select``
    lets it go, and the thread that ``submit`` has just woken takes it then, in the middle of a
    round trip's request: asked this way, a lone ``submit(...).result()`` was 3 % faster (p50,
    10 alternated blocks of 500; ``demo/bench/README.md``, issue #12, stop 16). Elsewhere a
    readable idle socket means its end (a gateway sends nothing unasked)."""
    if _TCP_INFO is not None:
        try:
            return sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 1)[0] != _TCP_ESTABLISHED
        except OSError:
            pass
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class FastHttp:
    """The Executor's transport: one keep-alive connection, the same interface and errors as
    ``Http``: ``_Wire`` for ``http://`` gateways, ``http.client`` for ``https://`` ones. Client
    CPU per request is what bounds a Python process's tasks per second and its round trips
    (see ``_Wire`` and the package README for the measurements).

    A connection the server closed while idle is noticed before sending (as urllib3 does), so
    a failure after sending really is "maybe received" (``not_sent`` false), and a refused or
    timed-out connect is ``not_sent``.
    """

    def __init__(self, url: str, token: Optional[str], timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url = url
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        self._headers = dict(_JSON)
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        host = f"[{self._host}]" if ":" in self._host else self._host
        fixed = f"Host: {host}:{self._port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self._headers.items())
        self._fixed = fixed.encode("latin-1")
        self._conn: Any = None
        # The socket's timeout, set only when it changes (a system call fewer per request).
        self._timeout: Optional[float] = None

    def _connection(self, timeout: float) -> Any:
        conn = self._conn
        if conn is not None and (conn.sock is None or _dropped(conn.sock)):
            conn.close()
            conn = self._conn = None
        if conn is None:
            if self._https:
                conn = _TlsConnection(self._host, self._port, timeout=timeout)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                conn = _Wire(self._host, self._port, timeout)
            self._conn = conn
            self._timeout = None
        if timeout != self._timeout:
            conn.sock.settimeout(timeout)
            self._timeout = timeout
        return conn

    def _exchange(self, conn: Any, method: str, path: str, data: Optional[bytes]) -> tuple[int, bytes, bool]:
        if isinstance(conn, _Wire):
            head = b"%s %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (
                method.encode(), (self._base + path).encode(), self._fixed, len(data or b""))
            return conn.exchange(head + data if data else head)
        conn.request(method, self._base + path, body=data, headers=self._headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), bool(resp.will_close)

    def request(self, method: str, path: str, body: Any = None, extra: float = 0.0) -> Any:
        timeout = self.timeout + extra
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        try:
            conn = self._connection(timeout)
        except OSError as e:
            self.close()
            err = GatewayUnreachable(f"cannot reach the gateway at {self.url}: {e}")
            err.not_sent = True
            raise err from e
        try:
            status, raw, close = self._exchange(conn, method, path, data)
        except (OSError, http.client.HTTPException, ValueError) as e:
            self.close()
            raise GatewayUnreachable(f"lost the connection to the gateway at {self.url}: {e!r}") from e
        if close:
            self.close()
        if status >= 400:
            raise GatewayError(error_message(status, raw.decode(errors="replace")), status)
        try:
            return json.loads(raw)
        except ValueError as e:
            raise GatewayError(f"the gateway answered {path} with non-JSON: {raw[:200]!r}", status) from e

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def make_http(url: str, token: Optional[str], timeout: float) -> "Http | FastHttp":
    """``FastHttp``, or the requests-based ``Http`` when a proxy is configured (http.client
    does not read the proxy variables)."""
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return Http(url, token, timeout)
    return FastHttp(url, token, timeout)
