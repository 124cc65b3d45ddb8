"""pytest fixtures: a running Dossier shared by a module's tests, or a private one."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from dossier_harness import ROOT, Dossier  # noqa: E402


def _start(request, **kw):
    d = Dossier(**kw)
    try:
        d.start()
    except Exception:
        print(d.tail_log(200))
        d.kill()
        raise
    yield d
    try:
        children = [p["pid"] for p in d.status() if p["pid"] > 0]
    except Exception:  # status itself is tested elsewhere; stopping must still be checked
        children = []
    code = d.stop()
    alive = [pid for pid in children if _alive(pid)]
    d.kill()   # clean up whatever is left before asserting
    assert not alive, "processes left after the supervisor stopped: %s" % alive
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    if failed:
        print("---- dossier log (digest) ----\n" + d.digest_log())
        if kw.get("backend") == "mongodb":
            print("---- FerretDB log (tail) ----\n" + request.getfixturevalue("ferretdb").tail_log(30))
    assert code == 0, "supervisor exit code %s\n%s" % (code, d.tail_log(80))
    if not failed:
        d.cleanup()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead; only a running process counts
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# Every test that uses `dossier` or `fresh_dossier` runs once per storage backend:
# the embedded SQLite files, and MongoDB (the session's FerretDB, one database per
# Dossier). DOSSIER_TEST_BACKENDS=sqlite (or mongodb) runs just one.
BACKENDS = [b for b in os.environ.get("DOSSIER_TEST_BACKENDS", "sqlite,mongodb").split(",") if b]


def _backend(request):
    if request.param == "mongodb":
        return {"backend": "mongodb", "mongodb_uri": request.getfixturevalue("ferretdb").uri}
    return {"backend": request.param}


@pytest.fixture(scope="session")
def ferretdb(request):
    """One MongoDB wire-protocol server (FerretDB, tests/e2e/ferretdb_harness.py) for the
    session, started on first use on a free port and a temp directory."""
    from ferretdb_harness import FerretDB
    server = FerretDB()
    server.start()
    yield server
    server.stop()
    if request.session.testsfailed:
        print("FerretDB files kept in %s" % server.dir)
    else:
        server.cleanup()


@pytest.fixture(scope="module", params=BACKENDS)
def dossier(request):
    """One Dossier for a whole test module (per backend)."""
    yield from _start(request, **_backend(request))


@pytest.fixture(params=BACKENDS)
def fresh_dossier(request):
    """A private Dossier for one test (fault tests), per backend."""
    yield from _start(request, **_backend(request))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def kyc_record():
    with open(os.path.join(ROOT, "examples", "kyc_individual.json")) as f:
        return json.load(f)


@pytest.fixture
def kyb_record():
    with open(os.path.join(ROOT, "examples", "kyb_company.json")) as f:
        return json.load(f)


# -- Kafka (tests/e2e/test_kafka_*.py) ----------------------------------------------

@pytest.fixture(scope="session")
def kafka(request):
    """One real Apache Kafka broker (KRaft, 127.0.0.1, free ports) for the whole session,
    started on first use; jars come from `scripts/kafka.sh fetch` (cached in .cache/)."""
    from kafka_harness import Kafka
    k = Kafka()
    try:
        k.start()
    except Exception:
        print(k.tail_log(200))
        k.stop()
        raise
    yield k
    k.stop()
    if request.session.testsfailed:
        print("kafka broker files kept in %s" % k.dir)
    else:
        k.cleanup()


@pytest.fixture
def kafka_dossier(request, kafka):
    """Factory: kafka_dossier(processes=None, **env) starts a private Dossier whose ingest
    consumes and whose notifier produces to the session's broker (DOSSIER_KAFKA_BROKERS),
    with env (e.g. DOSSIER_KAFKA_TOPIC) on top. Each is stopped and checked like
    fresh_dossier at the end of the test."""
    started = []

    def make(processes=None, **env):
        gen = _start(request, processes=processes,
                     extra_env=dict({"DOSSIER_KAFKA_BROKERS": kafka.bootstrap}, **env))
        d = next(gen)
        started.append(gen)
        return d
    yield make
    errors = []
    for gen in reversed(started):
        try:
            next(gen, None)     # the rest of _start: stop, check, clean up
        except AssertionError as e:
            errors.append(e)
    if errors:
        raise errors[0]
