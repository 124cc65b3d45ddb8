"""Poison messages on Kafka: 100 bad records mixed into 5,000 good ones. Exactly those
100 land on <topic>.DLT, on their original partition, with key and value unchanged and
Spring Kafka's dead-letter headers; the 5,000 good ones become cases and the stream goes on."""
import json
import random

from kafka_harness import (case_count, check_cases_over_rest, check_notifications, events, gen_records,
                           setup_topics, wait_cases)
from dossier_harness import wait_for

GOOD, BAD = 5000, 100


def _poison(i, kyb_line):
    """The i-th poison record, made from a valid KYB record: (key, value, accepted error classes)."""
    key = "POISON-%03d" % i
    kind = i % 5
    if kind == 0:   # not JSON at all
        return key, '{"client_id": "%s", "case_type": "STANDARD", "persons": [{' % key, ("malformed_json",)
    rec = json.loads(kyb_line)
    rec["client_id"] = key
    if kind == 1:   # a schema violation deep inside: a beneficial owner with 150 %
        rec["beneficial_owners"][0]["ownership_percentage"] = 150
        return key, json.dumps(rec), ("validation.ownership_percentage",)
    if kind == 2:   # the natural key is missing
        del rec["client_id"]
        return key, json.dumps(rec), ("validation.client_id",)
    if kind == 3:   # an unknown traitement_type
        rec["traitement_type"] = "KYX"
        return key, json.dumps(rec), ("validation.traitement_type",)
    # JSON, but not an object: ingest's own check says validation.record, the domain's validation.body
    return key, json.dumps([rec]), ("validation.record", "validation.body")


def test_100_poison_messages_go_to_the_dlt_with_headers_and_5000_good_ones_are_processed(kafka, kafka_dossier):
    env = setup_topics(kafka, "dlt")
    topic, group, dlt = env["DOSSIER_KAFKA_TOPIC"], env["DOSSIER_KAFKA_GROUP"], env["DOSSIER_KAFKA_TOPIC"] + ".DLT"
    d = kafka_dossier(**env)
    kafka.wait_group_assigned(group, topic)

    good = gen_records(GOOD, "DLTOK", seed=505)
    bases = gen_records(BAD, "PBASE", seed=507, kyb_ratio=1.0)
    rng = random.Random(5)
    mixed = list(good)
    expected = {}
    for i in range(BAD):
        key, value, error = _poison(i, bases[i][1])
        expected[key] = error
        mixed.insert(rng.randrange(len(mixed) + 1), (key, value))
    kafka.produce(topic, mixed)

    wait_cases(d, "DLTOK-", GOOD)
    wait_for(lambda: len(kafka.consume(dlt)) >= BAD, 120, interval=0.5, what="%d records on %s" % (BAD, dlt))
    kafka.wait_group_caught_up(group, topic)
    check_cases_over_rest(d, "DLTOK-", good)
    assert len(events(d, "CaseCreated")) == GOOD
    assert case_count(d, "POISON-") == 0

    originals = {(m["partition"], m["offset"]): m for m in kafka.consume(topic)}
    assert len(originals) == GOOD + BAD
    poison_at = {pos: m for pos, m in originals.items() if m["key"].startswith("POISON-")}
    dead = kafka.consume(dlt)
    assert len(dead) == BAD, "%d records on %s, expected exactly %d" % (len(dead), dlt, BAD)
    seen = set()
    for m in dead:
        names = [k for k, _ in m["headers"]]
        h = dict(m["headers"])
        assert len(names) == len(h), "a header appears twice: %s" % names
        for name in ("kafka_dlt-exception-message", "kafka_dlt-exception-fqcn", "kafka_dlt-original-topic",
                     "kafka_dlt-original-partition", "kafka_dlt-original-offset", "kafka_dlt-original-timestamp",
                     "kafka_dlt-original-consumer-group"):
            assert h.get(name), "header %s missing or empty on %s: %s" % (name, dlt, m)
        pos = (int(h["kafka_dlt-original-partition"]), int(h["kafka_dlt-original-offset"]))
        assert pos in poison_at, "%s points at %s, which is not a poison record: %s" % (dlt, pos, originals.get(pos))
        assert pos not in seen, "record %s dead-lettered twice" % (pos,)
        seen.add(pos)
        orig = poison_at[pos]
        assert m["partition"] == orig["partition"], "dead-lettered to partition %d, came from %d" % (
            m["partition"], orig["partition"])
        assert m["key"] == orig["key"] and m["payload"] == orig["payload"], "key or value changed: %s" % m
        assert h["kafka_dlt-original-topic"] == topic
        assert h["kafka_dlt-original-timestamp"] == str(orig["ts"])
        assert h["kafka_dlt-original-consumer-group"] == group
        assert h["kafka_dlt-exception-fqcn"] in expected[orig["key"]], "%s: class %r, expected %r (%s)" % (
            orig["key"], h["kafka_dlt-exception-fqcn"], expected[orig["key"]], h["kafka_dlt-exception-message"])
    assert seen == set(poison_at)

    # the stream goes on: a good record after all of that is still taken
    late = gen_records(1, "DLTLATE", seed=506)
    kafka.produce(topic, late)
    wait_cases(d, "DLTLATE-", 1, timeout=60)
    check_notifications(kafka, d, env["DOSSIER_NOTIFY_TOPIC"])
