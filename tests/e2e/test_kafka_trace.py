"""W3C trace context from a Kafka record to the notification it causes: a record with a
`traceparent` header becomes a command carrying the trace; every event appended for it
records a span of that trace in its metadata (the log, and the case's audit trail over
REST); handler, store, projector and notifier log that trace id on their lines about it;
and the notification on Kafka has a `traceparent` header of the same trace with a span
of the notifier's. A malformed header is ignored: a trace starts at ingest instead."""
import json
import os
import re
import sqlite3

from dossier_harness import wait_for
from kafka_harness import gen_records, setup_topics, wait_cases

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
TP_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def _log_entries(d):
    with open(d.log_path, "rb") as f:
        return [json.loads(line) for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]


def _stored_traceparents(d, case_id):
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.data, "events.db"), uri=True, timeout=10)
    try:
        return [(r[0], r[1]) for r in con.execute(
            "SELECT type, traceparent FROM events WHERE stream = ? ORDER BY version", (case_id,))]
    finally:
        con.close()


def _notification_headers(kafka, topic, case_id):
    return [dict(m["headers"]) for m in kafka.consume(topic) if m["key"] == case_id]


def test_traceparent_from_a_kafka_record_to_its_notification(kafka, kafka_dossier):
    env = setup_topics(kafka, "trace")
    topic, notify = env["DOSSIER_KAFKA_TOPIC"], env["DOSSIER_NOTIFY_TOPIC"]
    # debug: the store's, projector's and notifier's lines about one event are debug lines
    d = kafka_dossier(DOSSIER_LOG_LEVEL="debug", **env)
    kafka.wait_group_assigned(env["DOSSIER_KAFKA_GROUP"], topic)
    traced, malformed = gen_records(2, "TRC", seed=909, kyb_ratio=0.0)
    kafka.produce(topic, [traced], headers=[("traceparent", "00-%s-%s-01" % (TRACE, SPAN))])
    kafka.produce(topic, [malformed], headers=[("traceparent", "00-%s-%s-01" % (TRACE.upper(), SPAN))])
    wait_cases(d, "TRC-", 2)
    case_id = d.wait_get("/v1/cases?client_id=%s" % traced[0])["items"][0]["case_id"]
    other_id = d.wait_get("/v1/cases?client_id=%s" % malformed[0])["items"][0]["case_id"]

    # The log: every event of the command has the same traceparent, of the producer's
    # trace, with a span that is not the producer's (the handler's own).
    stored = _stored_traceparents(d, case_id)
    assert stored and "NotificationRequired" in [t for t, _ in stored], stored
    assert len({tp for _, tp in stored}) == 1, stored
    m = TP_RE.match(stored[0][1] or "")
    assert m and m.group(1) == TRACE and m.group(2) != SPAN, stored[0]
    event_tp = stored[0][1]
    # The malformed header was ignored: a new, valid trace of its own.
    other = _stored_traceparents(d, other_id)
    m_other = TP_RE.match(other[0][1] or "")
    assert m_other and m_other.group(1) not in (TRACE, TRACE.upper()), other

    # The audit trail shows it as the log has it.
    trail = d.wait_get("/v1/cases/%s/events" % case_id)["events"]
    assert len(trail) == len(stored)
    assert all(e.get("traceparent") == event_tp for e in trail), trail

    # The notification: same trace, the notifier's span (neither the producer's nor the event's).
    headers = wait_for(lambda: _notification_headers(kafka, notify, case_id) or None, 60,
                       what="the traced case's notification on Kafka")
    for h in headers:
        m = TP_RE.match(h.get("traceparent", ""))
        assert m and m.group(1) == TRACE, h
        assert m.group(2) not in (SPAN, event_tp.split("-")[2]), h
        assert h.get("ce_id") and h.get("ce_specversion") == "1.0", h
    other_headers = wait_for(lambda: _notification_headers(kafka, notify, other_id) or None, 60,
                             what="the other case's notification on Kafka")
    assert all(TP_RE.match(h.get("traceparent", "")).group(1) == m_other.group(1) for h in other_headers)

    # The logs: each process's lines about this record carry its trace id.
    def traced_lines():
        lines = [e for e in _log_entries(d) if e.get("trace_id") == TRACE]
        have = {e["process"] for e in lines}
        return lines if {"ingest", "handler", "store", "projector", "notifier"} <= have else None
    lines = wait_for(traced_lines, 30, what="trace id on ingest, handler, store, projector and notifier lines")
    for process in ("handler", "store", "projector", "notifier"):
        assert any(e["process"] == process and e.get("case_id") == case_id for e in lines), process
    # and no line about the other record carries this trace
    assert not [e for e in lines if e.get("case_id") == other_id], lines
