"""Harness for end-to-end tests: starts the real supervisor (which starts every
process) on a fresh data directory and a free port, waits for readiness by
asking (never by sleeping a fixed time), and stops everything at the end."""
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN_DIR = os.environ.get("DOSSIER_BIN_DIR", os.path.join(ROOT, "build", "bin"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=30.0, interval=0.05, what="condition"):
    """Polls predicate until it returns a truthy value; fails with `what` after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, ValueError, urllib.error.URLError) as e:  # service still starting
            last = e
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Dossier:
    """One running Dossier: supervisor + every process, on its own data dir and port."""

    def __init__(self, processes=None, extra_env=None, log_level="info", backend="sqlite", mongodb_uri=None):
        self.dir = tempfile.mkdtemp(prefix="dos-", dir="/tmp")   # short: ipc paths have a 107-byte cap
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.config = os.path.join(self.dir, "dossier.cfg")
        procs = processes or {"store": 1, "broker": 1, "handler": 2, "projector": 1,
                              "notifier": 1, "scheduler": 1, "gateway": 1, "ingest": 1}
        lines = ["dossier",
                 '    data_dir = "%s"' % self.data,
                 '    http_addr = "127.0.0.1:%d"' % self.port,
                 '    log_level = "%s"' % log_level,
                 '    rules_file = "%s"' % os.path.join(ROOT, "config", "rules.json"),
                 '    body_limit = "1048576"',
                 "processes"]
        lines += ["    %s = %d" % (k, v) for k, v in procs.items()]
        lines += ["supervisor",
                  '    backoff_ms = "50"', '    backoff_max_ms = "1000"',
                  '    intensity = "20"', '    period_s = "30"', '    grace_ms = "5000"']
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.env = dict(os.environ, DOSSIER_BIN_DIR=BIN_DIR)
        self.env.pop("DOSSIER_CONFIG", None)
        # Storage backend: sqlite files in the data dir, or a database of its own on
        # the session's MongoDB-compatible server (tests/e2e/ferretdb_harness.py).
        self.backend = backend
        self.mongodb_uri = mongodb_uri
        self.mongodb_database = None
        self._mongo_client = None
        for k in ("DOSSIER_STORE", "DOSSIER_MONGODB_URI", "DOSSIER_MONGODB_DATABASE"):
            self.env.pop(k, None)
        if backend == "mongodb":
            self.mongodb_database = "dos_" + re.sub(r"[^A-Za-z0-9]", "_", os.path.basename(self.dir))
            self.env.update(DOSSIER_STORE="mongodb", DOSSIER_MONGODB_URI=mongodb_uri,
                            DOSSIER_MONGODB_DATABASE=self.mongodb_database)
        elif backend != "sqlite":
            raise ValueError("unknown backend %r" % backend)
        if extra_env:
            self.env.update(extra_env)
        self.log_path = os.path.join(self.dir, "dossier.log")
        self.proc = None

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout=30):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([os.path.join(BIN_DIR, "dossier-supervisor"), "--config", self.config],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(lambda: self.get("/ready").status == 200 or self.proc.poll() is not None,
                 timeout, what="gateway /ready")
        if self.proc.poll() is not None:
            raise AssertionError("supervisor exited with %s; log:\n%s" % (self.proc.returncode, self.tail_log()))
        return self

    def stop(self, timeout=60):
        """Graceful stop (SIGTERM); returns the supervisor's exit code. The supervisor
        SIGKILLs what is left after its 5 s grace, so only a process stuck where even
        SIGKILL waits (a long fsync on a busy disk) or a stuck supervisor gets near
        the timeout; then the process table and the stop's log lines say which."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            snapshot = self._stuck_snapshot()
            self.kill()
            raise AssertionError("supervisor still running %d s after SIGTERM\n%s" % (timeout, snapshot))

    def _stuck_snapshot(self):
        """ps of the supervisor's process group (state, kernel wait channel) and the
        log lines of the stop itself."""
        try:
            ps = subprocess.run(["ps", "-eo", "pid,pgid,stat,wchan:28,etimes,args"], capture_output=True,
                                text=True, timeout=10).stdout.splitlines()
            rows = [ps[0]] + [r for r in ps[1:] if r.split()[1:2] == [str(self.proc.pid)]]
        except Exception as e:  # diagnostics must never hide the failure itself
            rows = ["ps failed: %s" % e]
        stop_lines = [l for l in self.tail_log(400).splitlines()
                      if any(w in l for w in ("stopping", "exited", "killing", "still running", "stopped"))]
        try:
            threads = "\n".join("%s %s" % (t, open("/proc/%d/task/%s/wchan" % (self.proc.pid, t)).read())
                                 for t in os.listdir("/proc/%d/task" % self.proc.pid))
        except OSError:
            threads = "(no /proc entry)"
        return "\n".join(["-- process group --"] + rows + ["-- supervisor threads (wchan) --", threads,
                          "-- stop log --"] + stop_lines[-40:])

    def kill(self):
        """Last resort: SIGKILL the whole process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if not self.log.closed:
            self.log.close()

    def cleanup(self):
        """Removes the data directory (after a clean run; a failed run keeps it for a look)."""
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.backend == "mongodb":
            try:
                client = self._mongo()
                for name in client.list_database_names():
                    if name == self.mongodb_database or name.startswith(self.mongodb_database + "_"):
                        client.drop_database(name)
            except Exception:  # the server may be down (outage tests); its files go with it
                pass
            if self._mongo_client:
                self._mongo_client.close()
                self._mongo_client = None

    def tail_log(self, n=60):
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")

    def digest_log(self, per_process=6, max_kinds=40):
        """What a failed test prints: every kind of warning or error once (with its
        count and first time), then the last lines of each process. CI shows only a
        part of the output, so one noisy process must not hide the others."""
        kinds, order, tails = {}, [], {}
        with open(self.log_path, "rb") as f:
            for raw in f:
                line = raw.decode("utf-8", "replace").rstrip()
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = {"process": "?", "level": "raw", "msg": line}
                proc = entry.get("process", "?")
                tails.setdefault(proc, []).append(line)
                del tails[proc][:-per_process]
                if entry.get("level") in ("warn", "error", "fatal", "raw"):
                    key = (proc, entry.get("level"), str(entry.get("msg", ""))[:60])
                    if key not in kinds:
                        kinds[key] = [0, entry.get("time", ""), line]
                        order.append(key)
                    kinds[key][0] += 1
        out = ["-- warnings and errors (count, first seen) --"]
        for key in order[:max_kinds]:
            count, first, line = kinds[key]
            out.append("%6d  %s  %s" % (count, first, line[:400]))
        for proc, lines in sorted(tails.items()):
            out.append("-- last lines of %s --" % proc)
            out.extend(l[:400] for l in lines)
        return "\n".join(out)

    # -- HTTP --------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=30):
        data = body
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Response(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers), e.read())

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def wait_get(self, path, timeout=30):
        """GET until 200 (read models are eventually consistent); returns the JSON."""
        return wait_for(lambda: (lambda r: r.json() if r.status == 200 else None)(self.get(path)),
                        timeout, what="GET %s" % path)

    def list_all(self, query=""):
        """Every item of GET /v1/cases with the given filters, following cursors."""
        items, cursor = [], None
        while True:
            q = query + ("&" if query else "") + "limit=500" + ("&cursor=" + cursor if cursor else "")
            r = self.get("/v1/cases?" + q)
            assert r.status == 200, r
            page = r.json()
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    # -- CLI ---------------------------------------------------------------
    def cli(self, *args, timeout=300, check=False, input=None):
        r = subprocess.run([os.path.join(BIN_DIR, "dossier"), "--config", self.config] + list(args),
                           env=self.env, capture_output=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError("dossier %s -> %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), r.returncode, r.stdout.decode(), r.stderr.decode()[-2000:]))
        return r

    def status(self):
        r = self.cli("status", "--json", check=True, timeout=10)
        return json.loads(r.stdout)["processes"]

    def pids(self, name):
        return [p["pid"] for p in self.status() if p["name"] == name and p["state"] == "running"]

    # -- direct looks at the files (tests only) -------------------------------
    def event_count(self):
        if self.backend == "mongodb":
            # positions are gapless from 1: the head is the count. The store's command
            # index holds each append's positions in small documents (cheaper to scan
            # on the test server than the log); it is written before any append is
            # acknowledged.
            doc = self._mongo_db()["commands"].find_one({}, {"last_position": 1}, sort=[("last_position", -1)])
            return doc["last_position"] if doc else 0
        path = os.path.join(self.data, "events.db")
        if not os.path.exists(path):
            return 0
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
        try:
            return con.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            con.close()

    def projector_checkpoints(self):
        """{name: position} of every projector checkpoint row: "projector" with one
        partition, "projector/<i>-of-<n>" with several (common/partition.h)."""
        if self.backend == "mongodb":
            return {d["_id"]: d["position"] for d in self._mongo_db()["rm_checkpoints"].find({})}
        path = os.path.join(self.data, "readmodels.db")
        if not os.path.exists(path):
            return {}
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
        try:
            return dict(con.execute("SELECT name, position FROM checkpoint").fetchall())
        finally:
            con.close()

    def projector_checkpoint(self, partitions=None):
        """Where every partition has got to: the least checkpoint row (0 before any);
        with partitions = N, the least of the rows of N partitions (a missing one: 0),
        not counting rows that another partition count left behind."""
        rows = self.projector_checkpoints()
        if partitions:
            names = ["projector"] if partitions == 1 else \
                ["projector/%d-of-%d" % (i, partitions) for i in range(partitions)]
            return min(rows.get(n, 0) for n in names)
        return min(rows.values()) if rows else 0

    def events_of_type(self, type_):
        if self.backend == "mongodb":
            found = []
            for doc in self._mongo_db()["events"].find({"events.type": type_}, {"events": 1}):
                found += [(e["position"], e["id"]) for e in doc["events"] if e["type"] == type_]
            return [event_id for _, event_id in sorted(found)]
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "events.db"), uri=True, timeout=10)
        try:
            return [r[0] for r in con.execute("SELECT event_id FROM events WHERE type = ? ORDER BY position", (type_,))]
        finally:
            con.close()

    # -- the backend's read models, for comparing a live projection with a rebuild --
    def rebuild_target(self, tmp_path):
        """What `dossier rebuild --to` takes: a file (sqlite) or a database name (mongodb)."""
        if self.backend == "mongodb":
            return self.mongodb_database + "_rebuilt"
        return str(tmp_path / "rebuilt.db")

    def read_models(self, target=None):
        """Every read model as sorted rows: the live ones, or those rebuilt into target."""
        if self.backend == "mongodb":
            return dump_mongo_read_models(self._mongo()[target or self.mongodb_database])
        return dump_read_models(target or os.path.join(self.data, "readmodels.db"))

    def _mongo(self):
        if self._mongo_client is None:
            import pymongo  # only the MongoDB runs need it (scripts/install-deps.sh installs it)
            self._mongo_client = pymongo.MongoClient(self.mongodb_uri, serverSelectionTimeoutMS=10000)
        return self._mongo_client

    def _mongo_db(self):
        return self._mongo()[self.mongodb_database]


def dump_mongo_read_models(db):
    """The MongoDB twin of dump_read_models: every read-model collection (rm_*) as
    sorted canonical JSON documents. Lists of plain ids are sets (filled with
    $addToSet by unordered bulks, so their order depends on timing): sorted too."""
    def canonical(value):
        if isinstance(value, dict):
            return {k: canonical(v) for k, v in value.items()}
        if isinstance(value, list):
            items = [canonical(v) for v in value]
            return sorted(items) if all(isinstance(v, str) for v in items) else items
        return value
    return {name: sorted(json.dumps(canonical(doc), sort_keys=True, default=repr) for doc in db[name].find())
            for name in sorted(db.list_collection_names()) if name.startswith("rm_")}


def dump_read_models(path):
    """Every read-model table as sorted rows, for comparing a live projection with a rebuild."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: sorted(con.execute("SELECT * FROM %s" % t).fetchall(), key=repr) for t in tables}
    finally:
        con.close()
