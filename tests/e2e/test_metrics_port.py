"""Each process's own scrape and health port (metrics_port, common/metrics_http.c), as
containers use it: under one supervisor the supervisor answers on the base port and
its n-th child (`dossier status` order, from 1) on base + n. Every process serves its
own /metrics with its process label, /healthz and /ready; a handler whose main loop
is frozen while its other threads run answers 503 on /healthz within the stall limit
(and the gateway's /ready names it), and 200 again once it runs."""
import ctypes
import os
import signal
import socket
import urllib.error
import urllib.request

import pytest

from dossier_harness import Dossier, wait_for
from test_metrics import parse, series

STALL_MS = 3000


def _free_range(n):
    """A base port with base..base+n-1 all free on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no %d free ports in a row" % n)


def _get(port, path, timeout=5):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def _families(port):
    return parse(_get(port, "/metrics")[2])


@pytest.fixture(scope="module")
def dossier():
    base = _free_range(16)
    d = Dossier(extra_env={"DOSSIER_METRICS_PORT": "127.0.0.1:%d" % base,
                           "DOSSIER_HEALTH_STALL_MS": str(STALL_MS)})
    d.metrics_base = base
    d.start()
    yield d
    d.stop()
    d.cleanup()


def _ports(d):
    """(name, instance, pid, port) of the supervisor and every child."""
    rows = d.status()
    out = [("supervisor", 0, d.proc.pid, d.metrics_base)]
    out += [(r["name"], r["instance"], r["pid"], d.metrics_base + 1 + i) for i, r in enumerate(rows)]
    return out


def test_every_process_answers_on_its_own_port(dossier):
    procs = _ports(dossier)
    assert len(procs) == 10, procs
    for name, instance, _, port in procs:
        status, ctype, body = _get(port, "/metrics")
        assert status == 200, (name, status, body)
        assert ctype.startswith("text/plain; version=0.0.4"), ctype
        # Only this process's registry: every sample carries its own labels.
        families = parse(body)
        labels = {(l.get("process"), l.get("instance")) for fam in families.values() for _, l, _ in fam["samples"]}
        assert labels == {(name, str(instance))}, (name, instance, labels)
        # Its health as a state set: ok now.
        health = {l["state"]: v for _, l, v in series(families, "dossier_process_health")}
        assert health == {"ok": 1, "starting": 0, "not_ready": 0, "stalled": 0}, (name, health)
        assert _get(port, "/healthz") == (200, "application/json", '{"status":"ok"}'), name
        wait_for(lambda: _get(port, "/ready")[0] == 200, 30, what="%s#%d /ready" % (name, instance))
        status, ctype, body = _get(port, "/nope")
        assert status == 404 and ctype == "application/json" and '"error"' in body, (name, status, body)
    # The supervisor's own families are in the supervisor's answer, not a child's.
    families = parse(_get(dossier.metrics_base, "/metrics")[2])
    assert series(families, "dossier_supervisor_child_up", child="handler")


def test_a_written_case_shows_in_the_handlers_own_metrics(dossier, kyc_record):
    r = dossier.post("/v1/cases", kyc_record, headers={"Idempotency-Key": "scrape-1"})
    assert r.status in (200, 201), r
    handlers = [p for p in _ports(dossier) if p[0] == "handler"]

    def answered():
        return sum(sum(v for n, _, v in series(_families(port), "dossier_handler_commands_total")
                       if n == "dossier_handler_commands_total")
                   for _, _, _, port in handlers) >= 1
    wait_for(answered, 20, what="a handler's own /metrics counts the command")


_PTRACE_DETACH, _PTRACE_SEIZE, _PTRACE_INTERRUPT = 17, 0x4206, 0x4207
_WALL = 0x40000000


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    return libc


def test_a_frozen_main_loop_turns_healthz_503(dossier):
    """ptrace stops one thread (the main one, tid = pid), unlike SIGSTOP, which stops
    the whole process: the loop is stuck while the port's own thread still answers,
    which is what a deadlocked or endlessly busy loop looks like from outside."""
    name, instance, pid, port = next(p for p in _ports(dossier) if p[0] == "handler")
    assert _get(port, "/healthz")[0] == 200
    libc = _libc()
    if libc.ptrace(_PTRACE_SEIZE, pid, None, None) != 0:
        err = ctypes.get_errno()
        pytest.fail("cannot ptrace the handler (%s): this test needs CAP_SYS_PTRACE or ptrace_scope 0/1"
                    % os.strerror(err))
    try:
        assert libc.ptrace(_PTRACE_INTERRUPT, pid, None, None) == 0
        os.waitpid(pid, _WALL)                  # the main thread is stopped now
        wait_for(lambda: _get(port, "/healthz")[0] == 503, STALL_MS / 1000 + 10, interval=0.2,
                 what="a frozen handler's /healthz 503")
        status, _, body = _get(port, "/healthz")
        assert status == 503 and '"status":"stalled"' in body, body
        assert _get(port, "/ready")[0] == 503
        # Other processes are not affected.
        store = next(p for p in _ports(dossier) if p[0] == "store")
        assert _get(store[3], "/healthz")[0] == 200
        # On one host the gateway's /ready names it too: the handler's metrics file
        # (written by its own thread, not the loop) says stalled.
        r = wait_for(lambda: (lambda r: r if r.status == 503 else None)(dossier.get("/ready", timeout=5)), 10,
                     interval=0.2, what="the gateway's /ready 503")
        assert "%s#%d stalled" % (name, instance) in r.json()["reasons"], r
    finally:
        libc.ptrace(_PTRACE_DETACH, pid, None, None)
    wait_for(lambda: _get(port, "/healthz")[0] == 200, 10, what="the handler's /healthz back to 200")
    wait_for(lambda: dossier.get("/ready").status == 200, 15, what="the gateway's /ready 200 again")
    assert dossier.pids("handler").count(pid) == 1, "the handler was restarted rather than resumed"


def _state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_sigstop_of_the_whole_process_leaves_no_answer(dossier):
    """SIGSTOP stops every thread, the port's too: the probe gets no answer at all,
    which probes count as a failure just as they do a 503."""
    _, _, pid, port = next(p for p in _ports(dossier) if p[0] == "handler")
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: _state(pid) == "T", 10, what="the handler stopped")
        with pytest.raises((socket.timeout, urllib.error.URLError, TimeoutError)):
            _get(port, "/healthz", timeout=2)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: _get(port, "/healthz")[0] == 200, 30, what="the handler's /healthz after SIGCONT")
