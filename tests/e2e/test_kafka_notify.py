"""Notifications on Kafka, read back with kcat: one message per NotificationRequired
event of the log (every trigger, not only case creation), keyed by case id, with the
`id` header and the CloudEvents binding. A notifier killed with -9 mid-stream re-sends
at most what it had not checkpointed: duplicates carry the same `id` and are counted."""
import json
import os
import signal

from dossier_harness import wait_for
from kafka_harness import check_notifications, events, gen_records, setup_topics, wait_cases


def _set_doc(d, doc_id, status, reason=None):
    r = d.post("/v1/documents/%s/status" % doc_id, dict({"status": status}, **({"reason": reason} if reason else {})))
    assert r.status == 200, r


def test_one_notification_per_event_for_every_trigger(kafka, kafka_dossier):
    env = setup_topics(kafka, "notify")
    topic, notify = env["DOSSIER_KAFKA_TOPIC"], env["DOSSIER_NOTIFY_TOPIC"]
    d = kafka_dossier(**env)
    kafka.wait_group_assigned(env["DOSSIER_KAFKA_GROUP"], topic)
    records = gen_records(200, "NTF", seed=606, kyb_ratio=0.0)
    kafka.produce(topic, records)
    wait_cases(d, "NTF-", len(records))

    # walk one case through rejection, upload and approval over REST: three more triggers
    case = d.wait_get("/v1/cases?client_id=NTF-000007")["items"][0]
    docs = d.wait_get("/v1/cases/%s/documents" % case["case_id"])["items"]
    for doc in docs:
        _set_doc(d, doc["document_id"], "UPLOADED")
    _set_doc(d, docs[0]["document_id"], "REJECTED", "blurred scan")     # DOCUMENT_REJECTED
    _set_doc(d, docs[0]["document_id"], "UPLOADED")                     # ALL_DOCUMENTS_RECEIVED
    for doc in docs:
        _set_doc(d, doc["document_id"], "VERIFIED")
    r = d.post("/v1/cases/%s/decision" % case["case_id"], {"decision": "APPROVE", "reason": "checks passed"})
    assert r.status == 200, r                                           # CASE_APPROVED

    triggers = [data["trigger"] for _, _, data in events(d, "NotificationRequired")]
    assert {"CASE_CREATED", "DOCUMENT_REJECTED", "ALL_DOCUMENTS_RECEIVED", "CASE_APPROVED"} <= set(triggers), triggers
    notes = check_notifications(kafka, d, notify)
    assert notes["events"] == len(triggers)
    mine = [json.loads(m["payload"])["trigger"] for m in kafka.consume(notify) if m["key"] == case["case_id"]]
    assert {"CASE_CREATED", "DOCUMENT_REJECTED", "ALL_DOCUMENTS_RECEIVED", "CASE_APPROVED"} <= set(mine), mine


def test_notifier_killed_mid_stream_loses_no_notification(kafka, kafka_dossier):
    env = setup_topics(kafka, "nkill")
    topic, notify = env["DOSSIER_KAFKA_TOPIC"], env["DOSSIER_NOTIFY_TOPIC"]
    d = kafka_dossier(**env)
    kafka.wait_group_assigned(env["DOSSIER_KAFKA_GROUP"], topic)
    # Enough records that the stream outlasts the detection below (each look at the
    # topic is a kcat run): with group commit a few thousand cases flow out in about
    # a second, and the kill must still land mid-stream.
    records = gen_records(15000, "NKILL", seed=707)
    kafka.produce(topic, records)

    restarts = sum(p["restarts"] for p in d.status() if p["name"] == "notifier")
    pid = d.pids("notifier")[0]
    # Watched by the topic's end offsets (one small query per partition): reading the
    # whole topic each time took long enough for all 15,000 to go out meanwhile.
    wait_for(lambda: sum(kafka.end_offsets(notify).values()) >= 300, 120, interval=0.05,
             what="notifications under way on Kafka")
    os.kill(pid, signal.SIGKILL)
    at_kill = len(kafka.consume(notify))
    assert at_kill < len(records), "every notification was out before the kill (%d): not mid-stream" % at_kill
    wait_for(lambda: sum(p["restarts"] for p in d.status() if p["name"] == "notifier") > restarts
             and d.pids("notifier"), 30, what="notifier restarted")
    wait_cases(d, "NKILL-", len(records))
    notes = check_notifications(kafka, d, notify)
    print("notifier killed after %d of %d notifications; %d duplicates after the restart"
          % (at_kill, len(records), notes["duplicates"]))
    assert notes["events"] == len(records)
    assert kafka.consume(notify + ".DLT") == []
