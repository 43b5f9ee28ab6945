#!/usr/bin/env python3
"""A webhook receiver for the env-tests and for trying webhooks locally (docs/webhooks.md).

Every delivery is checked with the Standard Webhooks reference library for Python
(`standardwebhooks` on PyPI), exactly as an organization's own receiver would check it, so a
test that reads what arrived here proves that the specification's library accepts Convene's
signatures unchanged.

    python3 scripts/webhook_receiver.py --port 18090

Endpoints (plain HTTP on 127.0.0.1):
    PUT  /endpoints/NAME            {"secret": "whsec_...", "status": 204}: deliveries to
                                    /hooks/NAME are verified with that secret and answered with
                                    that status (204 when absent)
    POST /hooks/NAME                a delivery: verified, recorded, answered
    GET  /endpoints/NAME/received   what arrived, oldest first: [{"webhook_id", "type",
                                    "verified", "error", "verified_with_wrong_secret", "body"}]
A delivery to a NAME nobody registered is refused with 404 and recorded nowhere.

Bounds: bodies of at most 1 MiB (413 beyond), 100 endpoints, 20,000 deliveries kept per
endpoint (the oldest are dropped), a 10 s read timeout per connection.
"""

import argparse
import base64
import json
import os
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

MAX_BODY = 1024 * 1024
MAX_ENDPOINTS = 100
MAX_KEPT = 20_000

LOCK = threading.Lock()
ENDPOINTS = {}  # name -> {"secret", "status", "received": []}


def wrong_secret():
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, *_args):
        pass

    def answer(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.answer(413, {"error": "body too large"})
            return None
        return self.rfile.read(length)

    def parts(self):
        return [p for p in self.path.split("?")[0].split("/") if p]

    def do_PUT(self):
        parts = self.parts()
        body = self.read_body()
        if body is None:
            return
        if len(parts) != 2 or parts[0] != "endpoints":
            return self.answer(404, {"error": "no such path"})
        try:
            config = json.loads(body)
            secret = config["secret"]
            status = int(config.get("status", 204))
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"error": "expected {\"secret\": \"whsec_...\", \"status\": 204}"})
        with LOCK:
            if parts[1] not in ENDPOINTS and len(ENDPOINTS) >= MAX_ENDPOINTS:
                return self.answer(409, {"error": "too many endpoints"})
            kept = ENDPOINTS.get(parts[1], {}).get("received", [])
            ENDPOINTS[parts[1]] = {"secret": secret, "status": status, "received": kept}
        self.answer(204)

    def do_POST(self):
        parts = self.parts()
        body = self.read_body()
        if body is None:
            return
        if len(parts) != 2 or parts[0] != "hooks":
            return self.answer(404, {"error": "no such path"})
        with LOCK:
            endpoint = ENDPOINTS.get(parts[1])
        if endpoint is None:
            return self.answer(404, {"error": "no such endpoint"})
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified, error = True, None
        try:
            Webhook(endpoint["secret"]).verify(body, headers)
        except Exception as e:  # the library's WebhookVerificationError, or a malformed header
            verified, error = False, f"{type(e).__name__}: {e}"
        try:
            Webhook(wrong_secret()).verify(body, headers)
            wrong = True
        except Exception:
            wrong = False
        try:
            event_type = json.loads(body).get("type")
        except ValueError:
            event_type = None
        record = {
            "webhook_id": headers.get("webhook-id"),
            "type": event_type,
            "verified": verified,
            "error": error,
            "verified_with_wrong_secret": wrong,
            "body": body.decode("utf-8", "replace"),
        }
        with LOCK:
            received = endpoint["received"]
            received.append(record)
            del received[:-MAX_KEPT]
            status = endpoint["status"]
        self.answer(status)

    def do_GET(self):
        parts = self.parts()
        if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "received":
            with LOCK:
                endpoint = ENDPOINTS.get(parts[1])
                received = list(endpoint["received"]) if endpoint else None
            if received is None:
                return self.answer(404, {"error": "no such endpoint"})
            return self.answer(200, received)
        if parts == ["health"]:
            return self.answer(200, {"status": "ok"})
        self.answer(404, {"error": "no such path"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "18090")))
    parser.add_argument("--bind", default="127.0.0.1")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    server.daemon_threads = True
    print(f"webhook receiver on http://{args.bind}:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
