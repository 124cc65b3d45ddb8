#!/usr/bin/env python3
"""bench/run.py — `make bench`: Dossier's throughput, latency and memory, each
against a limit measured in the same run on the same machine (bench/README.md).

Starts Dossier exactly as the end-to-end tests do (tests/e2e/dossier_harness.py:
supervisor + every process, temp dir, free port on 127.0.0.1) and measures, in
this order (--only picks sections; each one that needs data makes it):

  ingest    embedded (SQLite) `dossier ingest FILE` of N generated records, clock
            from the start until every case is listed over REST
  raw       the limits of that ingestion: build/bench/raw_store (the same rows
            bulk-inserted into a fresh database) and build/bench/raw_zmq (the same
            store.append envelopes over ipc, DEALER/ROUTER and PUSH/PULL)
  http      wrk on GET /v1/cases/{id} and a filtered list at 1/16/64 connections,
            and nginx serving the same bytes as static files (the limit)
  latency   build/bench/latency: POST at a fixed rate, poll GET until 200
  rebuild   top the log up to >= 1,000,000 events, then `dossier rebuild --to FILE`
  memory    RSS of every process idle after start, after ingestion, after the rebuild
  kafka     Kafka -> MongoDB wire (FerretDB): produce N records, until all listed

Results: one JSON object (--out, default build/bench/results.json) and a table.
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from dossier_harness import BIN_DIR, Dossier, free_port, wait_for  # noqa: E402

TOOLS = os.environ.get("DOSSIER_BENCH_DIR", os.path.join(os.path.dirname(BIN_DIR), "bench"))
SECTIONS = ["ingest", "raw", "http", "latency", "rebuild", "memory", "kafka"]
MB = 1024.0 * 1024.0

# The targets (bench/README.md).
TARGET_INGEST_RPS = 10000
TARGET_INGEST_RAW_RATIO = 0.5
TARGET_HTTP_RATIO = 0.6
TARGET_HTTP_P99_MS = 5.0
TARGET_E2E_P99_MS = 15.0
TARGET_REBUILD_EPS = 200000
TARGET_RSS_MB = 30.0


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- helpers

def gen_records(path, count, prefix, seed, kyb_ratio):
    """Writes count deterministic records (scripts/gen_records.py) to path."""
    with open(path, "wb") as f:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_records.py"), "--count", str(count),
                        "--seed", str(seed), "--prefix", prefix, "--kyb-ratio", str(kyb_ratio)],
                       stdout=f, check=True, timeout=600)
    return path


def tool(name):
    path = os.path.join(TOOLS, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError("%s is not built: run `make bench-tools` (or `make bench`)" % path)
    return path


def run_json(cmd, timeout):
    """Runs a bench tool that prints one JSON object; returns it."""
    r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("%s -> %d: %s" % (" ".join(cmd), r.returncode, r.stderr.decode()[-2000:]))
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def median_by(runs, key):
    runs = sorted(runs, key=key)
    return runs[len(runs) // 2]


def ratio(a, b):
    return a / b if a is not None and b else None


class CaseCounter:
    """Counts the cases listed over REST (GET /v1/cases) cheaply: the list is ordered
    by the position that created each case and the projector applies the log in
    order, so full pages never change; only the last, partial page is read again.
    Keeps the client ids it saw on full pages (checked after the clock stops)."""

    PAGE = 500

    def __init__(self, dossier):
        self.d = dossier
        self.cursor = None
        self.full = 0
        self.clients = []
        self.tail = []
        self.requests = 0
        self.errors = 0
        self.last_error = None

    def count(self):
        while True:
            q = "/v1/cases?limit=%d" % self.PAGE + ("&cursor=" + self.cursor if self.cursor else "")
            r = self.d.get(q)
            self.requests += 1
            if r.status != 200:
                raise RuntimeError("GET %s -> %r" % (q, r))
            page = r.json()
            if page.get("next_cursor"):
                self.full += len(page["items"])
                self.clients += [c["client_id"] for c in page["items"]]
                self.cursor = page["next_cursor"]
                continue
            self.tail = [c["client_id"] for c in page["items"]]
            return self.full + len(page["items"])

    def settle(self, total, timeout, quiet_s=3.0):
        """Waits until total cases are listed or the count stops moving for quiet_s;
        returns the count (for runs that may leave some records unanswered)."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            n = self.safe_count()
            if n is not None and n >= total:
                return n
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return n
            time.sleep(0.2)
        return last

    def client_ids(self):
        self.count()
        return self.clients + self.tail

    def safe_count(self):
        """count(), or None while the gateway answers an error (e.g. a 503 while its
        database is busy): a transient refusal is a reason to ask again, not to fail."""
        try:
            return self.count()
        except (RuntimeError, OSError, ValueError) as e:
            self.errors += 1
            self.last_error = str(e)[:300]
            return None

    def wait(self, total, timeout, interval=0.02, progress=None):
        """Polls until at least total cases are listed; returns the monotonic time it saw them."""
        deadline = time.monotonic() + timeout
        next_note = time.monotonic() + 10
        while True:
            n = self.safe_count()
            if n is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("listing cases keeps failing: %s" % self.last_error)
                time.sleep(0.2)
                continue
            now = time.monotonic()
            if n >= total:
                return now
            if now > deadline:
                raise RuntimeError("only %d of %d cases listed over REST after %.0f s" % (n, total, timeout))
            if progress and now >= next_note:
                log("%s: %d/%d cases readable" % (progress, n, total))
                next_note = now + 10
            time.sleep(interval)


def rss_snapshot(d):
    """{"name#instance": {"pid", "rss_mb", "hwm_mb"}} of the supervisor and every process."""
    procs = [("supervisor", 0, d.proc.pid)] + [(p["name"], p["instance"], p["pid"]) for p in d.status()
                                                  if p["state"] == "running"]
    out = {}
    for name, inst, pid in procs:
        try:
            with open("/proc/%d/status" % pid) as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            out["%s#%d" % (name, inst)] = {
                "pid": pid,
                "rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024.0, 2),
                "hwm_mb": round(int(fields["VmHWM"].split()[0]) / 1024.0, 2)}
        except (OSError, KeyError, ValueError):
            pass
    return out


def cpu_snapshot(d):
    """{"name#instance": (pid, cpu seconds so far)} of the supervisor and every process:
    on a shared machine, CPU time per process says where Dossier's time goes whatever
    else runs beside it."""
    tick = float(os.sysconf("SC_CLK_TCK"))
    procs = [("supervisor", 0, d.proc.pid)] + [(p["name"], p["instance"], p["pid"]) for p in d.status()
                                                  if p["state"] == "running"]
    out = {}
    for name, inst, pid in procs:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out["%s#%d" % (name, inst)] = (pid, (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, IndexError, ValueError):
            pass
    return out


def cpu_delta(before, after):
    """CPU seconds each process spent between two snapshots (same pid only)."""
    return {k: round(v[1] - before[k][1], 2) for k, v in after.items() if k in before and before[k][0] == v[0]}


def counters_by_label(d, family, label):
    """Sums a counter family of the merged GET /metrics by one label's value: e.g. the
    store's appends by outcome (how many were answered `expired`). {} when unreadable."""
    try:
        r = d.get("/metrics", timeout=10)
    except OSError:
        return {}
    if r.status != 200:
        return {}
    out = {}
    pattern = re.compile(r'^%s\{([^}]*)\}\s+([0-9.eE+-]+)$' % re.escape(family))
    for line in r.body.decode("utf-8", "replace").splitlines():
        m = pattern.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        key = labels.get(label, "")
        out[key] = out.get(key, 0) + int(float(m.group(2)))
    return out


def start_dossier(**kw):
    d = Dossier(**kw)
    try:
        d.start(timeout=60)
    except Exception:
        print(d.tail_log(80))
        d.kill()
        raise
    return d


def stop_dossier(d, keep=False):
    if d is None:
        return
    try:
        d.stop(timeout=60)
    except Exception as e:  # noqa: BLE001 - a failed stop must not hide the results
        log("stopping Dossier: %s" % e)
    d.kill()
    if keep:
        log("Dossier files kept in %s" % d.dir)
    else:
        d.cleanup()


def ingest_file(d, path, counter, expected_new_total, label, timeout):
    """`dossier ingest path` and the clock until every case is listed. Returns a dict."""
    events_before = d.event_count()
    cpu_before = cpu_snapshot(d)
    cli_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen([os.path.join(BIN_DIR, "dossier"), "--config", d.config, "ingest", path,
                             "--json", "--quiet", "--timeout", str(int(timeout))],
                            env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    next_note = t0 + 10
    while proc.poll() is None:
        time.sleep(0.2)
        if time.monotonic() >= next_note:
            log("%s: %s cases readable, %.0f s" % (label, counter.safe_count(), time.monotonic() - t0))
            next_note += 10
    out, err = proc.communicate()
    t_acked = time.monotonic()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)      # the CLI's own CPU, now reaped
    if proc.returncode not in (0, 2):
        raise RuntimeError("dossier ingest -> %d: %s" % (proc.returncode, err.decode()[-2000:]))
    summary = json.loads(out)
    total = expected_new_total(summary)
    t_done = counter.wait(total, timeout=max(120.0, timeout), progress=label)
    seconds = t_done - t0
    cpu = cpu_delta(cpu_before, cpu_snapshot(d))
    cpu["dossier-cli"] = round(ru.ru_utime + ru.ru_stime - cli_cpu.ru_utime - cli_cpu.ru_stime, 2)
    events = d.event_count() - events_before
    result = {
        "records": summary["accepted"] + summary["rejected"] + summary.get("unanswered", 0),
        "accepted": summary["accepted"], "new": summary["new"], "duplicate": summary["duplicate"],
        "rejected": summary["rejected"], "unanswered": summary.get("unanswered", 0),
        "reject_samples": summary.get("errors", [])[:5],
        "events": events, "events_per_record": round(events / max(1, summary["new"]), 2),
        "seconds_acknowledged": round(t_acked - t0, 3), "seconds_readable": round(seconds, 3),
        "records_per_s": round(summary["new"] / seconds, 1), "events_per_s": round(events / seconds, 1),
        "rest_polls": counter.requests,
        "cpu_seconds_by_process": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
        "cpu_ms_per_record": round(1000.0 * sum(cpu.values()) / max(1, summary["new"]), 3),
    }
    top = list(result["cpu_seconds_by_process"].items())[:5]
    log("%s: CPU seconds by process: %s (total %.1f s for %.1f s of wall clock)"
        % (label, ", ".join("%s %.1f" % kv for kv in top), sum(cpu.values()), seconds))
    return result


# ---------------------------------------------------------------- wrk, nginx

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def wrk(url, connections, seconds):
    threads = min(2, connections)
    r = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % seconds, "--latency", url],
                       capture_output=True, timeout=seconds + 60)
    text = r.stdout.decode()
    if r.returncode != 0:
        raise RuntimeError("wrk %s -> %d: %s %s" % (url, r.returncode, text[-1000:], r.stderr.decode()[-1000:]))
    out = {"connections": connections, "threads": threads, "seconds": seconds}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s(?:\.0+)?%%\s+(\S+)" % pct, text, re.M)
        out["p%s_ms" % pct] = round(_ms(m.group(1)), 3) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", text)
    out["socket_errors"] = m.group(1).strip() if m else None
    return out


def combine_wrk(runs):
    """One figure from rounds of the same wrk run: requests/s and percentiles are the
    means over the rounds (each round is listed too)."""
    if len(runs) == 1:
        return runs[0]
    out = dict(runs[0])
    for k in ("rps", "p50_ms", "p75_ms", "p90_ms", "p99_ms"):
        vals = [r[k] for r in runs if r.get(k) is not None]
        out[k] = round(sum(vals) / len(vals), 3) if vals else None
    out["requests"] = sum(r["requests"] or 0 for r in runs)
    out["non_2xx"] = sum(r["non_2xx"] for r in runs)
    out["seconds"] = sum(r["seconds"] for r in runs)
    out["rounds"] = [{k: r.get(k) for k in ("rps", "p50_ms", "p99_ms")} for r in runs]
    return out


class Nginx:
    """nginx serving files from a temp dir on a free port, one worker (see README)."""

    def __init__(self, base, files, content_type, workers=1):
        self.dir = os.path.join(base, "nginx")
        self.www = os.path.join(self.dir, "www")
        os.makedirs(self.www)
        # nginx's workers run as nobody when started as root: they must read the files
        for p in (base, self.dir, self.www):
            os.chmod(p, 0o755)
        for name, body in files.items():
            with open(os.path.join(self.www, name), "wb") as f:
                f.write(body)
            os.chmod(os.path.join(self.www, name), 0o644)
        self.port = free_port()
        temp = os.path.join(self.dir, "temp")
        os.makedirs(temp)
        conf = """worker_processes %d;
daemon off;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    open_file_cache max=64 inactive=600s;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    types { }
    default_type "%s";
    server {
        listen 127.0.0.1:%d;
        root %s;
    }
}
""" % (workers, self.dir, self.dir, temp, temp, temp, temp, temp, content_type, self.port, self.www)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr"), "wb"),
                                     start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: %s" % open(os.path.join(self.dir, "stderr")).read())
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        wait_for(up, 20, what="nginx on port %d" % self.port)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def http_get_raw(port, path):
    """(status, content-type, body bytes) with urllib."""
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.base = tempfile.mkdtemp(prefix="bench-", dir="/tmp")
        self.details = {}
        self.figures = []
        self.errors = {}
        self.d = None
        self.counter = None
        self.epr = 8.0          # events per record, refined by the first ingestion

    # -- figures ---------------------------------------------------------------
    def figure(self, name, value, unit, limit=None, limit_name=None, target=None, passed=None, note=None):
        self.figures.append({
            "name": name, "value": None if value is None else round(value, 3), "unit": unit,
            "limit": None if limit is None else round(limit, 3), "limit_name": limit_name,
            "ratio": None if value is None or not limit else round(value / limit, 3),
            "target": target, "pass": passed, "note": note})

    def section(self, name, fn):
        if name not in self.args.only:
            return
        log("== %s" % name)
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the others
            traceback.print_exc()
            self.errors[name] = "%s: %s" % (type(e).__name__, e)
            if self.d is not None:
                try:
                    print(self.d.digest_log())
                except OSError:
                    pass
        log("== %s done in %.0f s" % (name, time.monotonic() - t0))

    # -- the embedded Dossier shared by most sections --------------------------
    def dossier(self):
        if self.d is None:
            self.d = start_dossier()
            self.counter = CaseCounter(self.d)
            time.sleep(1.0)     # let start-up settle before the idle snapshot
            self.details.setdefault("memory", {})["idle_after_start"] = rss_snapshot(self.d)
        return self.d

    def ensure_cases(self, n=2000):
        """Some cases to read (sections run alone)."""
        d = self.dossier()
        if self.counter.count() >= min(n, 1):
            return
        path = gen_records(os.path.join(self.base, "seed.jsonl"), n, "SEED", 11, self.args.kyb_ratio)
        base = self.counter.count()
        ingest_file(d, path, self.counter, lambda s: base + s["new"], "seed", 600)

    # -- 1. ingestion --------------------------------------------------------------
    def run_ingest(self):
        d = self.dossier()
        a = self.args
        path = gen_records(os.path.join(self.base, "records.jsonl"), a.records, "BENCH", a.seed, a.kyb_ratio)
        self.records_path = path
        base = self.counter.count()
        log("ingesting %d records (kyb ratio %.2f) with `dossier ingest`" % (a.records, a.kyb_ratio))
        res = ingest_file(d, path, self.counter, lambda s: base + s["new"], "ingest", 3600)
        # Correctness after the clock: every generated client has exactly one case.
        ids = [c for c in self.counter.client_ids() if c.startswith("BENCH-")]
        res["listed"] = len(ids)
        res["listed_distinct"] = len(set(ids))
        res["missing"] = a.records - res["rejected"] - len(set(ids))
        res["kyb_ratio"] = a.kyb_ratio
        res["load_avg"] = loadavg()
        self.epr = max(1.0, res["events_per_record"])
        self.details["ingest_embedded"] = res
        # Idle, as for after_rebuild: the clock stops the moment the projector commits
        # its last batch, when it is still handing its catch-up memory back (~200 ms).
        time.sleep(1.0)
        self.details.setdefault("memory", {})["after_ingest"] = rss_snapshot(d)
        log("ingest: %(new)d records, %(events)d events in %(seconds_readable).2f s: "
            "%(records_per_s).0f records/s, %(events_per_s).0f events/s, %(rejected)d rejected" % res)

    # -- 1b. the limits of ingestion -------------------------------------------------
    def run_raw(self):
        d = self.dossier()
        if "ingest_embedded" not in self.details:
            self.ensure_cases()
        src = os.path.join(d.data, "events.db")
        dst = os.path.join(self.base, "raw_store.db")
        sync = d.env.get("DOSSIER_SQLITE_SYNCHRONOUS", "full")
        log("raw_store: bulk insert of the same event rows, batches of %d, synchronous=%s" % (self.args.batch, sync))
        extra = [arg for p in self.args.raw_pragma for arg in ("--pragma", p)]
        rs = run_json([tool("raw_store"), "sqlite", src, dst, "--batch", str(self.args.batch),
                       "--synchronous", sync] + extra, timeout=1800)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(dst + suffix):
                os.unlink(dst + suffix)
        rs["load_avg"] = loadavg()
        self.details["raw_store_sqlite"] = rs
        log("raw_store: %(events)d events in %(seconds).2f s (cpu %(cpu_seconds).2f s): "
            "%(events_per_s).0f events/s, %(appends_per_s).0f records/s" % rs)
        runs = []
        for _ in range(self.args.repeat):
            runs.append(run_json([tool("raw_zmq"), "--events", src, "--max", str(self.args.zmq_messages),
                                  "--dir", self.base], timeout=600))
        rz = median_by(runs, lambda r: r["dealer_router"]["msgs_per_s"])
        rz["runs"] = [{"dealer_router": r["dealer_router"]["msgs_per_s"], "push_pull": r["push_pull"]["msgs_per_s"]}
                      for r in runs]
        self.details["raw_zmq_store_append"] = rz
        log("raw_zmq store.append (%d B avg): DEALER/ROUTER %.0f msg/s, PUSH/PULL %.0f msg/s"
            % (rz["avg_bytes"], rz["dealer_router"]["msgs_per_s"], rz["push_pull"]["msgs_per_s"]))
        if getattr(self, "records_path", None):
            rc = run_json([tool("raw_zmq"), "--records", self.records_path, "--max", str(self.args.zmq_messages),
                           "--dir", self.base], timeout=600)
            self.details["raw_zmq_create_case"] = rc
            log("raw_zmq cmd.create_case (%d B avg): DEALER/ROUTER %.0f msg/s, PUSH/PULL %.0f msg/s"
                % (rc["avg_bytes"], rc["dealer_router"]["msgs_per_s"], rc["push_pull"]["msgs_per_s"]))

    # -- 2. HTTP reads ------------------------------------------------------------------
    def run_http(self):
        d = self.dossier()
        self.ensure_cases()
        # A fixed, realistic id: the first KYB case of the run (deterministic for a seed).
        page = d.get("/v1/cases?traitement_type=KYB&limit=1").json()
        case_id = page["items"][0]["case_id"]
        paths = {"case": "/v1/cases/%s" % case_id, "list": "/v1/cases?traitement_type=KYB&limit=50"}
        bodies, ctype = {}, None
        for name, path in paths.items():
            status, ctype, body = http_get_raw(d.port, path)
            assert status == 200, (path, status)
            bodies[name + ".json"] = body
        ng = Nginx(self.base, bodies, ctype or "application/json", workers=self.args.nginx_workers)
        ng.start()
        res = {"case_id": case_id, "paths": paths, "content_type": ctype,
               "body_bytes": {k: len(v) for k, v in bodies.items()}, "nginx_workers": self.args.nginx_workers,
               "runs": []}
        try:
            for name, path in paths.items():
                for c in self.args.http_connections:
                    pair = {"endpoint": name, "connections": c}
                    urls = {"gateway": "http://127.0.0.1:%d%s" % (d.port, path),
                            "nginx": "http://127.0.0.1:%d/%s.json" % (ng.port, name)}
                    # On a shared machine the load drifts: two half-length rounds in the
                    # order gateway, nginx, nginx, gateway cancel a steady drift.
                    rounds = 2 if self.args.http_seconds >= 4 else 1
                    secs = max(1, self.args.http_seconds // rounds)
                    order = ["gateway", "nginx", "nginx", "gateway"][:2 * rounds]
                    got = {"gateway": [], "nginx": []}
                    if not self.args.quick:
                        for who in ("gateway", "nginx"):
                            wrk(urls[who], c, 1)                 # warm-up: connections, caches
                    for who in order:
                        got[who].append(wrk(urls[who], c, secs))
                    for who, runs in got.items():
                        pair[who] = combine_wrk(runs)
                    pair["ratio"] = ratio(pair["gateway"]["rps"], pair["nginx"]["rps"])
                    pair["load_avg"] = loadavg()
                    res["runs"].append(pair)
                    g, n = pair["gateway"], pair["nginx"]
                    log("%-4s c=%-3d gateway %8.0f req/s p50 %.3f p99 %.3f ms | nginx %8.0f req/s p50 %.3f "
                        "p99 %.3f ms | ratio %.2f%s"
                        % (name, c, g["rps"], g["p50_ms"], g["p99_ms"], n["rps"], n["p50_ms"], n["p99_ms"],
                           pair["ratio"] or 0, "  (gateway non-2xx: %d)" % g["non_2xx"] if g["non_2xx"] else ""))
        finally:
            ng.stop()
        self.details["http"] = res

    # -- 3. end-to-end latency --------------------------------------------------------
    def run_latency(self):
        a = self.args
        phases = [("latency_http", a.latency_rate, a.latency_seconds)]
        if a.latency_light_rate:
            phases.append(("latency_http_light", a.latency_light_rate, a.latency_light_seconds))
        for key, rate_, seconds in phases:
            self.latency_phase(key, rate_, seconds)

    # record prefixes of the latency runs (distinct clients, so every record is a new case)
    PREFIXES = {"latency_http": "LAT", "latency_http_light": "LATL",
                "latency_kafka": "KLAT", "latency_kafka_light": "KLATL"}

    def latency_phase(self, key, rate_, seconds, d=None, counter=None, extra=()):
        """One fixed-rate run of build/bench/latency (POST, or produce with `extra`)."""
        d = d or self.dossier()
        counter = counter or self.counter
        a = self.args
        n = int(rate_ * seconds)
        prefix = self.PREFIXES[key]
        path = gen_records(os.path.join(self.base, key + ".jsonl"), n, prefix, a.seed + len(prefix), a.kyb_ratio)
        base = counter.count()
        log("%s: %s %d records at %d/s for %.0f s, watch %s every %.1f ms"
            % (key, "produce" if extra else "POST", n, rate_, seconds,
               "the list's tail" if a.watch == "list" else "each case by id", a.poll_ms))
        r = subprocess.run([tool("latency"), "--url", "http://127.0.0.1:%d" % d.port, "--records", path,
                            "--rate", str(rate_), "--seconds", str(seconds), "--poll-ms", str(a.poll_ms),
                            "--watch", a.watch,
                            "--timeout", str(a.latency_drain)] + list(extra), capture_output=True,
                           timeout=seconds + a.latency_drain + 120)
        if not r.stdout.strip():
            raise RuntimeError("latency -> %d: %s" % (r.returncode, r.stderr.decode()[-2000:]))
        res = json.loads(r.stdout.decode().strip().splitlines()[-1])
        res["saturated"] = res["achieved_rate"] < 0.95 * rate_ or res["unfinished"] > 0
        res["load_avg"] = loadavg()
        self.details[key] = res
        rd, ack = res["readable_ms"] or {}, res["ack_ms"] or {}
        log("%s: %d/%d readable, achieved %.0f/s%s; produce->readable p50 %s p99 %s max %s ms; ack p99 %s ms"
            % (key, res["readable"], res["records"], res["achieved_rate"],
               " (SATURATED: Dossier did not keep up)" if res["saturated"] else "",
               rd.get("p50"), rd.get("p99"), rd.get("max"), ack.get("p99")))
        # Records still in the pipeline must not leak into the next measurement.
        settled = counter.settle(base + res["sent"], timeout=600)
        res["listed_after_settling"] = (settled or 0) - base

    # -- 4. rebuild over >= 1M events (+ 5. memory after) ------------------------------
    def run_rebuild(self):
        d = self.dossier()
        a = self.args
        have = d.event_count()
        if have < a.rebuild_events:
            need = int(math.ceil((a.rebuild_events - have) / self.epr * 1.02)) + 10
            path = gen_records(os.path.join(self.base, "fill.jsonl"), need, "FILL", a.seed + 2, a.kyb_ratio)
            log("rebuild: the log holds %d events; ingesting %d more records to pass %d"
                % (have, need, a.rebuild_events))
            base = self.counter.count()
            fill = ingest_file(d, path, self.counter, lambda s: base + s["new"], "fill", 3600)
            fill["load_avg"] = loadavg()
            self.details["ingest_fill"] = fill
            log("fill: %(new)d records, %(events)d events in %(seconds_readable).1f s: %(records_per_s).0f records/s"
                % fill)
            os.unlink(path)
        total = d.event_count()
        target = os.path.join(self.base, "rebuilt.db")
        log("rebuild: dossier rebuild --to %s over %d events" % (target, total))
        cpu_before = cpu_snapshot(d)
        t0 = time.monotonic()
        r = d.cli("rebuild", "--to", target, "--json", "--quiet", "--timeout", "600", timeout=3600, check=True)
        wall = time.monotonic() - t0
        cpu = cpu_delta(cpu_before, cpu_snapshot(d))
        done = json.loads(r.stdout.decode().strip().splitlines()[-1])
        res = {"log_events": total, "rebuilt_events": done.get("events"), "seconds_projector": done.get("seconds"),
               "seconds_wall": round(wall, 3),
               "events_per_s": round(done["events"] / done["seconds"], 1) if done.get("seconds") else None,
               "events_per_s_wall": round(done.get("events", 0) / wall, 1), "load_avg": loadavg(),
               "cpu_seconds_by_process": {k: v for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v > 0}}
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(target + suffix):
                os.unlink(target + suffix)
        self.details["rebuild"] = res
        time.sleep(1.0)
        self.details.setdefault("memory", {})["after_rebuild"] = rss_snapshot(d)
        self.details["memory"]["log_events_at_end"] = total
        log("rebuild: %s events in %s s (projector's clock), %.1f s wall: %s events/s"
            % (res["rebuilt_events"], res["seconds_projector"], wall, res["events_per_s"]))

    def run_memory(self):
        d = self.dossier()
        mem = self.details.setdefault("memory", {})
        mem["now"] = rss_snapshot(d)
        mem["log_events_now"] = d.event_count()

    # -- Kafka -> MongoDB wire -------------------------------------------------------
    def run_kafka(self):
        from ferretdb_harness import FerretDB
        from kafka_harness import Kafka, setup_topics
        a = self.args
        kafka = ferret = d = None
        try:
            log("kafka: starting a Kafka broker and FerretDB")
            kafka = Kafka()
            kafka.start()
            ferret = FerretDB()
            ferret.start()
            env = setup_topics(kafka, "bench")
            env["DOSSIER_KAFKA_BROKERS"] = kafka.bootstrap
            d = start_dossier(backend="mongodb", mongodb_uri=ferret.uri, extra_env=env)
            kafka.wait_group_assigned(env["DOSSIER_KAFKA_GROUP"], env["DOSSIER_KAFKA_TOPIC"])
            counter = CaseCounter(d)
            path = gen_records(os.path.join(self.base, "kafka.jsonl"), a.kafka_records, "KAF", a.seed + 3,
                               a.kyb_ratio)
            with open(path) as f:
                records = [(json.loads(line)["client_id"], line.rstrip("\n")) for line in f if line.strip()]
            log("kafka: producing %d records to %s (clock starts now), Dossier consuming as they arrive"
                % (len(records), env["DOSSIER_KAFKA_TOPIC"]))
            t0 = time.monotonic()
            kafka.produce(env["DOSSIER_KAFKA_TOPIC"], records, timeout=600)
            t_produced = time.monotonic()
            finished = True
            try:
                t_done = counter.wait(len(records), timeout=a.kafka_timeout, interval=0.1, progress="kafka")
                readable = len(records)
            except RuntimeError as e:
                # Report how far it got rather than wait for ever (bench/README.md).
                log("kafka: NOT FINISHED: %s" % e)
                finished, t_done = False, time.monotonic()
                readable = counter.safe_count() or 0
            seconds = t_done - t0
            events = d.event_count()
            ids = counter.client_ids() if finished else []
            res = {"records": len(records), "finished": finished, "readable": readable, "events": events,
                   "seconds_produce": round(t_produced - t0, 3), "seconds_readable": round(seconds, 3),
                   "records_per_s": round(readable / seconds, 1), "events_per_s": round(events / seconds, 1),
                   "listed_distinct": len(set(ids)) if finished else None,
                   "missing": len(records) - len(set(ids)) if finished else None,
                   "store": "mongodb (FerretDB 1.24.2, tests/ferretdb)", "rest_list_errors": counter.errors,
                   "load_avg": loadavg()}
            # The wasted work, if any: appends the store refused as expired (the handler had
            # given up on them), and ingest's retries after 503s and timeouts.
            res["store_appends"] = counters_by_label(d, "dossier_store_appends_total", "outcome")
            res["ingest_results"] = counters_by_label(d, "dossier_ingest_results_total", "outcome")
            res["ingest_kafka_retries"] = sum(counters_by_label(d, "dossier_ingest_kafka_retries_total",
                                                                "process").values())
            dlt = kafka.end_offsets(env["DOSSIER_KAFKA_TOPIC"] + ".DLT")
            res["dead_letters"] = sum(dlt.values())
            res["memory"] = rss_snapshot(d)
            self.details["ingest_kafka_mongodb"] = res
            log("kafka: %(readable)d of %(records)d records (%(events)d events) readable in %(seconds_readable).1f s: "
                "%(records_per_s).0f records/s (%(dead_letters)d dead letters; store appends %(store_appends)s, "
                "ingest retries %(ingest_kafka_retries)d)" % res)
            raw_db = d.mongodb_database + "_raw"
            log("raw_store mongodb: the same documents into %s" % raw_db)
            rs = run_json([tool("raw_store"), "mongodb", ferret.uri, d.mongodb_database, raw_db,
                           "--batch", str(a.batch), "--w", d.env.get("DOSSIER_MONGODB_WRITE_CONCERN", "majority"),
                           "--journal", d.env.get("DOSSIER_MONGODB_JOURNAL", "true")], timeout=3600)
            rs["load_avg"] = loadavg()
            self.details["raw_store_mongodb"] = rs
            log("raw_store mongodb: %(events)d events in %(seconds).2f s: %(events_per_s).0f events/s, "
                "%(appends_per_s).0f records/s" % rs)
            if a.kafka_latency:
                stop_dossier(d)
                d = None
                self.kafka_latency(kafka)
        finally:
            if d is not None:
                if "ingest_kafka_mongodb" not in self.details:
                    try:
                        print(d.digest_log())
                    except OSError:
                        pass
                stop_dossier(d)     # drops its databases (the _raw copy too)
            if ferret is not None:
                ferret.stop()
                ferret.cleanup()
            if kafka is not None:
                kafka.stop()
                kafka.cleanup()

    def kafka_latency(self, kafka):
        """Produce -> readable: records produced to Kafka at a fixed rate, consumed by an
        embedded (SQLite) Dossier, each polled over REST from its delivery report on."""
        from kafka_harness import setup_topics
        a = self.args
        env = setup_topics(kafka, "benchlat")
        env["DOSSIER_KAFKA_BROKERS"] = kafka.bootstrap
        d = start_dossier(extra_env=env)
        try:
            kafka.wait_group_assigned(env["DOSSIER_KAFKA_GROUP"], env["DOSSIER_KAFKA_TOPIC"])
            counter = CaseCounter(d)
            extra = ["--kafka", kafka.bootstrap, "--topic", env["DOSSIER_KAFKA_TOPIC"]]
            self.latency_phase("latency_kafka", a.latency_rate, a.latency_seconds, d, counter, extra)
            if a.latency_light_rate:
                self.latency_phase("latency_kafka_light", a.latency_light_rate, a.latency_light_seconds,
                                   d, counter, extra)
        finally:
            stop_dossier(d)

    # -- all ----------------------------------------------------------------------------
    def run(self):
        try:
            self.section("ingest", self.run_ingest)
            self.section("raw", self.run_raw)
            self.section("http", self.run_http)
            self.section("latency", self.run_latency)
            self.section("rebuild", self.run_rebuild)
            self.section("memory", self.run_memory)
        finally:
            stop_dossier(self.d, keep=bool(self.errors))
            self.d = None
        self.section("kafka", self.run_kafka)
        shutil.rmtree(self.base, ignore_errors=True)
        self.summarise()

    # -- figures, targets, table ---------------------------------------------------
    def summarise(self):
        det = self.details
        ing, rs, rz = det.get("ingest_embedded"), det.get("raw_store_sqlite"), det.get("raw_zmq_store_append")
        if ing:
            raw_rps = rs["appends_per_s"] if rs else None
            self.figure("ingest.embedded.records_per_s", ing["records_per_s"], "records/s", raw_rps,
                        "raw_store sqlite (records/s equivalent)",
                        ">= %d and >= %.1f x limit" % (TARGET_INGEST_RPS, TARGET_INGEST_RAW_RATIO),
                        ing["records_per_s"] >= TARGET_INGEST_RPS
                        and (ratio(ing["records_per_s"], raw_rps) or 0) >= TARGET_INGEST_RAW_RATIO,
                        "%d records, %.1f events each, %d rejected" % (ing["new"], ing["events_per_record"],
                                                                      ing["rejected"]))
            self.figure("ingest.embedded.events_per_s", ing["events_per_s"], "events/s",
                        rs["events_per_s"] if rs else None, "raw_store sqlite")
            if rz:
                self.figure("ingest.embedded.vs_zmq_dealer_router", ing["records_per_s"], "records/s",
                            rz["dealer_router"]["msgs_per_s"], "raw_zmq store.append DEALER/ROUTER msg/s")
                self.figure("ingest.embedded.vs_zmq_push_pull", ing["records_per_s"], "records/s",
                            rz["push_pull"]["msgs_per_s"], "raw_zmq store.append PUSH/PULL msg/s")
        elif rs:
            self.figure("raw_store.sqlite.events_per_s", rs["events_per_s"], "events/s")
        fill = det.get("ingest_fill")
        if fill:
            self.figure("ingest.embedded_fill.records_per_s", fill["records_per_s"], "records/s",
                        rs["appends_per_s"] if rs else None, "raw_store sqlite (records/s equivalent)",
                        note="%d more records into a log already holding the first run's" % fill["new"])
        kf = det.get("ingest_kafka_mongodb")
        if kf:
            rm = det.get("raw_store_mongodb")
            self.figure("ingest.kafka_mongodb.records_per_s", kf["records_per_s"], "records/s",
                        rm["appends_per_s"] if rm else None, "raw_store mongodb (records/s equivalent)",
                        note="%d records, FerretDB; clock includes producing%s" % (
                            kf["records"], "" if kf["finished"] else "; NOT FINISHED: %d readable after %.0f s"
                            % (kf["readable"], kf["seconds_readable"])))
        http = det.get("http")
        if http:
            for run in http["runs"]:
                g, n = run["gateway"], run["nginx"]
                name = "http.%s.c%d" % (run["endpoint"], run["connections"])
                target = passed = None
                if run["endpoint"] == "case" and run["connections"] == 64:
                    target = ">= %.1f x nginx, p99 <= %.0f ms" % (TARGET_HTTP_RATIO, TARGET_HTTP_P99_MS)
                    passed = (run["ratio"] or 0) >= TARGET_HTTP_RATIO and g["p99_ms"] is not None \
                        and g["p99_ms"] <= TARGET_HTTP_P99_MS and not g["non_2xx"]
                self.figure(name + ".rps", g["rps"], "req/s", n["rps"], "nginx static file", target, passed)
                self.figure(name + ".p50_ms", g["p50_ms"], "ms", n["p50_ms"], "nginx static file")
                self.figure(name + ".p99_ms", g["p99_ms"], "ms", n["p99_ms"], "nginx static file")
        for key, label in (("latency_http", "latency.http_post_to_readable"),
                           ("latency_http_light", "latency_light.http_post_to_readable"),
                           ("latency_kafka", "latency.kafka_produce_to_readable"),
                           ("latency_kafka_light", "latency_light.kafka_produce_to_readable")):
            lat = det.get(key)
            if not lat or not lat.get("readable_ms"):
                continue
            p99 = lat["readable_ms"]["p99"]
            main = key in ("latency_http", "latency_kafka")
            note = "at %.0f records/s target, %.0f achieved, %d of %d readable%s" % (
                lat["target_rate"], lat["achieved_rate"], lat["readable"], lat["records"],
                "; SATURATED" if lat["saturated"] else "")
            self.figure(label + ".p50_ms", lat["readable_ms"]["p50"], "ms", note=note)
            self.figure(label + ".p99_ms", p99, "ms", target="<= %.0f ms" % TARGET_E2E_P99_MS if main else None,
                        passed=(p99 is not None and p99 <= TARGET_E2E_P99_MS
                                and lat["readable"] == lat["records"]) if main else None,
                        note=note if p99 is not None else note + " (p99 unbounded: >1% never readable)")
        rb = det.get("rebuild")
        if rb:
            self.figure("rebuild.events_per_s", rb["events_per_s"], "events/s", target=">= %d" % TARGET_REBUILD_EPS,
                        passed=(rb["events_per_s"] or 0) >= TARGET_REBUILD_EPS and rb["log_events"] >= 1000000,
                        note="%d events replayed" % (rb["rebuilt_events"] or 0))
        mem = det.get("memory", {})
        snaps = [k for k in ("idle_after_start", "after_ingest", "after_rebuild", "now") if k in mem]
        if snaps:
            worst = {}
            for k in snaps:
                for proc, v in mem[k].items():
                    worst[proc] = max(worst.get(proc, 0), v["rss_mb"])
            over = sorted(p for p, v in worst.items() if v > TARGET_RSS_MB)
            top = max(worst.items(), key=lambda kv: kv[1])
            self.figure("memory.max_rss_mb", top[1], "MB", target="each process <= %.0f MB" % TARGET_RSS_MB,
                        passed=not over, note="largest: %s; over: %s" % (top[0], ", ".join(over) or "none"))
            if "after_ingest" in mem and "after_rebuild" in mem:
                growth = {}
                for proc, v in mem["after_rebuild"].items():
                    before = mem["after_ingest"].get(proc)
                    if before and before["pid"] == v["pid"]:
                        growth[proc] = round(v["rss_mb"] - before["rss_mb"], 2)
                grown = sorted(p for p, g in growth.items()
                               if g > max(2.0, 0.10 * mem["after_ingest"][p]["rss_mb"]))
                mem["growth_mb_ingest_to_rebuild"] = growth
                self.figure("memory.growth_after_1m_events_mb", max(growth.values()) if growth else None, "MB",
                            target="flat: each process grows <= max(2 MB, 10%)", passed=not grown,
                            note="grown: %s (log %d events)" % (", ".join(grown) or "none",
                                                                mem.get("log_events_at_end", 0)))

    def write(self, path):
        doc = {
            "command": self.args.command_line,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine(),
            "git": git_info(),
            "settings": {k: v for k, v in vars(self.args).items() if k not in ("command_line",)},
            "figures": self.figures,
            "errors": self.errors,
            "details": self.details,
        }
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=False)
            f.write("\n")
        return doc


def machine():
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = round(int(f.readline().split()[1]) / 1024.0 / 1024.0, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "memory_gb": mem, "load_avg_at_end": loadavg(), "python": platform.python_version()}


def git_info():
    def git(*args):
        r = subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, timeout=30)
        return r.stdout.decode().strip() if r.returncode == 0 else None
    status = git("status", "--porcelain") or ""
    return {"commit": git("rev-parse", "HEAD"), "describe": git("log", "-1", "--format=%h %s"),
            "uncommitted_files": len([line for line in status.splitlines() if line.strip()])}


def print_table(doc):
    rows = [("figure", "value", "limit", "ratio", "target", "ok")]
    for f in doc["figures"]:
        v = f["value"]
        rows.append((f["name"], "-" if v is None else ("%.3g" % v if abs(v) < 100 else "%.0f" % v) + " " + f["unit"],
                     "-" if f["limit"] is None else ("%.3g" % f["limit"] if abs(f["limit"]) < 100
                                                     else "%.0f" % f["limit"]),
                     "-" if f["ratio"] is None else "%.2f" % f["ratio"],
                     f["target"] or "",
                     {True: "PASS", False: "FAIL", None: ""}[f["pass"]]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    m = doc["machine"]
    print("\nmachine: %s cores, %s, kernel %s; commit %s (+%d uncommitted files)"
          % (m["nproc"], m["cpu_model"], m["kernel"], (doc["git"]["commit"] or "?")[:10],
             doc["git"]["uncommitted_files"]))
    for name, err in doc["errors"].items():
        print("section %s FAILED: %s" % (name, err))


def markdown_table(doc):
    """The figures of a results file as a Markdown table (for bench/README.md)."""
    def num(v):
        if v is None:
            return "-"
        return "%.3g" % v if abs(v) < 100 else "{:,.0f}".format(v)
    lines = ["| figure | value | limit | ratio | target | |", "|---|---:|---:|---:|---|---|"]
    for f in doc["figures"]:
        lines.append("| `%s` | %s %s | %s | %s | %s | %s |" % (
            f["name"], num(f["value"]), f["unit"], num(f["limit"]) + (" (%s)" % f["limit_name"] if f["limit"] else ""),
            "-" if f["ratio"] is None else "%.2f" % f["ratio"], f["target"] or "",
            {True: "pass", False: "**fail**", None: ""}[f["pass"]]))
    m, g = doc["machine"], doc["git"]
    lines.append("")
    lines.append("%s, `%s`; %s cores (%s), %s GB, kernel %s; load average at the end %s; commit `%s`%s."
                 % (doc["date"], doc["command"], m["nproc"], m["cpu_model"], m["memory_gb"], m["kernel"],
                    m["load_avg_at_end"], (g["commit"] or "?")[:10],
                    " + %d uncommitted files" % g["uncommitted_files"] if g["uncommitted_files"] else ""))
    return "\n".join(lines)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (< 1 min): checks the harness, not the speed")
    ap.add_argument("--only", default=None, help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--skip", default="", help="comma-separated sections to leave out")
    ap.add_argument("--records", type=int, help="records of the embedded ingestion (default 50000; quick 2000)")
    ap.add_argument("--kyb-ratio", type=float, default=0.4, help="share of KYB records (default 0.4)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1000, help="raw_store: events per transaction / insert_many")
    ap.add_argument("--raw-pragma", action="append", default=[], metavar="NAME=VALUE",
                    help="raw_store: a PRAGMA the store sets beyond WAL + synchronous (repeatable)")
    ap.add_argument("--zmq-messages", type=int, default=50000, help="raw_zmq: envelopes per run")
    ap.add_argument("--repeat", type=int, default=3, help="raw_zmq runs (the median is kept)")
    ap.add_argument("--http-seconds", type=int, help="wrk duration per run (default 10; quick 2)")
    ap.add_argument("--http-connections", default="1,16,64")
    ap.add_argument("--nginx-workers", type=int, default=1)
    ap.add_argument("--latency-rate", type=int, default=1000)
    ap.add_argument("--latency-seconds", type=float, help="default 20; quick 3")
    ap.add_argument("--latency-drain", type=float, default=30.0,
                    help="seconds after the last send before unread records count as never readable")
    ap.add_argument("--latency-light-rate", type=int, help="a second, light-load latency run (default 100/s "
                    "for 10 s; 0 = none; quick: none)")
    ap.add_argument("--latency-light-seconds", type=float, default=10.0)
    ap.add_argument("--poll-ms", type=float, default=1.0)
    ap.add_argument("--watch", choices=("list", "get"), default="list",
                    help="latency: how readability is watched (bench/latency.c): list = the tail "
                         "of GET /v1/cases every --poll-ms + one GET by id per record (default); "
                         "get = GET by id of every record every --poll-ms")
    ap.add_argument("--rebuild-events", type=int, help="size of the log to rebuild (default 1000000; quick 20000)")
    ap.add_argument("--kafka-records", type=int, help="records produced to Kafka (default 2000; quick 300)")
    ap.add_argument("--no-kafka-latency", dest="kafka_latency", action="store_false",
                    help="kafka section: leave out produce -> readable into an embedded Dossier")
    ap.add_argument("--kafka-timeout", type=float, default=240.0,
                    help="longest wait for the Kafka records to be readable (then reported as not finished)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench", "results.json"))
    ap.add_argument("--report", metavar="RESULTS.json",
                    help="measure nothing: print the figures of an earlier results file as a Markdown table")
    a = ap.parse_args(argv)
    q = a.quick
    a.records = a.records or (2000 if q else 50000)
    a.http_seconds = a.http_seconds or (2 if q else 10)
    a.latency_seconds = a.latency_seconds or (3 if q else 20)
    a.rebuild_events = a.rebuild_events or (20000 if q else 1000000)
    if a.latency_light_rate is None:
        a.latency_light_rate = 0 if q else 100
    a.kafka_records = a.kafka_records or (300 if q else 2000)
    if q:
        a.zmq_messages = min(a.zmq_messages, 5000)
        a.repeat = 1
    a.http_connections = [int(c) for c in a.http_connections.split(",") if c]
    # --quick leaves Kafka out unless asked for: a JVM broker alone takes half a minute
    default = [s for s in SECTIONS if not (q and s == "kafka")]
    a.only = [s.strip() for s in a.only.split(",")] if a.only else default
    unknown = [s for s in a.only if s not in SECTIONS]
    if unknown:
        ap.error("unknown section(s): %s" % ", ".join(unknown))
    a.only = [s for s in a.only if s not in a.skip.split(",")]
    a.command_line = "bench/run.py " + " ".join(argv)
    return a


def _interrupt(*_):
    """SIGTERM ends the run like Ctrl-C: every started process is stopped on the way out."""
    raise KeyboardInterrupt()


def main(argv):
    args = parse_args(argv)
    if args.report:
        with open(args.report) as f:
            print(markdown_table(json.load(f)))
        return 0
    if not os.access(os.path.join(BIN_DIR, "dossier-supervisor"), os.X_OK):
        sys.exit("no Dossier binaries in %s: run `make bench`" % BIN_DIR)
    for exe in (["wrk", "nginx"] if "http" in args.only else []):
        if not shutil.which(exe):
            sys.exit("%s is not installed: scripts/install-deps.sh installs it" % exe)
    log("sections: %s; load average %s; output %s" % (",".join(args.only), loadavg(), args.out))
    bench = Bench(args)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        bench.errors["interrupted"] = "stopped before the end"
        shutil.rmtree(bench.base, ignore_errors=True)
        bench.summarise()
    doc = bench.write(args.out)
    print_table(doc)
    log("results in %s" % args.out)
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
