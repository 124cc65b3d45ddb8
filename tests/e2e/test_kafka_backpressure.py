"""A burst of Kafka records into the MongoDB backend (the FerretDB test server, a store
much slower than its senders): ingest's adaptive window (actors/ingest/ingest_window.c)
keeps the commands in flight to what the store absorbs, so appends are not left in the
store's queue past the handlers' timeout, answered `expired` and retried (issue 6:
before it, 1,000 records here cost 568 expired appends and 1,474 duplicate ones).
Every record becomes one case, nothing is dead-lettered."""
import re
import time

from dossier_harness import Dossier, wait_for
from kafka_harness import gen_records, setup_topics

N = 1000


def _counter(d, family, label):
    """Sums a counter family of GET /metrics by one label's value."""
    r = d.get("/metrics")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        m = re.match(r'^%s\{([^}]*)\}\s+(\S+)$' % re.escape(family), line)
        if m:
            key = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))).get(label, "")
            out[key] = out.get(key, 0) + int(float(m.group(2)))
    return out


def _listed(d, prefix):
    items = d.list_all("")
    return [c["client_id"] for c in items if c["client_id"].startswith(prefix)]


def test_burst_into_mongodb_is_paced_not_expired(kafka, ferretdb, request):
    env = setup_topics(kafka, "burst")
    env["DOSSIER_KAFKA_BROKERS"] = kafka.bootstrap
    d = Dossier(backend="mongodb", mongodb_uri=ferretdb.uri, extra_env=env)
    try:
        d.start(timeout=60)
    except Exception:
        print(d.tail_log(200))
        d.kill()
        raise
    ok = False
    try:
        kafka.wait_group_assigned(env["DOSSIER_KAFKA_GROUP"], env["DOSSIER_KAFKA_TOPIC"])
        records = gen_records(N, "BURST", seed=606)
        started = time.monotonic()
        kafka.produce(env["DOSSIER_KAFKA_TOPIC"], records)
        # Generous: the point is what was wasted on the way, not the speed of a
        # loaded 2-core machine.
        wait_for(lambda: len(_listed(d, "BURST-")) >= N, 600, interval=1.0, what="%d cases listed" % N)
        took = time.monotonic() - started
        ids = _listed(d, "BURST-")
        assert len(ids) == N and set(ids) == {k for k, _ in records}
        time.sleep(2.5)                 # every process's metrics file rewritten once more
        appends = _counter(d, "dossier_store_appends_total", "outcome")
        retries = sum(_counter(d, "dossier_ingest_kafka_retries_total", "process").values())
        window = _counter(d, "dossier_ingest_kafka_window_commands", "process")
        print("%d records in %.1f s; store appends %s; ingest retries %d; window now %s"
              % (N, took, appends, retries, window))
        assert appends.get("ok", 0) == N, appends
        # The window bounds the queue at the store far below the handlers' 8 s: a
        # stall of the whole machine may still cost a few, never a burst's worth.
        assert appends.get("expired", 0) <= N // 50, appends
        # Nor is an append sent again while the store is merely slow (the handler's
        # first resend waits half its deadline): each copy is a duplicate lookup.
        assert appends.get("duplicate", 0) <= N // 50, appends
        assert retries <= N // 50, retries
        assert kafka.consume(env["DOSSIER_KAFKA_TOPIC"] + ".DLT") == []
        ok = True
    finally:
        code = d.stop()
        d.kill()
        if not ok:
            print("---- dossier log (digest) ----\n" + d.digest_log())
        assert code == 0, "supervisor exit code %s\n%s" % (code, d.tail_log(80))
        if ok:
            d.cleanup()
