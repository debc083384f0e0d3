"""Bounds uvicorn lacks, shared by ``secreason serve`` and ``secreason reward-server``.

uvicorn gives a connection unlimited time to send its request headers and its httptools
parser puts no bound on their size, so one slow or huge client could hold a connection
(or fill the memory) forever: :func:`header_timeout_protocol` is uvicorn's HTTP protocol
with both bounds, and it reports what it refuses so the audit can record requests the
app never sees. After a drain, :func:`exit_when_stuck` keeps a worker thread that
ignores cancellation from keeping the process alive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("secreason.serve")


#: Told of a request refused before the app saw it: (client "ip:port", status, why).
OnRefused = Callable[[str | None, int, str], None]


HEADER_END = b"\r\n\r\n"
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
    b"content-length: 31\r\nconnection: close\r\n\r\nrequest header fields too large"
)


def header_timeout_protocol(
    timeout_s: float, on_refused: OnRefused | None = None, max_header_bytes: int = 64 << 10
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, closing a connection whose request headers have not all
    arrived ``timeout_s`` after it opened or after its previous response ended, or whose
    request line and headers pass ``max_header_bytes`` (431: uvicorn's httptools parser
    has no bound of its own, a client could fill the memory within the timeout).

    ``on_refused`` hears of requests the app never sees, so they can be audited too:
    bytes that are not HTTP (uvicorn answers 400 itself), a request whose headers
    started but never finished (408; an idle kept-alive connection is not one), and
    headers over the bound (431)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol
    # httptools tells where a request's head ends; h11 bounds heads itself (16 KiB).
    counting = hasattr(base, "on_headers_complete") and hasattr(base, "on_message_complete")

    class HeaderTimeoutProtocol(base):
        _timer: asyncio.TimerHandle | None = None
        _waiting_after: Any = None  # the cycle (None: none yet) the timer was armed after
        _started = False  # bytes of a next request arrived since the timer was armed
        _in_head = True  # the bytes arriving now belong to a request line or headers
        _head_bytes = 0
        _tail = b""  # the last bytes of the head so far (its end may be split)
        _refused = False

        def _head_too_large(self, data: bytes) -> bool:
            """Count this chunk's head bytes (up to the blank line that ends them)."""
            joined = self._tail + data
            end = joined.find(HEADER_END)
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = joined[-3:]
            return self._head_bytes > max_header_bytes

        def _refuse_head(self) -> None:
            self._refused = True
            if on_refused is not None:
                why = f"request line and headers over {max_header_bytes} bytes"
                on_refused(self._client(), 431, why)
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(TOO_LARGE)
                self.transport.close()

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head, self._head_bytes, self._tail = True, 0, b""
            super().on_message_complete()

        def _between_requests(self) -> bool:
            return self.cycle is None or bool(self.cycle.response_complete)

        def _arm(self) -> None:
            if self._timer is not None and self._waiting_after is self.cycle:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._waiting_after = self.cycle
            self._started = False
            self._timer = self.loop.call_later(timeout_s, self._expire)

        def _client(self) -> str | None:
            client = getattr(self, "client", None)
            return f"{client[0]}:{client[1]}" if client else None

        def _expire(self) -> None:
            self._timer = None
            idle = self._waiting_after is self.cycle and self._between_requests()
            if idle and self.transport is not None and not self.transport.is_closing():
                if self._started and on_refused is not None:
                    why = f"request headers not received within {timeout_s:g} s"
                    on_refused(self._client(), 408, why)
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            if on_refused is not None:
                on_refused(self._client(), 400, f"invalid HTTP, refused by uvicorn: {msg}")
            super().send_400_response(msg)

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._between_requests():
                self._arm()
                self._started = True
            if counting and self._in_head and self._head_too_large(data):
                self._refuse_head()
                return
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def exit_when_stuck(grace_s: float) -> None:
    """After shutdown, wait for worker threads briefly; a model thread still busy (a
    backend that ignores cancellation) must not keep the process alive."""
    deadline = time.monotonic() + grace_s
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon]
    if len(stuck) > 1:  # the main thread is always there
        log.error("threads still busy after the drain (%s): exiting anyway", ", ".join(stuck))
        logging.shutdown()
        os._exit(0)
