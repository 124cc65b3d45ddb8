"""Kafka ingestion against a real broker: 10,000 records produced with kcat become
10,000 cases, producing them again creates nothing; two ingest processes in one
consumer group share the partitions and process every record once."""
import time

from dossier_harness import wait_for
from kafka_harness import (PROCESSES, case_count, check_cases_over_rest, check_notifications, events,
                           gen_records, setup_topics, wait_cases)

N = 10000


def test_10000_records_make_10000_cases_and_the_same_again_nothing_new(kafka, kafka_dossier):
    # the defaults: topic kyc_events, group dossier-ingest, notifications to notification_events
    for t in ("kyc_events", "kyc_events.DLT", "notification_events", "notification_events.DLT"):
        kafka.create_topic(t, 4)
    d = kafka_dossier()
    kafka.wait_group_assigned("dossier-ingest", "kyc_events")
    records = gen_records(N, "K10K", seed=101)

    started = time.monotonic()
    kafka.produce("kyc_events", records)
    wait_cases(d, "K10K-", N, timeout=300)
    took = time.monotonic() - started
    print("%d records produced and projected as cases in %.1f s (%.0f/s)" % (N, took, N / took))
    check_cases_over_rest(d, "K10K-", records)
    assert len(events(d, "CaseCreated")) == N
    kafka.wait_group_caught_up("dossier-ingest", "kyc_events")

    # the same 10,000 again: consumed and committed, nothing new
    kafka.produce("kyc_events", records)
    rows = kafka.wait_group_caught_up("dossier-ingest", "kyc_events")
    assert sum(r["current"] for r in rows.values()) == 2 * N, rows
    head = d.event_count()
    wait_for(lambda: d.projector_checkpoint() >= head, 60, what="projector caught up")
    assert case_count(d, "K10K-") == N
    assert len(events(d, "CaseCreated")) == N
    assert len(d.list_all("")) == N
    assert kafka.consume("kyc_events.DLT") == [], "valid records were dead-lettered"

    notes = check_notifications(kafka, d, "notification_events")
    assert notes["events"] == N      # one CASE_CREATED notification per case (config/rules.json)
    assert kafka.consume("notification_events.DLT") == []


def test_two_ingest_processes_share_the_partitions_and_process_each_record_once(kafka, kafka_dossier):
    env = setup_topics(kafka, "two")
    topic, group = env["DOSSIER_KAFKA_TOPIC"], env["DOSSIER_KAFKA_GROUP"]
    d = kafka_dossier(processes=dict(PROCESSES, ingest=2), **env)
    assert len(d.pids("ingest")) == 2
    before = kafka.wait_group_assigned(group, topic, members=2)
    owners = {r["partition"]: r["consumer_id"] for r in before}
    per_member = {}
    for p, member in owners.items():
        per_member.setdefault(member, []).append(p)
    assert len(per_member) == 2 and all(len(ps) == 2 for ps in per_member.values()), per_member

    records = gen_records(4000, "TWO", seed=202)
    kafka.produce(topic, records)
    wait_cases(d, "TWO-", len(records))
    rows = kafka.wait_group_caught_up(group, topic)
    check_cases_over_rest(d, "TWO-", records)
    assert len(events(d, "CaseCreated")) == len(records)
    # the group never rebalanced while the records went through: each partition, and
    # so each record, was processed by the one member that owned it from the start
    after = {p: r["consumer_id"] for p, r in rows.items()}
    assert after == owners, "partitions moved during the run: %s -> %s" % (owners, after)
    assert kafka.consume(topic + ".DLT") == []
    notes = check_notifications(kafka, d, env["DOSSIER_NOTIFY_TOPIC"])
    assert notes["events"] == len(records)
