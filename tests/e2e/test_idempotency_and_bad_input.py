"""Idempotency (the same command twice appends nothing) and hostile input (a clear
4xx with a JSON reason, nothing appended, the service keeps serving)."""
import copy
import json
import os

import pytest

from dossier_harness import wait_for


def test_same_idempotency_key_returns_first_result(dossier, kyc_record):
    rec = copy.deepcopy(kyc_record)
    rec["client_id"] = "IDEM-HTTP-1"
    key = {"Idempotency-Key": '"7d5b2c4e-idem-1"'}
    first = dossier.post("/v1/cases", rec, headers=key)
    assert first.status == 201, first
    events_after_first = dossier.event_count()
    second = dossier.post("/v1/cases", rec, headers=key)
    assert second.status == 200, second
    assert second.json()["case_id"] == first.json()["case_id"]
    assert dossier.event_count() == events_after_first
    # the same key with another payload is refused, not silently replayed
    rec["persons"][0]["firstname"] = "Other"
    third = dossier.post("/v1/cases", rec, headers=key)
    assert third.status == 422, third
    assert third.json()["error"] == "idempotency.mismatch"
    assert dossier.event_count() == events_after_first
    dossier.wait_get("/v1/cases/" + first.json()["case_id"])
    assert len(dossier.get("/v1/cases?client_id=IDEM-HTTP-1").json()["items"]) == 1


def test_same_record_without_key_is_one_case(dossier, kyc_record):
    rec = copy.deepcopy(kyc_record)
    rec["client_id"] = "IDEM-HTTP-2"
    a = dossier.post("/v1/cases", rec)
    b = dossier.post("/v1/cases", rec)
    assert a.status == 201 and b.status == 200, (a, b)
    assert a.json()["case_id"] == b.json()["case_id"]


def test_same_jsonl_file_twice_is_one_case_each(dossier, tmp_path):
    path = tmp_path / "records.jsonl"
    os.system("python3 %s --count 40 --seed 11 --prefix IDEM-FILE > %s"
              % (os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "gen_records.py"), path))
    r1 = dossier.cli("ingest", str(path), "--json", check=True)
    s1 = json.loads(r1.stdout)
    assert s1["accepted"] == 40 and s1["rejected"] == 0, s1
    events = dossier.event_count()
    r2 = dossier.cli("ingest", str(path), "--json", check=True)
    s2 = json.loads(r2.stdout)
    assert s2["accepted"] == 40 and s2["duplicate"] == 40, s2
    assert dossier.event_count() == events
    items = wait_for(lambda: (lambda x: x if len(x) >= 40 else None)(
        [c for c in dossier.list_all("") if c["client_id"].startswith("IDEM-FILE-")]), 30, what="40 cases")
    assert len(items) == 40
    assert len({c["client_id"] for c in items}) == 40


def test_ingest_reports_rejected_lines(dossier, kyc_record, tmp_path):
    good = copy.deepcopy(kyc_record)
    good["client_id"] = "INGEST-MIX-1"
    bad = copy.deepcopy(kyc_record)
    bad["client_id"] = "INGEST-MIX-2"
    bad["traitement_type"] = "KYX"
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(good) + "\n{not json\n\n" + json.dumps(bad) + "\n")
    r = dossier.cli("ingest", str(path), "--json")
    assert r.returncode == 2, r
    s = json.loads(r.stdout)
    assert s["accepted"] == 1 and s["rejected"] == 2, s
    lines = sorted(x["line"] for x in s["errors"])
    assert lines == [2, 4], s
    assert all(x["detail"] for x in s["errors"])


def _bad_records(base):
    def mutate(f):
        rec = copy.deepcopy(base)
        f(rec)
        return rec
    return {
        "missing client_id": mutate(lambda r: r.pop("client_id")),
        "wrong type": mutate(lambda r: r.update(client_id=12345)),
        "unknown enum": mutate(lambda r: r.update(traitement_type="KYZ")),
        "unknown role": mutate(lambda r: r["persons"][0].update(role="WIZARD")),
        "future birthdate": mutate(lambda r: r["persons"][0].update(birthdate="2999-01-01")),
        "not a date": mutate(lambda r: r["persons"][0].update(birthdate="1990-02-30")),
        "bad country": mutate(lambda r: r["persons"][0].update(nationality="XX")),
        "KYB without company": mutate(lambda r: r.update(traitement_type="KYB")),
        "too long": mutate(lambda r: r["persons"][0].update(lastname="x" * 5000)),
        "no persons": mutate(lambda r: r.update(persons=[])),
    }


def test_invalid_records_are_422_and_append_nothing(dossier, kyc_record, kyb_record):
    before = dossier.event_count()
    cases = _bad_records(kyc_record)
    over = copy.deepcopy(kyb_record)
    over["beneficial_owners"][0]["ownership_percentage"] = 101
    cases["percentage over 100"] = over
    total = copy.deepcopy(kyb_record)
    total["beneficial_owners"][0]["ownership_percentage"] = 80   # 80 + 30 + 10 > 100
    cases["percentages sum over 100"] = total
    for name, rec in cases.items():
        r = dossier.post("/v1/cases", rec)
        assert r.status == 422, (name, r)
        err = r.json()
        assert err["error"].startswith("validation") and err["detail"], (name, err)
    assert dossier.event_count() == before


@pytest.mark.parametrize("body,ctype,status", [
    (b"{\"client_id\": ", "application/json", 400),                 # malformed JSON
    (b"[1,2,3]", "application/json", 422),                           # not an object
    (b"{\"client_id\": \"\xff\xfe\"}", "application/json", 400),      # invalid UTF-8
    (b"{}", "text/plain", 415),                                     # wrong media type
    (b"{\"a\": \"" + b"x" * (2 * 1024 * 1024) + b"\"}", "application/json", 413),  # over the limit
])
def test_bad_http_bodies(dossier, body, ctype, status):
    before = dossier.event_count()
    r = dossier.post("/v1/cases", body, headers={"Content-Type": ctype})
    assert r.status == status, r
    err = r.json()
    assert err["error"] and err["detail"], err
    assert dossier.event_count() == before
    assert dossier.get("/health").status == 200


def test_bad_document_and_decision_requests(dossier, kyc_record):
    rec = copy.deepcopy(kyc_record)
    rec["client_id"] = "BAD-REQ-1"
    case_id = dossier.post("/v1/cases", rec).json()["case_id"]
    case = dossier.wait_get("/v1/cases/" + case_id)
    doc = case["documents"][0]["document_id"]
    assert dossier.post("/v1/documents/%s/status" % doc, {"status": "LOST"}).status in (400, 422)
    assert dossier.post("/v1/documents/%s/status" % doc, {"status": 5}).status in (400, 422)
    assert dossier.post("/v1/documents/%s/status" % doc, b"nope",
                        headers={"Content-Type": "application/json"}).status == 400
    assert dossier.post("/v1/documents/00000000-0000-4000-8000-000000000000/status",
                        {"status": "UPLOADED"}).status == 404
    assert dossier.post("/v1/cases/%s/decision" % case_id, {"decision": "MAYBE"}).status in (400, 422)
    assert dossier.get("/ready").status == 200
