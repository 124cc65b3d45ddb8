"""Starts and steers tests/config_service/server.py for the e2e tests: a real HTTP
service in its own process, so "down" is a real refused connection, and a restart
comes back on the same port."""
import json
import os
import signal
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


class ConfigService:
    def __init__(self, rules=None):
        self.port = 0
        self.proc = None
        self.rules = rules

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=10):
        """Starts the server (on the same port as before after a stop) and waits until it
        says it listens; the rules and behaviour it had are set again."""
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "server.py"), "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()   # the server prints it once bound: no polling needed
        if not line.startswith("listening "):
            self.proc.kill()
            raise AssertionError("config service did not start: %r" % line)
        self.port = int(line.split()[1])
        if self.rules is not None:
            self.set_rules(self.rules)
        return self

    def stop(self):
        """Down for real: the process ends and the port refuses connections."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def set_rules(self, rules):
        self.rules = rules
        return self._call("PUT", "/_control/rules", rules)

    def behave(self, mode="ok", **kw):
        return self._call("POST", "/_control/behaviour", dict(kw, mode=mode))

    def stats(self):
        return self._call("GET", "/_control/stats")

    def reset_stats(self):
        return self._call("POST", "/_control/stats", {})
