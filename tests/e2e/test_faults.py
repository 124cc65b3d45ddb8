"""Faults: kill -9 the store, a handler and a projector while 1,000 records are
being ingested. After the supervisor restarts them every case is readable once,
and the read models equal a fresh replay of the log (`dossier rebuild --to`)."""
import json
import os
import signal
import subprocess
import sys
import time

from dossier_harness import ROOT, BIN_DIR, wait_for

N = 1000


def _kill(dossier, name, restarts_before):
    pids = wait_for(lambda: dossier.pids(name), 20, what="a running %s" % name)
    os.kill(pids[0], signal.SIGKILL)
    # the supervisor notices and restarts it
    wait_for(lambda: any(p["name"] == name and p["restarts"] > restarts_before.get((name, p["instance"]), 0)
                         and p["state"] == "running" for p in dossier.status()),
             30, what="%s restarted" % name)


def test_kill9_during_ingest_loses_nothing(fresh_dossier, tmp_path):
    d = fresh_dossier
    path = tmp_path / "records.jsonl"
    with open(path, "w") as f:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_records.py"),
                        "--count", str(N), "--seed", "42", "--prefix", "FAULT"], stdout=f, check=True)
    restarts = {(p["name"], p["instance"]): p["restarts"] for p in d.status()}
    ingest = subprocess.Popen([os.path.join(BIN_DIR, "dossier"), "--config", d.config, "ingest", str(path),
                               "--json", "--timeout", "240"],
                              env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait until ingestion is under way, then kill one of each while it runs
    wait_for(lambda: d.event_count() > 200, 60, what="ingestion under way")
    _kill(d, "store", restarts)
    _kill(d, "handler", restarts)
    _kill(d, "projector", restarts)
    out, err = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, (out, err[-3000:])
    summary = json.loads(out)
    assert summary["accepted"] == N and summary["rejected"] == 0, summary

    # every case readable, none twice
    def all_cases():
        items = [c for c in d.list_all("") if c["client_id"].startswith("FAULT-")]
        return items if len(items) >= N else None
    items = wait_for(all_cases, 120, interval=0.5, what="%d cases readable" % N)
    assert len(items) == N
    assert len({c["client_id"] for c in items}) == N
    assert len(d.events_of_type("CaseCreated")) == N

    # the live read models equal a replay of the whole log
    head = d.event_count()
    wait_for(lambda: d.projector_checkpoint() >= head, 60, what="projector caught up")
    target = d.rebuild_target(tmp_path)
    d.cli("rebuild", "--to", target, check=True, timeout=120)
    live = d.read_models()
    rebuilt = d.read_models(target)
    assert live.keys() == rebuilt.keys()
    for table in live:
        assert live[table] == rebuilt[table], "read model %s differs from a replay of the log" % table


def test_supervisor_restarts_a_killed_gateway_and_status_reports_it(fresh_dossier):
    d = fresh_dossier
    before = {(p["name"], p["instance"]): p["restarts"] for p in d.status()}
    names = {p["name"] for p in d.status()}
    assert {"store", "broker", "handler", "projector", "notifier", "gateway", "ingest"} <= names
    assert all(p["state"] == "running" and p["pid"] > 0 for p in d.status())
    _kill(d, "gateway", before)
    wait_for(lambda: d.get("/ready").status == 200, 30, what="gateway back")
    started = time.monotonic()
    r = d.cli("status", timeout=10, check=True)
    assert b"gateway" in r.stdout and time.monotonic() - started < 10
