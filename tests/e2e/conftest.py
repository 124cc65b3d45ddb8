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
        print("---- dossier log (tail) ----\n" + d.tail_log(200))
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


@pytest.fixture(scope="module")
def dossier(request):
    """One Dossier for a whole test module."""
    yield from _start(request)


@pytest.fixture
def fresh_dossier(request):
    """A private Dossier for one test (fault tests)."""
    yield from _start(request)


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
