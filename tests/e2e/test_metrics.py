"""GET /metrics: Prometheus text exposition of every process on the host, merged by
the gateway. Checked with a strict reading of the format (each family once, HELP and
TYPE before its samples, samples contiguous) and for the series operators rely on."""
import re

import pytest

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


def test_metrics_merge_every_process(dossier, kyc_record):
    created = dossier.post("/v1/cases", kyc_record, headers={"Idempotency-Key": "metrics-kyc-1"})
    assert created.status in (200, 201), created.body
    dossier.get("/v1/cases/00000000-0000-0000-0000-000000000000")      # a 404
    r = dossier.get("/metrics")
    assert r.status == 200
    assert r.headers.get("Content-Type", "").startswith("text/plain; version=0.0.4")
    families = parse(r.body.decode())

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
