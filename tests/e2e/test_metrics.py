"""GET /metrics: Prometheus text exposition of every process on the host, merged by
the gateway. Checked with a strict reading of the format (each family once, HELP and
TYPE before its samples, samples contiguous) and for the series operators rely on."""
import json
import os
import re
import signal
import subprocess
import sys

import pytest

from dossier_harness import ROOT, Dossier, wait_for

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? '
                    r'(-?[0-9.eE+-]+|NaN|[+-]Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse(text):
    """{family: {"type": t, "samples": [(name, {labels}, value)]}}; asserts the format."""
    families, order, current = {}, [], None
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            name = line.split(" ")[2]
            if name not in families:
                families[name] = {"type": None, "help": None, "samples": []}
                order.append(name)
            else:
                assert current == name, "family %s split in two" % name
            key = "help" if line[2] == "H" else "type"
            assert families[name][key] is None, "two %s lines for %s" % (key, name)
            families[name][key] = line.split(" ", 3)[3] if key == "help" else line.split(" ")[3]
            current = name
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name = m.group(1)
        assert current and name.startswith(current), "sample %s outside its family %s" % (name, current)
        labels = dict(LABEL.findall(m.group(2) or ""))
        families[current]["samples"].append((name, labels, float(m.group(3))))
    for name, fam in families.items():
        assert fam["type"] in ("counter", "gauge", "histogram"), name
        if fam["type"] == "counter":
            assert name.endswith("_total"), name
    return families


def series(families, family, **labels):
    return [(n, l, v) for n, l, v in families.get(family, {"samples": []})["samples"]
            if all(l.get(k) == v for k, v in labels.items())]


def total(families, family, **labels):
    """Sum of the plain samples (not _bucket/_sum/_count) of family matching labels."""
    return sum(v for n, l, v in series(families, family, **labels) if n == family)


def present(families, family, **labels):
    """Like total, but the series must exist (a missing one is not a 0)."""
    assert any(n == family for n, _, _ in series(families, family, **labels)), (family, labels)
    return total(families, family, **labels)


def check_conventions(families):
    """Prometheus naming: dossier_ prefix, snake case, counters end in _total and
    nothing else does, durations are histograms in seconds, no other time unit."""
    for name, fam in families.items():
        assert re.match(r"^dossier_[a-z][a-z0-9_]*[a-z0-9]$", name), name
        assert name.endswith("_total") == (fam["type"] == "counter"), (name, fam["type"])
        assert not re.search(r"_(ms|milliseconds|microseconds|us|minutes|hours)(_|$)", name), name
        if re.search(r"duration|latency|_time", name):
            assert name.endswith("_seconds") and fam["type"] == "histogram", name
        assert fam["help"], "family %s has no HELP" % name
        if fam["type"] == "histogram":
            names = {n for n, _, _ in fam["samples"]}
            assert names <= {name + "_bucket", name + "_sum", name + "_count"}, names


def scrape(d):
    r = d.get("/metrics")
    assert r.status == 200, r
    return parse(r.body.decode())


def test_metrics_merge_every_process(dossier, kyc_record):
    created = dossier.post("/v1/cases", kyc_record, headers={"Idempotency-Key": "metrics-kyc-1"})
    assert created.status in (200, 201), created.body
    dossier.get("/v1/cases/00000000-0000-0000-0000-000000000000")      # a 404

    # Each process writes its file once a second: right after start some may not have yet.
    def scrape():
        r = dossier.get("/metrics")
        assert r.status == 200
        assert r.headers.get("Content-Type", "").startswith("text/plain; version=0.0.4")
        families = parse(r.body.decode())
        processes = {l.get("process") for f in families.values() for _, l, _ in f["samples"]}
        up = {l["child"]: v for n, l, v in series(families, "dossier_supervisor_child_up", process="supervisor")}
        ready = {"supervisor", "gateway", "notifier"} <= processes and all(v == 1 for v in up.values())
        return families if ready else None
    families = wait_for(scrape, 10, what="every process's metrics file")

    # The gateway counts its answers by route pattern and status, with latency.
    assert series(families, "dossier_http_requests_total", process="gateway", route="/v1/cases", status=str(created.status))
    assert series(families, "dossier_http_requests_total", route="/v1/cases/{id}", status="404")
    buckets = series(families, "dossier_http_request_duration_seconds", route="/v1/cases")
    assert any(n.endswith("_bucket") and l.get("le") == "+Inf" and v >= 1 for n, l, v in buckets)
    assert families["dossier_http_request_duration_seconds"]["type"] == "histogram"

    # The supervisor says which children are up, and counts restarts.
    up = {l["child"]: v for n, l, v in series(families, "dossier_supervisor_child_up", process="supervisor")}
    for child in ("store", "broker", "handler", "projector", "notifier", "gateway"):
        assert up.get(child) == 1, (child, up)

    # The notifier counts what it handed on and what is still unconfirmed.
    assert families["dossier_notifier_unconfirmed_positions"]["type"] == "gauge"
    assert series(families, "dossier_notifier_checkpoint_position", process="notifier")


def test_metrics_head_has_no_body(dossier):
    r = dossier.request("HEAD", "/metrics")
    assert r.status == 200 and r.body == b""


@pytest.mark.parametrize("text", [
    "# TYPE a_total counter\na_total 1\n# TYPE b gauge\nb 2\n# TYPE a_total counter\na_total 3\n",
    "a_total{x=\"1\"} 1 2 3\n",
])
def test_the_format_check_itself_rejects_bad_text(text):
    with pytest.raises(AssertionError):
        parse(text)


def test_ready_names_the_process_that_is_down():
    """/ready aggregates the supervisor's view: while a killed process waits out a long
    restart backoff, /ready answers 503 naming it, then 200 again once it is back."""
    import os
    import signal
    from dossier_harness import Dossier, wait_for
    d = Dossier(extra_env={"DOSSIER_SUPERVISOR_BACKOFF_MS": "4000"})
    d.start()
    try:
        assert d.get("/ready").status == 200
        pid = wait_for(lambda: d.pids("scheduler"), 20, what="a running scheduler")[0]
        os.kill(pid, signal.SIGKILL)
        r = wait_for(lambda: (lambda r: r if r.status == 503 else None)(d.get("/ready")), 10,
                     interval=0.1, what="/ready 503")
        body = r.json()
        assert body["status"] == "not_ready"
        assert "scheduler#0 not running" in body["reasons"], body
        wait_for(lambda: d.get("/ready").status == 200, 30, what="/ready 200 after the restart")
    finally:
        d.stop()
        d.kill()
        d.cleanup()


def test_every_process_counts_what_an_ingest_did(tmp_path):
    """N valid records, one the handler refuses and one that is not JSON, through
    `dossier ingest`: every process's families say what happened, exactly."""
    n = 40
    d = Dossier()
    d.start()
    try:
        path = tmp_path / "records.jsonl"
        out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_records.py"), "--count", str(n),
                              "--seed", "7", "--prefix", "MET"], capture_output=True, check=True).stdout.decode()
        bad = json.loads(out.splitlines()[0])
        bad["client_id"] = "MET-BAD"
        del bad["traitement_type"]
        path.write_text(out + json.dumps(bad) + "\n" + "this is not json\n")
        summary = json.loads(d.cli("ingest", str(path), "--json", timeout=120).stdout)     # exit 2: rejections
        assert summary["new"] == n and summary["rejected"] == 2, summary
        head = d.event_count()

        def settled():
            f = scrape(d)
            ok = (f.get("dossier_notifier_backlog_events") and f.get("dossier_projector_lag_events")
                  and total(f, "dossier_projector_lag_events") == 0
                  and total(f, "dossier_projector_checkpoint_position") == head
                  and total(f, "dossier_notifier_backlog_events") == 0
                  and total(f, "dossier_store_log_head_position") == head
                  and total(f, "dossier_ingest_records_total", source="cli") == n + 2
                  and total(f, "dossier_broker_messages_out_total", side="front", type="reply.error") == 1)
            return f if ok else None
        f = wait_for(settled, 30, interval=0.5, what="metrics showing the ingest and a caught-up projector")
        check_conventions(f)

        # store: one append per new case, every event counted, latency per append
        assert total(f, "dossier_store_appends_total", outcome="ok") == n
        assert present(f, "dossier_store_appends_total", outcome="error") == 0
        assert total(f, "dossier_store_events_appended_total") == head
        lat = series(f, "dossier_store_append_duration_seconds")
        assert [v for m, l, v in lat if m.endswith("_count")] == [n]
        assert [v for m, l, v in lat if m.endswith("_bucket") and l["le"] == "+Inf"] == [n]
        assert sum(v for m, l, v in series(f, "dossier_store_batch_appends") if m.endswith("_sum")) == n

        # broker: n + 1 commands in (the refused one too), routed, answered
        assert total(f, "dossier_broker_messages_in_total", side="front", type="cmd.create_case") == n + 1
        assert total(f, "dossier_broker_messages_out_total", side="back", type="cmd.create_case") == n + 1
        assert total(f, "dossier_broker_messages_out_total", side="front", type="reply.ok") == n
        assert present(f, "dossier_broker_commands_in_flight") == 0
        assert total(f, "dossier_broker_handlers") == 2

        # handlers (two of them): accepted == n, the bad record rejected as a validation error
        assert total(f, "dossier_handler_commands_total", type="cmd.create_case", outcome="accepted") == n
        assert total(f, "dossier_handler_commands_total", outcome="rejected", **{"class": "validation"}) == 1
        assert total(f, "dossier_handler_commands_total", outcome="failed") == 0
        assert sum(v for m, l, v in series(f, "dossier_handler_command_duration_seconds")
                   if m.endswith("_count")) == n + 1

        # projector: everything applied, nothing poison, lag 0
        assert total(f, "dossier_projector_events_applied_total") == head
        assert present(f, "dossier_projector_poison_events_total") == 0
        assert total(f, "dossier_projector_log_head_position") == head
        assert sum(v for m, l, v in series(f, "dossier_projector_batch_events") if m.endswith("_sum")) == head

        # ingest: n accepted, the non-JSON line and the invalid record rejected
        assert total(f, "dossier_ingest_results_total", source="cli", outcome="accepted") == n
        assert total(f, "dossier_ingest_results_total", source="cli", outcome="rejected") == 2
        assert present(f, "dossier_ingest_commands_in_flight") == 0

        # scheduler: nothing deferred (rules come from the local file)
        assert present(f, "dossier_scheduler_deferrals_pending") == 0
        assert present(f, "dossier_scheduler_deferrals_in_flight") == 0
        assert present(f, "dossier_scheduler_checkpoint_position") <= head

        # every process that runs exports something
        exporting = {l.get("process") for fam in f.values() for _, l, _ in fam["samples"]}
        assert {"supervisor", "store", "broker", "handler", "projector", "notifier", "scheduler", "gateway",
                "ingest"} <= exporting, exporting

        # the same file again: every record a duplicate, answered from the log, nothing appended
        again = json.loads(d.cli("ingest", str(path), "--json", timeout=120).stdout)
        assert again["duplicate"] == n and again["new"] == 0, again
        f = wait_for(lambda: (lambda f: f if total(f, "dossier_ingest_results_total", source="cli",
                                                   outcome="accepted") == 2 * n else None)(scrape(d)),
                     30, interval=0.5, what="metrics of the second ingest")
        assert total(f, "dossier_handler_commands_total", type="cmd.create_case", outcome="duplicate") == n
        assert total(f, "dossier_handler_commands_total", type="cmd.create_case", outcome="accepted") == n
        assert total(f, "dossier_store_appends_total", outcome="ok") == n
        assert total(f, "dossier_store_events_appended_total") == head == d.event_count()
        assert total(f, "dossier_projector_events_applied_total") == head
    finally:
        d.stop()
        d.kill()
        d.cleanup()


def test_the_convention_check_itself_rejects_bad_names():
    for text in ("# HELP dossier_x_ms X.\n# TYPE dossier_x_ms gauge\ndossier_x_ms 1\n",
                 "# HELP dossier_x_count X.\n# TYPE dossier_x_count counter\ndossier_x_count 1\n",
                 "# HELP dossier_req_duration X.\n# TYPE dossier_req_duration gauge\ndossier_req_duration 1\n",
                 "# HELP dossier_x_total X.\n# TYPE dossier_x_total gauge\ndossier_x_total 1\n"):
        with pytest.raises(AssertionError):
            check_conventions(parse(text))


def test_kafka_consumer_lag_per_partition(kafka, kafka_dossier):
    """dossier_ingest_kafka_consumer_lag{topic,partition}: 0 on every partition once the
    topic is consumed; while the handlers are stopped (SIGSTOP) it is exactly the
    records produced since; back to 0 once they run again and the group commits."""
    from kafka_harness import gen_records, setup_topics, wait_cases
    env = setup_topics(kafka, "metrics")
    topic, group = env["DOSSIER_KAFKA_TOPIC"], env["DOSSIER_KAFKA_GROUP"]
    d = kafka_dossier(**env)
    kafka.wait_group_assigned(group, topic)
    partitions = kafka.partitions(topic)

    def lags():
        return {l["partition"]: v for n, l, v in series(scrape(d), "dossier_ingest_kafka_consumer_lag", topic=topic)}

    def all_zero():
        m = lags()
        return m if len(m) == partitions and all(v == 0 for v in m.values()) else None

    first = gen_records(100, "MLA", seed=31)
    kafka.produce(topic, first)
    wait_cases(d, "MLA-", len(first))
    kafka.wait_group_caught_up(group, topic)
    wait_for(all_zero, 30, interval=0.5, what="consumer lag 0 on every partition")

    handlers = d.pids("handler")
    assert handlers
    for pid in handlers:
        os.kill(pid, signal.SIGSTOP)
    try:
        second = gen_records(60, "MLB", seed=32)
        kafka.produce(topic, second)
        seen = wait_for(lambda: (lambda m: m if sum(m.values()) == len(second) else None)(lags()), 30,
                        interval=0.25, what="consumer lag == the records produced while the handlers are stopped")
        assert len(seen) == partitions, seen
    finally:
        for pid in handlers:
            os.kill(pid, signal.SIGCONT)
    wait_cases(d, "MLB-", len(second), timeout=120)
    kafka.wait_group_caught_up(group, topic)
    wait_for(all_zero, 30, interval=0.5, what="consumer lag back to 0")

    f = scrape(d)
    check_conventions(f)
    assert total(f, "dossier_ingest_records_total", source="kafka") == len(first) + len(second)
    assert total(f, "dossier_ingest_results_total", source="kafka", outcome="accepted") == len(first) + len(second)
    assert total(f, "dossier_ingest_dead_letters_total") == 0
