"""MongoDB unreachable for 10 s while records are being ingested and posted: the
store retries with backoff and acknowledges nothing meanwhile, the gateway's /ready
answers 503 while its database is down (and the store's own /ready on its metrics port
says why, while its /healthz stays 200: waiting is not stuck), and afterwards everything resumes by itself
with nothing lost (every record a case, once; positions gapless). Runs on a private
FerretDB (tests/e2e/ferretdb_harness.py) so that stopping it disturbs no other test."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from dossier_harness import ROOT, BIN_DIR, Dossier, wait_for
from test_metrics_port import _free_range, _get

N = 300
OUTAGE_S = 10.0


@pytest.fixture
def outage_setup(request):
    from ferretdb_harness import FerretDB
    server = FerretDB().start()
    base = _free_range(16)
    d = Dossier(backend="mongodb", mongodb_uri=server.uri,
                extra_env={"DOSSIER_METRICS_PORT": "127.0.0.1:%d" % base})
    d.metrics_base = base
    try:
        d.start()
    except Exception:
        print(d.tail_log(200))
        d.kill()
        server.stop()
        raise
    yield server, d
    code = d.stop()
    d.kill()
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    if failed:
        print("---- dossier log (tail) ----\n" + d.tail_log(200))
        print("---- ferretdb log (tail) ----\n" + server.tail_log(40))
    server.stop()
    assert code == 0, "supervisor exit code %s\n%s" % (code, d.tail_log(80))
    if not failed:
        d.cleanup()
        server.cleanup()


def test_mongodb_down_10s_loses_nothing_and_resumes(outage_setup, tmp_path, kyc_record):
    server, d = outage_setup
    path = tmp_path / "records.jsonl"
    with open(path, "w") as f:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_records.py"),
                        "--count", str(N), "--seed", "7", "--prefix", "OUTAGE"], stdout=f, check=True)
    ingest = subprocess.Popen([os.path.join(BIN_DIR, "dossier"), "--config", d.config, "ingest", str(path),
                               "--json", "--timeout", "240"],
                              env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: d.event_count() > 100, 60, what="ingestion under way")

    server.stop()
    down_at = time.monotonic()
    # While the database is down: a POST is not acknowledged, and /ready says 503.
    posted = {}

    def post():
        posted["r"] = d.post("/v1/cases", kyc_record, headers={"Idempotency-Key": '"outage-1"'}, timeout=60)
    poster = threading.Thread(target=post)
    poster.start()
    ready_503 = wait_for(lambda: d.get("/ready", timeout=5).status == 503, OUTAGE_S - 1, interval=0.2,
                         what="gateway /ready 503 while MongoDB is down")
    assert ready_503
    # The store's own port: not ready, and why; alive all the same.
    rows = d.status()
    store_port = d.metrics_base + 1 + next(i for i, r in enumerate(rows) if r["name"] == "store")
    wait_for(lambda: _get(store_port, "/ready")[0] == 503, OUTAGE_S - 1, interval=0.2,
             what="the store's /ready 503 while MongoDB is down")
    assert "MongoDB" in _get(store_port, "/ready")[2]
    assert _get(store_port, "/healthz")[0] == 200
    left = OUTAGE_S - (time.monotonic() - down_at)
    if left > 0:
        poster.join(left)
    if "r" in posted:
        assert posted["r"].status not in (200, 201), \
            "a case was acknowledged while MongoDB was down: %r" % posted["r"]
    assert time.monotonic() - down_at >= OUTAGE_S - 0.5 or "r" in posted

    # back after 10 s, on the same port and data: everything resumes by itself
    wait_for(lambda: time.monotonic() - down_at >= OUTAGE_S, OUTAGE_S + 1, interval=0.1, what="the outage")
    server.start()
    poster.join(90)
    out, err = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, (out, err[-3000:])
    summary = json.loads(out)
    assert summary["accepted"] == N and summary["rejected"] == 0, summary
    wait_for(lambda: d.get("/ready").status == 200, 60, interval=0.2, what="gateway /ready 200 again")
    wait_for(lambda: _get(store_port, "/ready")[0] == 200, 60, interval=0.2, what="the store's /ready 200 again")

    # the post made during the outage, retried with its key, opens its case exactly once
    r = wait_for(lambda: (lambda r: r if r.status in (200, 201) else None)(
        d.post("/v1/cases", kyc_record, headers={"Idempotency-Key": '"outage-1"'})), 60, interval=0.5,
        what="the outage POST retried")
    case_id = r.json()["case_id"]
    d.wait_get("/v1/cases/%s" % case_id)

    # nothing lost, nothing twice, positions gapless
    def all_cases():
        items = [c for c in d.list_all("") if c["client_id"].startswith("OUTAGE-")]
        return items if len(items) >= N else None
    items = wait_for(all_cases, 120, interval=0.5, what="%d cases readable" % N)
    assert len(items) == N and len({c["client_id"] for c in items}) == N
    created = d.events_of_type("CaseCreated")
    assert len(created) == len(set(created)) == N + 1
    positions = []
    for doc in d._mongo_db()["events"].find({}, {"events.position": 1}):
        positions += [e["position"] for e in doc["events"]]
    assert sorted(positions) == list(range(1, len(positions) + 1)), "positions are not gapless"
    wait_for(lambda: d.projector_checkpoint() >= len(positions), 60, what="projector caught up")
