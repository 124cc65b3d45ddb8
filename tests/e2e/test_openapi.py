"""The REST API against its description. GET /openapi.json serves schemas/openapi.json
as built into the gateway; schemathesis (pinned, in the virtualenv scripts/install-deps.sh
makes under .cache/) then drives a running Dossier from that description: the examples, coverage, fuzzing and stateful
phases, a bounded number of cases per operation, and the checks that every answer is
documented (no 5xx, a documented status, content type, headers and body schema).
Known cases, companies, persons and documents are seeded first and offered as path
ids half of the time, so the bodies of real read models are checked too, not only the
404s of random ids."""
import copy
import glob
import json
import os
import subprocess
import sys

import pytest

from dossier_harness import ROOT, wait_for

SPEC = os.path.join(ROOT, "schemas", "openapi.json")
RECORD_SCHEMA = os.path.join(ROOT, "schemas", "client_record.schema.json")
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")
MAX_EXAMPLES = int(os.environ.get("DOSSIER_OPENAPI_EXAMPLES", "8"))
SEED = os.environ.get("DOSSIER_OPENAPI_SEED", "20261")


def _spec():
    with open(SPEC) as f:
        return json.load(f)


def test_gateway_serves_the_spec_file(dossier):
    r = dossier.get("/openapi.json")
    assert r.status == 200, r
    assert r.headers.get("Content-Type") == "application/json", r.headers
    assert json.loads(r.body) == _spec()
    head = dossier.request("HEAD", "/openapi.json")
    assert head.status == 200 and head.body == b"", head
    assert int(head.headers["Content-Length"]) == len(r.body)


def test_spec_routes_match_the_gateway(dossier):
    """Every documented method answers something other than 404/405 on a known path
    shape; every undocumented one of GET/POST/PATCH is a 405 (the routing table and the
    description cannot drift apart)."""
    spec = _spec()
    for path, item in spec["paths"].items():
        concrete = path.replace("{id}", "no-such-id")
        for method in ("get", "post", "patch"):
            r = dossier.request(method.upper(), concrete, body="{}" if method != "get" else None,
                                headers={"Content-Type": "application/json"} if method != "get" else None)
            if method in item:
                assert r.status != 405, (method, path, r)
                if "{id}" not in path:
                    assert r.status != 404, (method, path, r)
            else:
                assert r.status == 405, (method, path, r)
                assert r.json()["error"] == "method_not_allowed"


def test_spec_client_record_is_the_schema_file():
    """components.schemas.ClientRecord (with its Record_* definitions) is
    schemas/client_record.schema.json, $refs renamed: one contract, not two."""
    with open(RECORD_SCHEMA) as f:
        record = json.load(f)

    def reref(node):
        if isinstance(node, dict):
            return {k: ("#/components/schemas/Record_" + v[len("#/$defs/"):]
                        if k == "$ref" and v.startswith("#/$defs/") else reref(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [reref(v) for v in node]
        return node

    schemas = _spec()["components"]["schemas"]
    expected = {k: reref(v) for k, v in record.items() if k not in ("$schema", "$id", "$defs")}
    assert schemas["ClientRecord"] == expected
    for name, definition in record["$defs"].items():
        assert schemas["Record_" + name] == reref(definition), name


# -- seeding: a closed KYC case and a KYB case with a rejected document --------------

def _post_ok(dossier, path, body, key=None):
    headers = {"Idempotency-Key": '"%s"' % key} if key else {}
    r = dossier.post(path, body, headers=headers)
    assert r.status in (200, 201), r
    return r.json()


def _docs(dossier, case_id):
    return dossier.wait_get("/v1/cases/%s/documents" % case_id)["items"]


def _wait_case(dossier, case_id, pred, what):
    return wait_for(lambda: (lambda c: c if pred(c) else None)(dossier.wait_get("/v1/cases/" + case_id)),
                    30, what=what)


def _seed(dossier, tag):
    with open(os.path.join(ROOT, "examples", "kyc_individual.json")) as f:
        kyc = json.load(f)
    with open(os.path.join(ROOT, "examples", "kyb_company.json")) as f:
        kyb = json.load(f)
    kyc, kyb = copy.deepcopy(kyc), copy.deepcopy(kyb)
    kyc["client_id"] = "OPENAPI-KYC-" + tag
    kyb["client_id"] = "OPENAPI-KYB-" + tag

    kyc_id = _post_ok(dossier, "/v1/cases", kyc, "openapi-kyc-" + tag)["case_id"]
    kyb_id = _post_ok(dossier, "/v1/cases", kyb, "openapi-kyb-" + tag)["case_id"]
    for doc in _docs(dossier, kyc_id):
        _post_ok(dossier, "/v1/documents/%s/status" % doc["document_id"], {"status": "UPLOADED"})
    _wait_case(dossier, kyc_id, lambda c: c["status"] == "IN_REVIEW", "KYC case in review")
    for doc in _docs(dossier, kyc_id):
        _post_ok(dossier, "/v1/documents/%s/status" % doc["document_id"],
                 {"status": "VERIFIED", "reason": "looks right"})
    _wait_case(dossier, kyc_id, lambda c: all(d["status"] == "VERIFIED" for d in c["documents"]),
               "KYC documents verified")
    _post_ok(dossier, "/v1/cases/%s/decision" % kyc_id, {"decision": "APPROVE", "reason": "checks passed"})
    _post_ok(dossier, "/v1/cases/%s/close" % kyc_id, {})
    first = _docs(dossier, kyb_id)[0]["document_id"]
    _post_ok(dossier, "/v1/documents/%s/status" % first, {"status": "UPLOADED"})
    _post_ok(dossier, "/v1/documents/%s/status" % first, {"status": "REJECTED", "reason": "unreadable scan"})

    kyc_case = _wait_case(dossier, kyc_id, lambda c: c["status"] == "CLOSED", "KYC case closed")
    kyb_case = _wait_case(dossier, kyb_id, lambda c: any(d["history"] for d in c["documents"]),
                          "KYB document history")
    cases = [kyc_case, kyb_case]
    return {
        "case_ids": [c["case_id"] for c in cases],
        "company_ids": [kyb_case["company"]["company_id"]],
        "person_ids": [p["person_id"] for c in cases for p in c["persons"]],
        "document_ids": [d["document_id"] for c in cases for d in c["documents"]],
    }


def _config(ids):
    """A schemathesis.toml: the seeded ids as dictionaries, offered for {id} half the time."""
    lines = []
    for name, values in ids.items():
        lines.append("[dictionaries.%s]" % name)
        lines.append("values = %s" % json.dumps(values))
        lines.append("")
    bindings = [("^/v1/cases/", "case_ids"), ("^/v1/companies/", "company_ids"),
                ("^/v1/persons/", "person_ids"), ("^/v1/documents/", "document_ids")]
    for regex, name in bindings:
        lines.append("[[operations]]")
        lines.append("include-path-regex = %s" % json.dumps(regex))
        lines.append('parameters = { "path.id" = { dictionary = "%s", probability = 0.5 } }' % name)
        lines.append("")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def seeded(dossier):
    return _seed(dossier, dossier.backend)


def _st_python():
    """The python that has schemathesis: the virtualenv scripts/install-deps.sh makes
    under .cache/, else (a developer's own install) the one running pytest."""
    found = sorted(glob.glob(os.path.join(ROOT, ".cache", "schemathesis-*", "bin", "python")))
    if found:
        return found[-1]
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        pytest.fail("schemathesis is not installed: run scripts/install-deps.sh")
    return sys.executable


# Runs in schemathesis' python: each request of the list, answer checked by
# schemathesis' own validate_response (documented status, content type, headers, body).
VALIDATOR = r"""
import json, sys
import requests
import schemathesis
job = json.load(sys.stdin)
ops = schemathesis.openapi.from_path(job["spec"])
failures = 0
for method, template, path, body, headers, expect in job["requests"]:
    r = requests.request(method, job["base"] + path, data=body, headers=headers, timeout=30)
    problem = None
    if expect is not None and r.status_code != expect:
        problem = "status %d, expected %d" % (r.status_code, expect)
    else:
        try:
            ops[template][method].validate_response(r)
        except Exception as e:
            problem = str(e)
    if problem:
        failures += 1
        print("%s %s -> %d: %s\nbody: %r\n" % (method, path, r.status_code, problem, r.content[:1500]))
    else:
        print("ok %s %s -> %d" % (method, path, r.status_code))
sys.exit(1 if failures else 0)
"""


def test_real_answers_conform(dossier, seeded):
    """Deterministic companion of the schemathesis run: every read model of the seeded
    cases, and the write answers and errors a client meets, checked against the
    description (status documented, content type, headers, body schema)."""
    requests_ = []

    def v(method, template, path, body=None, headers=None, expect=None):
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        requests_.append([method, template, path, body, headers, expect])

    v("GET", "/health", "/health", expect=200)
    v("GET", "/ready", "/ready", expect=200)
    v("GET", "/openapi.json", "/openapi.json", expect=200)
    for case_id in seeded["case_ids"]:
        v("GET", "/v1/cases/{id}", "/v1/cases/" + case_id, expect=200)
        v("GET", "/v1/cases/{id}/events", "/v1/cases/%s/events" % case_id, expect=200)
        v("GET", "/v1/cases/{id}/documents", "/v1/cases/%s/documents" % case_id, expect=200)
    for company_id in seeded["company_ids"]:
        v("GET", "/v1/companies/{id}", "/v1/companies/" + company_id, expect=200)
        v("GET", "/v1/companies/{id}/beneficial-owners", "/v1/companies/%s/beneficial-owners" % company_id,
          expect=200)
    for person_id in seeded["person_ids"]:
        v("GET", "/v1/persons/{id}", "/v1/persons/" + person_id, expect=200)
    for document_id in seeded["document_ids"]:
        v("GET", "/v1/documents/{id}", "/v1/documents/" + document_id, expect=200)
    for query in ("", "?limit=1", "?traitement_type=KYB&status=AWAITING_DOCUMENTS", "?client_id=nobody"):
        v("GET", "/v1/cases", "/v1/cases" + query, expect=200)
    page = dossier.get("/v1/cases?limit=1").json()
    assert page["next_cursor"], page
    v("GET", "/v1/cases", "/v1/cases?limit=1&cursor=" + page["next_cursor"], expect=200)

    # errors
    v("GET", "/v1/cases", "/v1/cases?limit=0", expect=400)
    v("GET", "/v1/cases", "/v1/cases?cursor=not-ours", expect=400)
    v("GET", "/v1/cases/{id}", "/v1/cases/no-such-case", expect=404)
    v("GET", "/v1/persons/{id}", "/v1/persons/%2F", expect=404)
    v("POST", "/v1/cases", "/v1/cases", body="{", headers={"Content-Type": "application/json"}, expect=400)
    v("POST", "/v1/cases", "/v1/cases", body="{}", headers={"Content-Type": "text/plain"}, expect=415)
    v("POST", "/v1/cases", "/v1/cases", body={}, headers={"Idempotency-Key": "\"\""}, expect=400)
    v("POST", "/v1/cases", "/v1/cases", body={"client_id": "x"}, expect=422)
    v("POST", "/v1/cases", "/v1/cases", body="x" * (2 * 1024 * 1024),
      headers={"Content-Type": "application/json"}, expect=413)
    closed = seeded["case_ids"][0]
    v("POST", "/v1/cases/{id}/decision", "/v1/cases/%s/decision" % closed, body={"decision": "APPROVE"},
      expect=409)
    v("POST", "/v1/cases/{id}/decision", "/v1/cases/%s/decision" % closed, body={"decision": "MAYBE"},
      expect=422)
    v("POST", "/v1/cases/{id}/close", "/v1/cases/no-such-case/close", body={}, expect=404)
    v("POST", "/v1/documents/{id}/status", "/v1/documents/%s/status" % seeded["document_ids"][0],
      body={"status": "UPLOADED"}, expect=409)
    v("PATCH", "/v1/documents/{id}", "/v1/documents/%s" % seeded["document_ids"][0],
      body={"status": "VERIFIED"}, expect=409)

    # a create and its replay: 201 then 200, both with Location
    with open(os.path.join(ROOT, "examples", "kyc_individual.json")) as f:
        record = json.load(f)
    record["client_id"] = "OPENAPI-REPLAY-" + dossier.backend
    key = {"Idempotency-Key": "openapi-replay-" + dossier.backend}
    v("POST", "/v1/cases", "/v1/cases", body=record, headers=key, expect=201)
    v("POST", "/v1/cases", "/v1/cases", body=record, headers=key, expect=200)

    job = {"spec": SPEC, "base": "http://127.0.0.1:%d" % dossier.port, "requests": requests_}
    r = subprocess.run([_st_python(), "-c", VALIDATOR], input=json.dumps(job).encode(),
                       capture_output=True, timeout=300)
    out = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
    print(out)
    assert r.returncode == 0, "answers that do not conform to schemas/openapi.json:\n" + out[-20000:]


def test_schemathesis_finds_every_answer_documented(dossier, seeded, tmp_path):
    ids = seeded
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(ids))
    cmd = [_st_python(), "-m", "schemathesis.cli",
        "--config-file", str(config), "run", "http://127.0.0.1:%d/openapi.json" % dossier.port,
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", SEED,
        "--workers", "1",
        "--request-timeout", "20",
        "--generation-database", "none",
        "--no-color",
    ]
    r = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, timeout=600,
                       env=dict(os.environ, SCHEMATHESIS_HOOKS=""))
    out = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
    print(out)      # shown with -s or -rP: phases, coverage, warnings
    if len(out) > 30000:
        out = out[:15000] + "\n[...]\n" + out[-15000:]
    assert r.returncode == 0, "schemathesis found answers the description does not allow:\n" + out
    # the gateway lived through it
    assert dossier.get("/health").status == 200
