"""A real HTTP server (standard library) that answers POST /api/v1/decisions as told.

The hooks' fail-open tests need services that misbehave in specific ways; the Cond mechanics
of the TFX gate need a decision chosen by the test. Run as a subprocess:

    python scripted_server.py MODE --port P [--sleep S] [--requests FILE] [--lifetime S]

MODE: ``run`` / ``prune`` (a well-formed decision), ``sleep`` (a well-formed ``run`` after
``--sleep`` seconds), ``garbage`` (200, not JSON), ``not-a-decision`` (200, JSON without an
action), ``error`` (500 with a detail), ``missing`` (404 unknown pipeline). Every request body
is appended as one JSON line to ``--requests``. The server stops by itself after
``--lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MODES"]

MODES = ("run", "prune", "sleep", "garbage", "not-a-decision", "error", "missing")


def _decision(body: dict, action: str) -> dict:
    return {
        "decision_id": uuid.uuid4().hex, "action": action, "probability": 0.1 if action == "prune" else 0.9,
        "threshold": 0.3, "reasons": [f"scripted {action}"], "fallback": None, "policy_version": "scripted",
        "pipeline": body.get("pipeline"), "source": body.get("source"), "lane": body.get("lane"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sleep", type=float, default=5.0)
    parser.add_argument("--requests", default=None)
    parser.add_argument("--lifetime", type=float, default=300.0)
    args = parser.parse_args()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):  # quiet
            pass

        def _send(self, status: int, payload: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):  # noqa: N802 - http.server's naming
            self._send(200, b'{"status": "ok"}')

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if args.requests:
                with lock, open(args.requests, "a") as f:
                    f.write(json.dumps({"body": body, "authorization": self.headers.get("Authorization")}) + "\n")
            mode = args.mode
            if mode == "sleep":
                time.sleep(args.sleep)
                mode = "run"
            if mode in ("run", "prune"):
                self._send(200, json.dumps(_decision(body, mode)).encode())
            elif mode == "garbage":
                self._send(200, b"<html>proxy says hello</html>", "text/html")
            elif mode == "not-a-decision":
                self._send(200, b'{"hello": "world"}')
            elif mode == "error":
                self._send(500, b'{"detail": "warehouse is being rebuilt"}')
            else:
                self._send(404, json.dumps({"detail": f"unknown pipeline {body.get('pipeline')!r}"}).encode())

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    threading.Timer(args.lifetime, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
