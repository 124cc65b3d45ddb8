"""End to end from the built binaries under the supervisor: a KYC and a KYB case
go in over HTTP, every read model and the audit trail are checked, documents are
uploaded and verified until the case is IN_REVIEW, and the case is approved."""
import copy
import json

from dossier_harness import wait_for


def _create(dossier, record, key=None):
    headers = {"Idempotency-Key": '"%s"' % key} if key else {}
    r = dossier.post("/v1/cases", record, headers=headers)
    assert r.status == 201, r
    body = r.json()
    assert body["case_id"] and body["status"] == "AWAITING_DOCUMENTS", body
    assert r.headers.get("Location") == "/v1/cases/" + body["case_id"]
    return body["case_id"]


def _set_doc(dossier, doc_id, status, reason=None):
    body = {"status": status}
    if reason:
        body["reason"] = reason
    return dossier.post("/v1/documents/%s/status" % doc_id, body)


def _wait_status(dossier, case_id, status):
    return wait_for(lambda: (lambda c: c if c["status"] == status else None)(
        dossier.wait_get("/v1/cases/" + case_id)), 20, what="case %s %s" % (case_id, status))


def test_kyc_case_from_post_to_approval(dossier, kyc_record):
    rec = copy.deepcopy(kyc_record)
    rec["client_id"] = "E2E-KYC-1"
    case_id = _create(dossier, rec)
    case = dossier.wait_get("/v1/cases/" + case_id)
    assert case["client_id"] == "E2E-KYC-1"
    assert case["traitement_type"] == "KYC"
    assert case["status"] == "AWAITING_DOCUMENTS"
    assert case["company"] is None
    assert len(case["persons"]) == 1
    person = case["persons"][0]
    assert person["firstname"] == "Camille" and person["role"] == "APPLICANT"
    assert sorted(d["document_type"] for d in case["documents"]) == ["IDENTITY_DOCUMENT", "PROOF_OF_ADDRESS"]
    assert all(d["status"] == "AWAITING_UPLOAD" for d in case["documents"])

    # persons and documents have their own resources
    p = dossier.wait_get("/v1/persons/" + person["person_id"])
    assert p["case_id"] == case_id and p["birthdate"] == "1988-04-17"
    docs = dossier.wait_get("/v1/cases/%s/documents" % case_id)["items"]
    assert len(docs) == 2
    d0 = dossier.wait_get("/v1/documents/" + docs[0]["document_id"])
    assert d0["case_id"] == case_id

    # the audit trail is the log of the case, in order
    trail = dossier.wait_get("/v1/cases/%s/events" % case_id)["events"]
    types = [e["type"] for e in trail]
    assert types[0] == "CaseCreated"
    assert types.count("PersonLinked") == 1
    assert types.count("DocumentRequirementDetermined") == 2
    assert "CaseStatusChanged" in types and "NotificationRequired" in types
    assert [e["version"] for e in trail] == list(range(1, len(trail) + 1))

    # an illegal transition is refused with 409 and a reason
    r = _set_doc(dossier, docs[0]["document_id"], "VERIFIED")
    assert r.status == 409, r
    assert r.json()["error"] and r.json()["detail"]
    # approval before review is refused
    r = dossier.post("/v1/cases/%s/decision" % case_id, {"decision": "APPROVE"})
    assert r.status == 409, r

    # upload both: the case moves to IN_REVIEW by itself
    for d in docs:
        r = _set_doc(dossier, d["document_id"], "UPLOADED")
        assert r.status == 200, r
    _wait_status(dossier, case_id, "IN_REVIEW")

    # reject one: it goes back to AWAITING_UPLOAD and so does the case
    r = _set_doc(dossier, docs[0]["document_id"], "REJECTED", "blurred scan")
    assert r.status == 200, r
    _wait_status(dossier, case_id, "AWAITING_DOCUMENTS")
    doc = wait_for(lambda: (lambda x: x if x["status"] == "AWAITING_UPLOAD" else None)(
        dossier.wait_get("/v1/documents/" + docs[0]["document_id"])), 10, what="document back to upload")
    assert any(h["to"] == "REJECTED" for h in doc["history"])
    assert _set_doc(dossier, docs[0]["document_id"], "UPLOADED").status == 200
    _wait_status(dossier, case_id, "IN_REVIEW")

    for d in docs:
        r = _set_doc(dossier, d["document_id"], "VERIFIED")
        assert r.status == 200, r
    r = dossier.post("/v1/cases/%s/decision" % case_id, {"decision": "APPROVE", "reason": "all good"})
    assert r.status == 200, r
    assert r.json()["status"] == "APPROVED"
    _wait_status(dossier, case_id, "APPROVED")
    r = dossier.post("/v1/cases/%s/close" % case_id, {})
    assert r.status == 200, r
    case = _wait_status(dossier, case_id, "CLOSED")
    assert all(d["status"] == "VERIFIED" for d in case["documents"])
    # a closed case takes no decision
    assert dossier.post("/v1/cases/%s/decision" % case_id, {"decision": "REJECT"}).status == 409


def test_kyb_case_read_models(dossier, kyb_record):
    rec = copy.deepcopy(kyb_record)
    rec["client_id"] = "E2E-KYB-1"
    case_id = _create(dossier, rec)
    case = dossier.wait_get("/v1/cases/" + case_id)
    assert case["traitement_type"] == "KYB"
    company = case["company"]
    assert company["registered_name"] == "Nordlicht Logistik GmbH"
    assert company["country_of_incorporation"] == "DE"
    assert len(case["persons"]) == 2
    assert all(p["company_id"] == company["company_id"] for p in case["persons"])
    assert len(case["beneficial_owners"]) == 3

    c = dossier.wait_get("/v1/companies/" + company["company_id"])
    assert c["case_id"] == case_id and c["registration_number"] == "HRB 123456"
    bos = dossier.wait_get("/v1/companies/%s/beneficial-owners" % company["company_id"])["items"]
    assert sorted(b["ownership_percentage"] for b in bos) == [10, 30, 60]
    assert [b["is_ubo"] for b in sorted(bos, key=lambda b: -b["ownership_percentage"])] == [True, True, False]

    types = sorted(d["document_type"] for d in case["documents"])
    # company: 3 documents; each UBO (2 of the 3 owners): an identity document
    assert types == sorted(["CERTIFICATE_OF_INCORPORATION", "ARTICLES_OF_ASSOCIATION",
                            "UBO_REGISTER_EXTRACT", "IDENTITY_DOCUMENT", "IDENTITY_DOCUMENT"])
    trail = [e["type"] for e in dossier.wait_get("/v1/cases/%s/events" % case_id)["events"]]
    assert trail.count("CompanyProfileCreated") == 1
    assert trail.count("BeneficialOwnerAdded") == 3
    assert trail.count("PersonLinked") == 2

    for d in case["documents"]:
        assert _set_doc(dossier, d["document_id"], "UPLOADED").status == 200
    _wait_status(dossier, case_id, "IN_REVIEW")
    r = dossier.post("/v1/cases/%s/decision" % case_id, {"decision": "REJECT", "reason": "sanctions hit"})
    assert r.status == 200, r
    _wait_status(dossier, case_id, "REJECTED")


def test_list_filters_and_pagination(dossier, kyc_record):
    ids = []
    for i in range(7):
        rec = copy.deepcopy(kyc_record)
        rec["client_id"] = "E2E-PAGE-%d" % i
        ids.append(_create(dossier, rec))
    for case_id in ids:
        dossier.wait_get("/v1/cases/" + case_id)
    seen, cursor = [], None
    while True:
        r = dossier.get("/v1/cases?traitement_type=KYC&status=AWAITING_DOCUMENTS&limit=3"
                        + ("&cursor=" + cursor if cursor else ""))
        assert r.status == 200, r
        page = r.json()
        assert len(page["items"]) <= 3
        seen += [c["case_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(ids) <= set(seen)
    assert len(seen) == len(set(seen))
    only = dossier.get("/v1/cases?client_id=E2E-PAGE-3").json()["items"]
    assert [c["case_id"] for c in only] == [ids[3]]
    assert dossier.get("/v1/cases?status=NOPE").status == 400
    assert dossier.get("/v1/cases?traitement_type=XYZ").status == 400


def test_not_found_and_methods(dossier):
    r = dossier.get("/v1/cases/00000000-0000-4000-8000-000000000000")
    assert r.status == 404 and r.json()["error"]
    assert dossier.get("/v1/nothing-here").status == 404
    r = dossier.request("DELETE", "/v1/cases")
    assert r.status == 405 and r.json()["error"]
    assert dossier.get("/health").json()["status"] == "ok"
    assert dossier.get("/ready").status == 200


def test_notifications_relayed_with_event_ids(dossier, kyc_record):
    rec = copy.deepcopy(kyc_record)
    rec["client_id"] = "E2E-NOTIFY-1"
    case_id = _create(dossier, rec)
    dossier.wait_get("/v1/cases/" + case_id)
    import os
    path = os.path.join(dossier.data, "notifications.jsonl")

    def relayed():
        want = set(dossier.events_of_type("NotificationRequired"))
        if not os.path.exists(path):
            return None
        with open(path) as f:
            got = [json.loads(line) for line in f if line.strip()]
        ids = {n["id"] for n in got}
        return got if want and want <= ids else None

    got = wait_for(relayed, 20, what="notifications relayed")
    mine = [n for n in got if n["case_id"] == case_id]
    assert len(mine) == 1
    assert mine[0]["template_id"] == "kyc_case_opened"
    assert mine[0]["rule_id"] == "NTF-KYC-CREATED"


def test_logs_are_json_lines_without_personal_data(dossier, kyc_record):
    rec = copy.deepcopy(kyc_record)
    rec["client_id"] = "E2E-LOGS-1"
    rec["persons"][0].update(firstname="Zebulon", lastname="Quixotic", birthdate="1971-03-09")
    case_id = _create(dossier, rec)
    dossier.wait_get("/v1/cases/" + case_id)
    with open(dossier.log_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    for line in lines:
        entry = json.loads(line)          # every line is one JSON object
        assert {"time", "level", "process", "msg"} <= entry.keys(), entry
    assert "Zebulon" not in text and "Quixotic" not in text and "1971-03-09" not in text
    assert case_id in text                # correlation: the case id is logged


def test_traceparent_is_followed_into_the_handler_log(dossier, kyc_record):
    """A W3C traceparent sent with a command reaches the handler (in the envelope) and
    every line it logs about that command carries the caller's trace id."""
    rec = copy.deepcopy(kyc_record)
    rec["client_id"] = "E2E-TRACE-1"
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = dossier.post("/v1/cases", rec, headers={
        "traceparent": "00-%s-00f067aa0ba902b7-01" % trace_id, "Idempotency-Key": "e2e-trace-1"})
    assert r.status in (200, 201), r.body
    case_id = r.json()["case_id"]

    def traced():
        with open(dossier.log_path, "rb") as f:
            entries = [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]
        return [e for e in entries if e.get("trace_id") == trace_id] or None
    lines = wait_for(traced, 10, what="a log line with the trace id")
    assert any(e["process"] == "handler" and e.get("case_id") == case_id for e in lines), lines
    # A malformed traceparent is ignored (a new trace starts), never refused.
    bad = copy.deepcopy(kyc_record)
    bad["client_id"] = "E2E-TRACE-2"
    r = dossier.post("/v1/cases", bad, headers={"traceparent": "not-a-trace", "Idempotency-Key": "e2e-trace-2"})
    assert r.status in (200, 201), r.body


def test_children_keep_mongoc_counters_out_of_shared_memory(dossier):
    """libmongoc initialises itself before main and, when /dev/shm/mongoc-<pid> is left
    over from a killed process with the same pid, prints a plain-text warning that breaks
    the JSON log (seen in CI). The supervisor starts every child with MONGOC_DISABLE_SHM."""
    pids = [p["pid"] for p in dossier.status() if p["pid"] > 0]
    assert pids
    for pid in pids:
        with open("/proc/%d/environ" % pid, "rb") as f:
            env = f.read().split(b"\0")
        assert b"MONGOC_DISABLE_SHM=1" in env, pid
