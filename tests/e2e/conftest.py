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
    code = d.stop()
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    if failed:
        print("---- dossier log (tail) ----\n" + d.tail_log(200))
    assert code == 0, "supervisor exit code %s\n%s" % (code, d.tail_log(80))


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
