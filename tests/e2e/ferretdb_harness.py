"""The MongoDB wire-protocol server of the end-to-end tests: FerretDB (SQLite handler)
embedded in tests/ferretdb/ and built by `scripts/ferretdb.sh build` into .cache/.
Started on 127.0.0.1, a free port and a temp directory; ready when it prints its
"ready" line (never a fixed sleep); stop() / start() again keep the data, which is
how the outage test takes the database away and brings it back."""
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

from dossier_harness import ROOT, free_port

BINARY = os.environ.get("DOSSIER_FERRETDB", os.path.join(ROOT, ".cache", "ferretdb", "ferretdb"))


def build():
    """Builds the server once (a no-op when .cache/ holds a current build)."""
    if "DOSSIER_FERRETDB" in os.environ:
        return BINARY
    subprocess.run([os.path.join(ROOT, "scripts", "ferretdb.sh"), "build"], check=True, timeout=1800)
    return BINARY


class FerretDB:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="fdb-", dir="/tmp")
        self.port = free_port()
        self.uri = "mongodb://127.0.0.1:%d/" % self.port
        self.log_path = os.path.join(self.dir, "ferretdb.log")
        self.proc = None

    def start(self, timeout=60):
        binary = build()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary, "-port", str(self.port), "-dir", os.path.join(self.dir, "data")],
                                     stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 256)
                if not chunk:
                    break
                line += chunk
                if b"ready" in line:
                    return self
        self.stop()
        raise AssertionError("FerretDB did not get ready on port %d (got %r); log:\n%s"
                             % (self.port, line, self.tail_log()))

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail_log(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def client(self):
        import pymongo  # only the MongoDB runs need it (scripts/install-deps.sh installs it)
        return pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=5000)
