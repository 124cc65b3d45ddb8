"""Faults with Kafka: kill -9 of the ingest process mid-stream, and the broker itself
stopped for 10 s mid-stream. Afterwards every record is a case exactly once, the
consumer group has committed everything, and every notification reached Kafka."""
import os
import signal
import threading
import time

from dossier_harness import wait_for
from kafka_harness import (case_count, check_cases_over_rest, check_notifications, events, gen_records,
                           setup_topics, wait_cases)


def _restarts(d, name):
    return sum(p["restarts"] for p in d.status() if p["name"] == name)


def test_kill9_of_ingest_mid_stream_loses_nothing_and_doubles_nothing(kafka, kafka_dossier):
    env = setup_topics(kafka, "kill")
    topic, group = env["DOSSIER_KAFKA_TOPIC"], env["DOSSIER_KAFKA_GROUP"]
    d = kafka_dossier(**env)
    kafka.wait_group_assigned(group, topic)
    records = gen_records(8000, "KILL", seed=303)
    kafka.produce(topic, records)

    restarts = _restarts(d, "ingest")
    pid = d.pids("ingest")[0]
    wait_for(lambda: case_count(d, "KILL-") >= 300, 120, interval=0.02, what="ingestion under way")
    os.kill(pid, signal.SIGKILL)
    at_kill = case_count(d, "KILL-")
    assert at_kill < len(records), "ingestion was over before the kill (%d cases): not mid-stream" % at_kill
    wait_for(lambda: _restarts(d, "ingest") > restarts and d.pids("ingest"), 30, what="ingest restarted")
    assert d.pids("ingest")[0] != pid

    wait_cases(d, "KILL-", len(records))
    kafka.wait_group_caught_up(group, topic)
    print("killed ingest at %d of %d cases" % (at_kill, len(records)))
    check_cases_over_rest(d, "KILL-", records)
    assert len(events(d, "CaseCreated")) == len(records)
    assert kafka.consume(topic + ".DLT") == [], "valid records were dead-lettered after the restart"
    check_notifications(kafka, d, env["DOSSIER_NOTIFY_TOPIC"])


def test_broker_down_10s_mid_stream_ingestion_and_notification_resume(kafka, kafka_dossier):
    env = setup_topics(kafka, "down")
    topic, group = env["DOSSIER_KAFKA_TOPIC"], env["DOSSIER_KAFKA_GROUP"]
    d = kafka_dossier(**env)
    kafka.wait_group_assigned(group, topic)
    first, second = gen_records(6000, "DOWN", seed=404), gen_records(2000, "DOWNB", seed=405)
    kafka.produce(topic, first)

    wait_for(lambda: case_count(d, "DOWN-") >= 300, 120, interval=0.02, what="ingestion under way")
    # The broker dies (SIGKILL right after SIGTERM): a controlled shutdown takes seconds, in
    # which ingestion, now ~2,000 records/s, went on to the end of the first batch.
    kafka.stop(timeout=0)
    try:
        at_stop = case_count(d, "DOWN-")
        assert at_stop < len(first), "ingestion was over before the broker stopped (%d cases)" % at_stop
        down_since = time.monotonic()
        # While the broker is down a producer keeps the second batch waiting (kcat retries
        # until it is back): the input goes on "mid-stream" from the outside, too.
        produced = {}

        def produce_second():
            try:
                produced["n"] = kafka.produce(topic, second)
            except Exception as e:   # reported by the assert below
                produced["error"] = e
        producer = threading.Thread(target=produce_second)
        producer.start()
        # the outage itself: 10 s without a broker is the scenario, not a wait for readiness
        time.sleep(10)
        assert kafka.proc.poll() is not None
    finally:
        kafka.start()   # the session's broker: later tests need it back whatever happened here
    print("broker down %.1f s at %d of %d cases" % (time.monotonic() - down_since, at_stop, len(first)))
    producer.join(300)
    assert produced.get("n") == len(second), "kcat did not deliver the second batch after the restart: %s" % produced

    wait_cases(d, "DOWN-", len(first))
    wait_cases(d, "DOWNB-", len(second))
    kafka.wait_group_caught_up(group, topic)
    check_cases_over_rest(d, "DOWN-", first)
    check_cases_over_rest(d, "DOWNB-", second)
    assert len(events(d, "CaseCreated")) == len(first) + len(second)
    assert kafka.consume(topic + ".DLT") == [], "a transient outage dead-lettered records"
    notes = check_notifications(kafka, d, env["DOSSIER_NOTIFY_TOPIC"])
    assert notes["events"] == len(first) + len(second)
    assert kafka.consume(env["DOSSIER_NOTIFY_TOPIC"] + ".DLT") == [], "a transient outage dead-lettered notifications"
    assert all(p["state"] == "running" for p in d.status())
