#!/usr/bin/env python3
"""A small configuration service for the tests, implementing
schemas/config_service.openapi.yaml, that the tests can steer.

    python3 tests/config_service/server.py [--port N] [--rules FILE]

Prints "listening <port>" on stdout once it accepts connections (port 0 picks a free
one). Rules use the rules-file format (config/rules.json) plus an optional "country"
on each rule, and the service does the matching, as a real one would.

Steering (not part of the contract):
  PUT  /_control/rules      a rule set {"version", "notifications": [...], "documents": [...]}
  POST /_control/behaviour  {"mode": "ok" | "error" | "malformed" | "slow",
                             "status": 500, "delay_ms": 2000, "body": "..."}
                            (slow = answer correctly after delay_ms)
  GET  /_control/stats      request counts; POST /_control/stats resets them
"""
import argparse
import hashlib
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = {"version": "empty", "notifications": [], "documents": []}
        self.behaviour = {"mode": "ok"}
        self.reset_stats()

    def reset_stats(self):
        self.stats = {"requests": 0, "rules_requests": 0, "conditional": 0, "not_modified": 0,
                      "errors": 0, "malformed": 0, "by_path": {}, "connections": 0, "rules_connections": 0,
                      "queries": []}

    def etag(self):
        digest = hashlib.sha1(json.dumps(self.rules, sort_keys=True).encode()).hexdigest()[:12]
        return '"%s-%s"' % (self.rules.get("version", ""), digest)


STATE = State()


def _matches(rule, q):
    for field in ("traitement_type", "case_type", "country"):
        want = rule.get(field)
        if want in (None, ""):
            continue
        have = q.get(field, "")
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def notification_answer(rules, q):
    # The contract: a trigger without rules (unknown ones included) is an empty list.
    trigger = q.get("trigger", "")
    out = []
    for r in rules.get("notifications", []):
        if r.get("trigger") == trigger and _matches(r, q):
            out.append({k: r[k] for k in ("rule_id", "is_active", "notification_type", "template_id",
                                          "language_code") if k in r})
    return {"version": rules.get("version", ""), "trigger": trigger, "rules": out}


def document_answer(rules, q):
    out = []
    for r in rules.get("documents", []):
        if _matches(r, q):
            item = {k: r[k] for k in ("rule_id", "subject", "document_type", "only_ubo", "is_active") if k in r}
            out.append(item)
    return {"version": rules.get("version", ""), "rules": out}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive: the client is expected to reuse connections
    server_version = "dossier-test-config/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        self.served_rules = False      # per connection: tells reuse from new connections
        with STATE.lock:
            STATE.stats["connections"] += 1

    def _send(self, status, body=b"", headers=None, content_type="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if status != 304:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if status != 304 and body:
            self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    # -- the contract -----------------------------------------------------------
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if url.path == "/health":
                return self._send(200, {"status": "ok"})
            if url.path == "/_control/stats":
                with STATE.lock:
                    return self._send(200, STATE.stats)
            if url.path not in ("/v1/notification-rules", "/v1/document-rules"):
                return self._send(404, {"error": "not_found"})
            with STATE.lock:
                STATE.stats["requests"] += 1
                STATE.stats["rules_requests"] += 1
                if not self.served_rules:
                    self.served_rules = True
                    STATE.stats["rules_connections"] += 1
                STATE.stats["by_path"][url.path] = STATE.stats["by_path"].get(url.path, 0) + 1
                STATE.stats["queries"] = (STATE.stats["queries"] + [self.path])[-50:]
                behaviour = dict(STATE.behaviour)
                rules = json.loads(json.dumps(STATE.rules))
                etag = STATE.etag()
                conditional = self.headers.get("If-None-Match")
                if conditional:
                    STATE.stats["conditional"] += 1
            mode = behaviour.get("mode", "ok")
            if mode == "slow":
                time.sleep(behaviour.get("delay_ms", 2000) / 1000.0)
            if mode == "error":
                with STATE.lock:
                    STATE.stats["errors"] += 1
                return self._send(behaviour.get("status", 500), {"error": "internal"})
            if mode == "malformed":
                with STATE.lock:
                    STATE.stats["malformed"] += 1
                return self._send(200, behaviour.get("body", '{"version": "x", "rules": [{"rule_id": '),
                                  {"ETag": '"garbage"'})
            if conditional and conditional == etag:
                with STATE.lock:
                    STATE.stats["not_modified"] += 1
                return self._send(304, headers={"ETag": etag})
            answer = notification_answer(rules, q) if url.path == "/v1/notification-rules" else document_answer(rules, q)
            return self._send(200, answer, {"ETag": etag, "Cache-Control": "max-age=30"})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- steering ------------------------------------------------------------------
    def do_PUT(self):
        if self.path != "/_control/rules":
            return self._send(404, {"error": "not_found"})
        rules = self._body()
        with STATE.lock:
            STATE.rules = rules
        self._send(200, {"etag": STATE.etag()})

    def do_POST(self):
        if self.path == "/_control/rules":
            return self.do_PUT()
        if self.path == "/_control/behaviour":
            b = self._body()
            with STATE.lock:
                STATE.behaviour = b
            return self._send(200, b)
        if self.path == "/_control/stats":
            with STATE.lock:
                STATE.reset_stats()
            return self._send(200, {})
        self._send(404, {"error": "not_found"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--rules", help="initial rule set (JSON file)")
    args = ap.parse_args()
    if args.rules:
        with open(args.rules) as f:
            STATE.rules = json.load(f)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    server.server_close()


if __name__ == "__main__":
    sys.exit(main())
