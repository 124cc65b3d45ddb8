"""Notification and document rules from an external configuration service (issue 5),
against a real HTTP service (tests/config_service/server.py) that each test steers:
rule changes after the TTL with ETag revalidation, the service down while 500 cases
arrive (every case created, every due notification made once it is back, none twice,
even with the scheduler killed -9), malformed and slow answers, inactive rules and
unknown triggers, and the rule provenance of every NotificationRequired."""
import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import _start
from dossier_harness import BIN_DIR, ROOT, wait_for

sys.path.insert(0, os.path.join(ROOT, "tests", "config_service"))
from harness import ConfigService  # noqa: E402

TTL_MS = 600

# Short timers so a test sees TTLs, cool-downs and probes within seconds.
SETTINGS = {
    "DOSSIER_CONFIG_SERVICE_TTL_MS": str(TTL_MS),
    "DOSSIER_CONFIG_SERVICE_BREAKER_COOLDOWN_MS": "500",
    "DOSSIER_CONFIG_SERVICE_RETRY_MS": "300",
    "DOSSIER_SCHEDULER_RETRY_MS": "200",
}


def _rules(version, **overrides):
    with open(os.path.join(ROOT, "config", "rules.json")) as f:
        rules = json.load(f)
    rules["version"] = version
    rules.update(overrides)
    return rules


@pytest.fixture
def service():
    svc = ConfigService(_rules("svc-1")).start()
    yield svc
    svc.stop()


@pytest.fixture
def cs_dossier(request, service):
    """Factory: a private Dossier whose rules come from `service`, with env on top."""
    started = []

    def make(**env):
        gen = _start(request, extra_env=dict(SETTINGS, DOSSIER_CONFIG_SERVICE_URL=service.url, **env))
        d = next(gen)
        started.append(gen)
        return d
    yield make
    errors = []
    for gen in reversed(started):
        try:
            next(gen, None)
        except AssertionError as e:
            errors.append(e)
    if errors:
        raise errors[0]


# -- looking at the log -----------------------------------------------------------

def _events(d, type_=None, stream=None):
    """[(stream, type, data)] in log order, read straight from the event log."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.data, "events.db"), uri=True, timeout=10)
    try:
        sql, args = "SELECT stream, type, data FROM events WHERE 1=1", []
        if type_:
            sql += " AND type = ?"
            args.append(type_)
        if stream:
            sql += " AND stream = ?"
            args.append(stream)
        rows = con.execute(sql + " ORDER BY position", args).fetchall()
    finally:
        con.close()
    return [(s, t, json.loads(bytes(data) if not isinstance(data, str) else data)) for s, t, data in rows]


def _trace_ids(d, type_):
    """{stream: trace id of its event of type_} from the events' traceparent metadata."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.data, "events.db"), uri=True, timeout=10)
    try:
        rows = con.execute("SELECT stream, traceparent FROM events WHERE type = ?", (type_,)).fetchall()
    finally:
        con.close()
    return {stream: tp.split("-")[1] for stream, tp in rows if tp}


def _notifications(d, stream=None):
    return [data for _, _, data in _events(d, "NotificationRequired", stream)]


def _create(d, record, client_id):
    rec = copy.deepcopy(record)
    rec["client_id"] = client_id
    t0 = time.monotonic()
    r = d.post("/v1/cases", rec)
    elapsed = time.monotonic() - t0
    assert r.status == 201, r
    return r.json()["case_id"], elapsed


def _handler_pids(d):
    return sorted(p["pid"] for p in d.status() if p["name"] == "handler")


def _relayed(d):
    path = os.path.join(d.data, "notifications.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _scheduler_pending(d):
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.data, "scheduler.db"), uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM pending").fetchone()[0]
    finally:
        con.close()


def _warm_every_handler(d, record, prefix):
    """Creates cases until every handler has fetched the CASE_CREATED rules of record's
    context (which handler gets a case is the broker's hashing), so each has them cached."""
    pids = set(_handler_pids(d))
    key = "trigger=CASE_CREATED&traitement_type=%s" % record["traitement_type"]

    def warmed():
        _create(d, record, "%s-%f" % (prefix, time.monotonic()))
        with open(d.log_path, "rb") as f:
            lines = [json.loads(x) for x in f.read().decode("utf-8", "replace").splitlines() if x.startswith("{")]
        return pids <= {x["pid"] for x in lines if x.get("process") == "handler" and key in x.get("msg", "")}
    wait_for(warmed, 30, interval=0.01, what="every handler to cache the rules")


def _after(seconds):
    """A condition that becomes true once `seconds` have passed (TTLs are about time)."""
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() >= deadline


# -- the tests -----------------------------------------------------------------------

def test_rule_change_is_picked_up_after_the_ttl(cs_dossier, service, kyc_record):
    d = cs_dossier()
    pids = _handler_pids(d)
    case_a, _ = _create(d, kyc_record, "TTL-A")
    (n,) = _notifications(d, case_a)
    assert (n["rule_id"], n["rules_version"], n["template_id"]) == ("NTF-KYC-CREATED", "svc-1", "kyc_case_opened")

    # unchanged rules past the TTL: revalidated with If-None-Match, answered 304
    _warm_every_handler(d, kyc_record, "TTL-WARM")
    wait_for(_after(TTL_MS / 1000.0 + 0.2), 5, what="the TTL to pass")
    case_b, _ = _create(d, kyc_record, "TTL-B")
    assert _notifications(d, case_b)[0]["rules_version"] == "svc-1"
    stats = service.stats()
    assert stats["conditional"] >= 1 and stats["not_modified"] >= 1, stats

    # a new rule set: every case decided once the TTL has passed uses it
    rules = _rules("svc-2")
    rules["notifications"][0]["template_id"] = "kyc_case_opened_v2"
    changed = time.monotonic()
    service.set_rules(rules)
    seen = wait_for(lambda: (lambda c: _notifications(d, c)[0] if _notifications(d, c)[0]["rules_version"] == "svc-2"
                             else None)(_create(d, kyc_record, "TTL-C-%f" % time.monotonic())[0]),
                    TTL_MS / 1000.0 + 10, interval=0.1, what="a notification under rules svc-2")
    picked_up = time.monotonic() - changed
    assert seen["template_id"] == "kyc_case_opened_v2"
    assert picked_up < TTL_MS / 1000.0 + 2, picked_up
    wait_for(_after(TTL_MS / 1000.0), 5, what="every handler's TTL to pass")
    for i in range(4):                      # both handlers, whichever gets the case
        case, _ = _create(d, kyc_record, "TTL-D-%d" % i)
        assert _notifications(d, case)[0]["rules_version"] == "svc-2"
    assert _handler_pids(d) == pids         # nothing was restarted
    stats = service.stats()
    # connections are reused: far fewer connections than requests
    assert stats["rules_connections"] < stats["rules_requests"], stats
    print("rule change picked up after %.2f s (ttl %.1f s); %d rule requests over %d connections"
          % (picked_up, TTL_MS / 1000.0, stats["rules_requests"], stats["rules_connections"]))


N = 500


def test_service_down_while_500_cases_arrive(cs_dossier, service, tmp_path):
    d = cs_dossier(DOSSIER_SCHEDULER_MAX_INFLIGHT="8")
    service.stop()                          # down before any rule was fetched: nothing cached
    path = tmp_path / "records.jsonl"
    with open(path, "w") as f:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_records.py"),
                        "--count", str(N), "--seed", "5", "--prefix", "DOWN"], stdout=f, check=True)
    t0 = time.monotonic()
    r = d.cli("ingest", str(path), "--json", check=True, timeout=120)
    took = time.monotonic() - t0
    summary = json.loads(r.stdout)
    assert summary["new"] == N and summary["rejected"] == 0 and summary["unanswered"] == 0, summary
    print("500 cases with the configuration service down: %.2f s" % took)
    assert took < 30, took
    assert len(_events(d, "CaseCreated")) == N
    # no decision was skipped: each case has its CASE_CREATED decision deferred, in the log
    deferred = _events(d, "NotificationDecisionDeferred")
    assert len(deferred) == N and {e[2]["trigger"] for e in deferred} == {"CASE_CREATED"}
    assert _notifications(d) == []
    # document requirements fell back to the local rules file, and say so
    docs = [e[2] for e in _events(d, "DocumentRequirementDetermined")]
    assert docs and all(x["rules_origin"] == "rules_file" and x["rules_version"] == "2026-11-22.1" for x in docs)

    # back: every deferred decision is made, exactly once, even with the scheduler killed -9
    service.start()
    back = time.monotonic()
    wait_for(lambda: len(_events(d, "NotificationDecisionResolved")) >= 20, 60, what="resolutions under way")
    sched = d.pids("scheduler")
    os.kill(sched[0], signal.SIGKILL)
    at_kill = len(_events(d, "NotificationDecisionResolved"))
    wait_for(lambda: len(_events(d, "NotificationDecisionResolved")) == N, 90, interval=0.2,
             what="every deferred decision made")
    print("scheduler killed -9 after %d of %d resolutions; all made %.2f s after the service came back"
          % (at_kill, N, time.monotonic() - back))
    wait_for(lambda: d.pids("scheduler") and _scheduler_pending(d) == 0, 30, what="the scheduler to have nothing left")
    resolved = [e[2] for e in _events(d, "NotificationDecisionResolved")]
    assert len({x["deferral_id"] for x in resolved}) == N          # each once
    notes = _notifications(d)
    assert len(notes) == N                  # one CASE_CREATED rule matches each case
    keys = [(n["case_id"], n["trigger"], n["rule_id"]) for n in notes]
    assert len(set(keys)) == len(keys), "a notification was made twice"
    assert all(n["rules_version"] == "svc-1" and n["deferral_id"] for n in notes)
    assert {i for x in resolved for i in x["notification_ids"]} == {n["notification_id"] for n in notes}
    # and the notifier relays each one
    wait_for(lambda: len(_relayed(d)) >= N, 30, what="notifications relayed")
    assert len({x["id"] for x in _relayed(d)}) == N
    # trace context: each file record started a trace at ingest, and the scheduler's
    # resolution (kill -9 or not) went on in the trace of the deferral it resolved
    created, deferred_traces = _trace_ids(d, "CaseCreated"), _trace_ids(d, "NotificationDecisionDeferred")
    assert len(created) == N and len(set(created.values())) == N
    assert deferred_traces == created
    assert _trace_ids(d, "NotificationDecisionResolved") == created


def test_malformed_answers_use_cached_rules_and_never_crash(cs_dossier, service, kyc_record, kyb_record):
    d = cs_dossier()
    pids = _handler_pids(d)
    _warm_every_handler(d, kyc_record, "MAL-WARM")
    service.behave("malformed", body='{"version": "bad", "rules": [{"rule_id": ')
    wait_for(_after(TTL_MS / 1000.0 + 0.2), 5, what="the TTL to pass")
    case, _ = _create(d, kyc_record, "MAL-KYC")
    (n,) = _notifications(d, case)
    assert n["rules_version"] == "svc-1"    # stale-if-error: the cached rules
    # never cached (KYB): deferred, not dropped; wrong types are as malformed as cut-off JSON
    service.behave("malformed", body='{"version": 7, "rules": "none"}')
    case_b, _ = _create(d, kyb_record, "MAL-KYB")
    assert _notifications(d, case_b) == []
    assert [e[2]["trigger"] for e in _events(d, "NotificationDecisionDeferred", case_b)] == ["CASE_CREATED"]
    wait_for(lambda: "malformed answer" in d.tail_log(400), 10, what="a log line about the malformed answer")
    line = [x for x in d.tail_log(400).splitlines() if "malformed answer" in x][0]
    assert '"level":"warn"' in line and "config service" in line, line
    assert _handler_pids(d) == pids and all(p["restarts"] == 0 for p in d.status())
    # the service heals: the deferred decision is made with its rules
    service.behave("ok")
    wait_for(lambda: _notifications(d, case_b), 30, what="the deferred KYB notification")
    (nb,) = _notifications(d, case_b)
    assert (nb["rule_id"], nb["rules_version"]) == ("NTF-KYB-CREATED", "svc-1")


def test_inactive_rules_and_unknown_triggers_notify_nobody(cs_dossier, service, kyc_record):
    rules = _rules("quiet-1")
    for r in rules["notifications"]:
        if r["trigger"] in ("CASE_CREATED", "DOCUMENT_REJECTED"):
            r["is_active"] = False
    rules["notifications"].append({"rule_id": "NTF-ESCALATED", "trigger": "CASE_ESCALATED", "is_active": True,
                                   "notification_type": "EMAIL", "template_id": "escalated", "language_code": "en"})
    service.set_rules(rules)
    d = cs_dossier()
    case, _ = _create(d, kyc_record, "QUIET-1")
    docs = d.wait_get("/v1/cases/%s/documents" % case)["items"]
    r = d.post("/v1/documents/%s/status" % docs[0]["document_id"], {"status": "UPLOADED"})
    assert r.status == 200, r
    r = d.post("/v1/documents/%s/status" % docs[0]["document_id"], {"status": "REJECTED", "reason": "blurred"})
    assert r.status == 200, r
    assert _notifications(d, case) == []    # inactive: decided, nobody notified
    assert _events(d, "NotificationDecisionDeferred") == []   # and not deferred either
    # the unknown trigger's rule never fires; the service was asked only about Dossier's own
    queries = service.stats()["queries"]
    assert queries and not any("CASE_ESCALATED" in q for q in queries)
    assert _relayed(d) == []


def test_every_notification_records_its_rule_and_version(cs_dossier, service, kyc_record):
    rules = _rules("prov-7")
    rules["notifications"].append({"rule_id": "NTF-APPROVED-SMS", "trigger": "CASE_APPROVED", "is_active": True,
                                   "notification_type": "SMS", "template_id": "approved_sms", "language_code": "fr"})
    service.set_rules(rules)
    by_id = {r["rule_id"]: r for r in rules["notifications"]}
    d = cs_dossier()
    case, _ = _create(d, kyc_record, "PROV-1")
    docs = d.wait_get("/v1/cases/%s/documents" % case)["items"]
    for doc in docs:
        assert d.post("/v1/documents/%s/status" % doc["document_id"], {"status": "UPLOADED"}).status == 200
    assert d.post("/v1/documents/%s/status" % docs[0]["document_id"],
                  {"status": "REJECTED", "reason": "expired"}).status == 200
    assert d.post("/v1/documents/%s/status" % docs[0]["document_id"], {"status": "UPLOADED"}).status == 200
    for doc in docs:
        assert d.post("/v1/documents/%s/status" % doc["document_id"], {"status": "VERIFIED"}).status == 200
    assert d.post("/v1/cases/%s/decision" % case, {"decision": "APPROVE", "reason": "ok"}).status == 200
    other, _ = _create(d, kyc_record, "PROV-2")
    d.wait_get("/v1/cases/" + other)       # the gateway knows cases from the read models
    assert d.post("/v1/cases/%s/decision" % other, {"decision": "REJECT", "reason": "sanctions"}).status == 200

    notes = _notifications(d)
    triggers = sorted(n["trigger"] for n in notes)
    assert triggers == sorted(["CASE_CREATED", "ALL_DOCUMENTS_RECEIVED", "DOCUMENT_REJECTED", "ALL_DOCUMENTS_RECEIVED",
                               "CASE_APPROVED", "CASE_APPROVED", "CASE_CREATED", "CASE_REJECTED"]), triggers
    for n in notes:
        rule = by_id[n["rule_id"]]          # the rule that produced it ...
        assert n["rules_version"] == "prov-7"   # ... and the rule set's version
        assert (n["trigger"], n["notification_type"], n["template_id"], n["language_code"]) == \
            (rule["trigger"], rule["notification_type"], rule["template_id"], rule["language_code"])
        rd = n["recipient_details"]
        assert rd["case_id"] == n["case_id"] and rd["person_id"] and not ({"email", "phone"} & set(rd))
        assert n["context_data"]["case_id"] == n["case_id"]
    created = [n for n in notes if n["trigger"] == "CASE_CREATED"][0]
    assert sorted(created["context_data"]["required_documents"]) == ["IDENTITY_DOCUMENT", "PROOF_OF_ADDRESS"]
    # what leaves Dossier carries the provenance too
    wait_for(lambda: len(_relayed(d)) == len(notes), 20, what="notifications relayed")
    assert all(x["rule_id"] and x["rules_version"] == "prov-7" for x in _relayed(d))


def test_slow_service_never_holds_a_case_beyond_the_timeout(cs_dossier, service, kyc_record):
    d = cs_dossier()
    service.behave("slow", delay_ms=3000)   # far beyond the 500 ms request timeout
    latencies, cases = [], []
    for i in range(12):
        case, took = _create(d, kyc_record, "SLOW-%d" % i)
        latencies.append(took)
        cases.append(case)
    print("POST /v1/cases with a 3 s config service: max %.3f s, median %.3f s"
          % (max(latencies), sorted(latencies)[len(latencies) // 2]))
    assert max(latencies) < 1.5, latencies   # timeout 500 ms + hold slack, never the 3 s
    deferred = {e[0] for e in _events(d, "NotificationDecisionDeferred")}
    assert deferred == set(cases)
    service.behave("ok")
    wait_for(lambda: len(_notifications(d)) == len(cases), 30, what="every deferred notification made")
    assert {n["case_id"] for n in _notifications(d)} == set(cases)
