"""A small synchronous JSON-RPC client over the `websockets` library.

Independent of camsvc's own code (a different WebSocket implementation than
the server's Autobahn), so tests using it prove interoperability.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from websockets.sync.client import connect


class RpcClient:
    """Send requests, collect responses and notifications."""

    def __init__(self, url: str, *, timeout: float = 10.0, **kwargs: Any) -> None:
        self.ws = connect(url, open_timeout=timeout, max_size=None, **kwargs).__enter__()
        self.timeout = timeout
        self._ids = itertools.count(1)
        self.notifications: list[dict] = []
        self._pending: dict[Any, dict] = {}

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> "RpcClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send_raw(self, text: str | bytes) -> None:
        self.ws.send(text)

    def recv_raw(self, timeout: float | None = None) -> str:
        return self.ws.recv(timeout=self.timeout if timeout is None else timeout)

    def recv_json(self, timeout: float | None = None) -> Any:
        return json.loads(self.recv_raw(timeout))

    def request(self, method: str, params: Any = None, *, req_id: Any = None) -> dict:
        """Send one request and return the full response object (result or error)."""
        if req_id is None:
            req_id = next(self._ids)
        msg: dict = {"jsonrpc": "2.0", "method": method, "id": req_id}
        if params is not None:
            msg["params"] = params
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + self.timeout
        while True:
            if req_id in self._pending:
                return self._pending.pop(req_id)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no response to {method} within {self.timeout}s")
            self._dispatch(json.loads(self.ws.recv(timeout=left)))

    def call(self, method: str, params: Any = None) -> Any:
        """Send a request; return its result or raise RpcCallError."""
        response = self.request(method, params)
        if "error" in response:
            raise RpcCallError(response["error"])
        return response["result"]

    def _dispatch(self, message: Any) -> None:
        if isinstance(message, dict) and "method" in message and "id" not in message:
            self.notifications.append(message)
        elif isinstance(message, dict):
            self._pending[message.get("id")] = message
        else:
            raise AssertionError(f"unexpected message: {message!r}")

    def wait_notification(self, method: str, predicate: Any = None, timeout: float | None = None) -> dict:
        """Return (and consume) the first notification ``method`` whose params satisfy ``predicate``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for i, note in enumerate(self.notifications):
                if note["method"] == method and (predicate is None or predicate(note["params"])):
                    return self.notifications.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} notification matched within the timeout")
            try:
                self._dispatch(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                continue


class RpcCallError(Exception):
    def __init__(self, error: dict) -> None:
        self.error = error
        self.code = error.get("code")
        super().__init__(f"{error.get('code')}: {error.get('message')}")
