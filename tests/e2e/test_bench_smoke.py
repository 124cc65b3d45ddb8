"""Keeps the benchmark harness (bench/run.py, `make bench`) from rotting: runs it in
a tiny --quick mode against a fresh Dossier and checks that every section produced
its figures and that every generated record became a case. Nothing about speed is
asserted: performance is measured by `make bench`, never by tests."""
import json
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from dossier_harness import BIN_DIR, ROOT  # noqa: E402

TOOLS = ("raw_store", "raw_zmq", "latency")


def _bench_dir():
    """The bench tools beside the binaries under test (build/ or build-san/), brought
    up to date here (make does nothing when they are) so that `pytest tests/e2e` after
    `make all` works too."""
    build = os.path.dirname(BIN_DIR)
    bench = os.path.join(build, "bench")
    sanitize = ["SANITIZE=1"] if os.path.basename(build) == "build-san" else []
    r = subprocess.run(["make", "-s", "-C", ROOT] + sanitize
                       + [os.path.relpath(os.path.join(bench, t), ROOT) for t in TOOLS],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, "building the bench tools failed:\n%s%s" % (r.stdout.decode(), r.stderr.decode())
    return bench


def test_bench_quick_runs_every_section(tmp_path):
    env = dict(os.environ, DOSSIER_BIN_DIR=BIN_DIR, DOSSIER_BENCH_DIR=_bench_dir())
    out = tmp_path / "results.json"
    sections = ["ingest", "raw", "latency", "rebuild", "memory"]
    if shutil.which("wrk") and shutil.which("nginx"):
        sections.insert(2, "http")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--quick",
                        "--only", ",".join(sections), "--records", "300", "--zmq-messages", "300",
                        "--http-seconds", "1", "--http-connections", "1,16", "--latency-rate", "200",
                        "--latency-seconds", "1", "--rebuild-events", "3000", "--out", str(out)],
                       env=env, capture_output=True, timeout=170)
    log = r.stdout.decode()[-6000:] + r.stderr.decode()[-3000:]
    assert r.returncode == 0, "bench/run.py --quick -> %d\n%s" % (r.returncode, log)
    doc = json.loads(out.read_text())
    assert doc["errors"] == {}, log
    names = {f["name"] for f in doc["figures"]}
    expected = {"ingest.embedded.records_per_s", "ingest.embedded.vs_zmq_dealer_router",
                "latency.http_post_to_readable.p99_ms", "rebuild.events_per_s", "memory.max_rss_mb",
                "memory.growth_after_1m_events_mb"}
    if "http" in sections:
        expected |= {"http.case.c16.rps", "http.list.c1.p99_ms"}
    assert expected <= names, "missing figures: %s\n%s" % (sorted(expected - names), log)
    det = doc["details"]
    ingest = det["ingest_embedded"]
    assert (ingest["new"], ingest["rejected"], ingest["missing"]) == (300, 0, 0), ingest
    assert ingest["listed_distinct"] == 300, ingest
    assert det["raw_store_sqlite"]["events"] == ingest["events"], (det["raw_store_sqlite"], ingest)
    assert det["latency_http"]["readable"] == det["latency_http"]["records"], det["latency_http"]
    assert det["rebuild"]["rebuilt_events"] == det["rebuild"]["log_events"] >= 3000, det["rebuild"]
    if "http" in sections:
        for run in det["http"]["runs"]:
            assert run["gateway"]["non_2xx"] == 0 and run["gateway"]["requests"] > 0, run
            assert run["nginx"]["non_2xx"] == 0 and run["nginx"]["requests"] > 0, run
