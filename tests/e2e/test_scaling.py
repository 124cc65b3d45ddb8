"""Scaling proven, not claimed (issue 7): the same 10,000 generated records ingested
once with one of each process and once with handler=3, projector=2, gateway=2,
ingest=2 under the supervisor give the same event log (per stream: the same events,
types, versions, event ids, command ids and payloads) and the same read models,
and each equals `dossier rebuild --to` of its own log.

"The same" is modulo what cannot be the same between two runs: global positions
(positions of different cases interleave differently: seq, updated_position,
position, and "position" inside the audit-trail JSON) and wall-clock times (the
handler stamps created_at / changed_at / updated_at when it decides) and trace context
(each run's commands start their own traces: "traceparent" in the audit-trail JSON). A rebuild of
one run's log is compared byte for byte, positions, times and checkpoints included.

The first test sends the records through `dossier ingest FILE`, which only ingest
instance 0 serves (the second is there, ready, idle), on SQLite and on MongoDB
(FerretDB: fewer records). The second sends them through Kafka (SQLite), where the
two ingest processes of the consumer group each take a share. The gateways are shown
to both answer by each one's own request counter (run/metrics/gateway-<i>.prom)."""
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import _start
from dossier_harness import ROOT, BIN_DIR, wait_for

N = int(os.environ.get("DOSSIER_SCALING_RECORDS", "10000"))
# FerretDB is far slower than SQLite on this machine: fewer records there.
N_MONGO = int(os.environ.get("DOSSIER_SCALING_RECORDS_MONGO", "1500"))

ONE = {"store": 1, "broker": 1, "handler": 1, "projector": 1, "notifier": 1, "scheduler": 1,
       "gateway": 1, "ingest": 1}
SCALED = dict(ONE, handler=3, projector=2, gateway=2, ingest=2)
# Three projectors, two partitions claimed by lease: two active, one standby.
AUTO = dict(ONE, projector=3)
LEASE_MS = 6000   # renewed every 2 s: a loaded machine with FerretDB can hold a batch for seconds
AUTO_ENV = {"DOSSIER_PROJECTOR_PARTITION": "auto", "DOSSIER_PROJECTOR_PARTITIONS": "2",
            "DOSSIER_PROJECTOR_LEASE_MS": str(LEASE_MS)}

TIME = re.compile(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"')
POSITION_IN_JSON = re.compile(r'"position":\d+')
# Each run starts its own traces (the handler begins one for a command that has none).
TRACEPARENT_IN_JSON = re.compile(r'(\\?"traceparent\\?":\\?")[0-9a-f-]+')
POSITION_COLUMNS = {"seq", "updated_position", "position", "case_seq"}


def partition_of(case_id, count):
    """common/partition.c in Python: FNV-1a 32, then MurmurHash3's fmix32, mod count."""
    h = 2166136261
    for b in case_id.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h % count


def _normal(value):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        value = TRACEPARENT_IN_JSON.sub(r'\1<trace>', value)
        return POSITION_IN_JSON.sub('"position":0', TIME.sub('"<time>"', value))
    return value


def _sqlite_log(d):
    """{(stream, version): (event_id, type, command_id, payload)}: the log modulo positions and times."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.data, "events.db"), uri=True, timeout=30)
    try:
        rows = con.execute("SELECT stream, version, event_id, type, command_id, data FROM events").fetchall()
    finally:
        con.close()
    return {(s, v): (e, t, c, _normal(data)) for s, v, e, t, c, data in rows}


def _mongo_log(d):
    """The same from MongoDB: one document per command (_id = command id), its events inside."""
    out = {}
    for doc in d._mongo_db()["events"].find({}):
        for e in doc["events"]:
            out[(doc["stream"], e["version"])] = (e["id"], e["type"], doc["_id"], _normal(bytes(e["data"])))
    return out


def _event_log(d):
    return _mongo_log(d) if d.backend == "mongodb" else _sqlite_log(d)


def _sqlite_tables(path, keep_positions=False):
    """{table: sorted rows}; without keep_positions, position-valued columns are left
    out, times and positions inside JSON blanked, and the checkpoint table skipped."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        out = {}
        for t in tables:
            if t == "checkpoint" and not keep_positions:
                continue
            cur = con.execute("SELECT * FROM %s" % t)
            names = [c[0] for c in cur.description]
            rows = []
            for row in cur.fetchall():
                if keep_positions:
                    rows.append(tuple(row))
                else:
                    rows.append(tuple(_normal(v) for n, v in zip(names, row) if n not in POSITION_COLUMNS))
            out[t] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


def _mongo_tables(db, keep_positions=False):
    def clean(doc):
        if isinstance(doc, dict):
            return {k: clean(v) for k, v in doc.items() if keep_positions or k not in POSITION_COLUMNS}
        if isinstance(doc, list):
            items = [clean(v) for v in doc]
            return sorted(items, key=repr) if all(isinstance(v, str) for v in items) else items
        return doc if keep_positions else _normal(doc)
    out = {}
    for name in sorted(db.list_collection_names()):
        if not name.startswith("rm_") or (name == "rm_checkpoints" and not keep_positions):
            continue
        docs = []
        for doc in db[name].find({}):
            if not keep_positions and name == "rm_case_events":
                doc.pop("_id", None)            # keyed by position there
            docs.append(json.dumps(clean(doc), sort_keys=True, default=repr))
        out[name] = sorted(docs)
    return out


def _read_models(d, target=None, keep_positions=False):
    if d.backend == "mongodb":
        return _mongo_tables(d._mongo()[target or d.mongodb_database], keep_positions)
    return _sqlite_tables(target or os.path.join(d.data, "readmodels.db"), keep_positions)


def _wait_running(d, processes):
    def all_running():
        running = {}
        for p in d.status():
            if p["state"] == "running":
                running[p["name"]] = running.get(p["name"], 0) + 1
        return running if running == processes else None
    wait_for(all_running, 60, interval=0.5, what="every instance running: %s" % processes)


def _same(log_one, models_one, log, models):
    """The two runs' logs and read models are equal modulo positions and times."""
    assert len(log) == len(log_one) and log.keys() == log_one.keys()
    differ = [k for k in log if log[k] != log_one[k]]
    assert not differ, "events differ, e.g. %r: %r vs %r" % (differ[0], log[differ[0]], log_one[differ[0]])
    assert models.keys() == models_one.keys()
    for table in models:
        assert models[table] == models_one[table], "read model %s differs from the one-of-each run" % table


def _gateway_requests(d, instance):
    """Requests gateway <instance> counted (its own metrics file), or None."""
    path = os.path.join(d.data, "run", "metrics", "gateway-%d.prom" % instance)
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("dossier_http_requests_total{"))


@pytest.fixture
def start(request):
    """start(processes, backend) -> a running Dossier, stopped and checked at the end."""
    gens = []

    def make(processes, backend, extra_env=None):
        kw = {"processes": processes, "backend": backend, "extra_env": extra_env}
        if backend == "mongodb":
            kw["mongodb_uri"] = request.getfixturevalue("ferretdb").uri
        gen = _start(request, **kw)
        d = next(gen)
        gens.append(gen)
        return d
    yield make
    for gen in reversed(gens):
        next(gen, None)


def _ingest_and_settle(d, path, count, tmp_path, name, partitions=None):
    r = d.cli("ingest", str(path), "--json", "--timeout", "600", timeout=900)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    summary = json.loads(r.stdout)
    assert summary["accepted"] == count and summary["rejected"] == 0, summary
    return _settle(d, count, tmp_path, name, partitions)


def _settle(d, count, tmp_path, name, partitions=None):
    """Waits for every partition to reach the head, rebuilds into a target; (head, target)."""
    head = d.event_count()
    assert head > count
    wait_for(lambda: d.projector_checkpoint(partitions) >= head, 300, interval=0.5,
             what="every projector partition at the head (%d)" % head)
    assert d.event_count() == head, "the log grew after ingestion settled"
    target = d.rebuild_target(tmp_path) if d.backend == "mongodb" else str(tmp_path / ("%s.db" % name))
    if d.backend == "mongodb":
        target = target + "_" + name
    d.cli("rebuild", "--to", target, check=True, timeout=600)
    return head, target


@pytest.mark.parametrize("backend", [b for b in os.environ.get("DOSSIER_TEST_BACKENDS", "sqlite,mongodb").split(",")
                                     if b])
def test_scaled_out_gives_the_same_log_and_read_models(start, tmp_path, backend):
    n = N if backend == "sqlite" else N_MONGO
    path = tmp_path / "records.jsonl"
    with open(path, "w") as f:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_records.py"),
                        "--count", str(n), "--seed", "7", "--prefix", "SCALE"], stdout=f, check=True)

    # -- one of each ---------------------------------------------------------------
    one = start(ONE, backend)
    head_one, rebuilt_one = _ingest_and_settle(one, path, n, tmp_path, "one")
    assert set(one.projector_checkpoints()) == {"projector"}
    log_one = _event_log(one)
    models_one = _read_models(one)
    assert models_one == _read_models(one, rebuilt_one), "one projector: live read models != rebuild"
    assert len(log_one) == head_one
    one.stop()

    # -- handler=3, projector=2, gateway=2, ingest=2 ------------------------------
    d = start(SCALED, backend)
    _wait_running(d, SCALED)
    head, rebuilt = _ingest_and_settle(d, path, n, tmp_path, "scaled")

    # each partition's checkpoint reached the head, under its own name
    checkpoints = d.projector_checkpoints()
    assert set(checkpoints) == {"projector/0-of-2", "projector/1-of-2"}, checkpoints
    assert all(v == head for v in checkpoints.values()), (checkpoints, head)

    # the same log and read models, modulo positions and times
    log = _event_log(d)
    assert head == head_one
    models = _read_models(d)
    _same(log_one, models_one, log, models)
    # both partitions had work
    streams = {s for s, _ in log}
    per_partition = [sum(1 for s in streams if partition_of(s, 2) == p) for p in (0, 1)]
    assert min(per_partition) > len(streams) // 4, per_partition

    # and exactly a replay of this run's log, positions and checkpoints included
    live = _read_models(d, keep_positions=True)
    assert live == _read_models(d, rebuilt, keep_positions=True), "two partitions != rebuild --to"

    # both gateways answer: each new connection lands on one of them (SO_REUSEPORT)
    case_id = d.list_all("")[0]["case_id"]
    def both_counted():
        for _ in range(20):
            assert d.get("/v1/cases/%s" % case_id).status == 200
        counts = [_gateway_requests(d, i) for i in (0, 1)]
        return counts if all(c and c > 0 for c in counts) else None
    wait_for(both_counted, 60, interval=1.0, what="requests counted by both gateways")

    if backend == "sqlite":
        # a rebuild in place by partition 0 rewrites every partition and every
        # checkpoint; partition 1 notices its checkpoint moved and carries on
        d.cli("rebuild", check=True, timeout=600)
        wait_for(lambda: d.projector_checkpoint() >= head, 120, interval=0.5, what="partitions at the head")
        assert _read_models(d, keep_positions=True) == live, "rebuild in place != the live read models"


N_KAFKA = int(os.environ.get("DOSSIER_SCALING_RECORDS_KAFKA", "10000"))


def test_scaled_out_over_kafka_gives_the_same_log_and_read_models(kafka, kafka_dossier, tmp_path):
    """The same comparison with the records coming from Kafka (4 partitions), so that
    both ingest processes of the scaled run take a share of them (consumer group)."""
    from kafka_harness import gen_records, setup_topics, wait_cases
    records = gen_records(N_KAFKA, "SCALEK", seed=7)
    runs = {}
    for name, processes in (("one", ONE), ("scaled", SCALED)):
        env = setup_topics(kafka, "scale-" + name)
        topic, group = env["DOSSIER_KAFKA_TOPIC"], env["DOSSIER_KAFKA_GROUP"]
        d = kafka_dossier(processes=processes, **env)
        _wait_running(d, processes)
        kafka.wait_group_assigned(group, topic, members=processes["ingest"])
        kafka.produce(topic, records)
        wait_cases(d, "SCALEK-", len(records), timeout=600)
        rows = kafka.wait_group_caught_up(group, topic)
        per_member = {}
        for r in rows.values():
            per_member[r["consumer_id"]] = per_member.get(r["consumer_id"], 0) + (r["current"] or 0)
        assert len(per_member) == processes["ingest"] and all(v > 0 for v in per_member.values()), per_member
        head, rebuilt = _settle(d, len(records), tmp_path, name)
        models = _read_models(d)
        live = _read_models(d, keep_positions=True)
        assert live == _read_models(d, rebuilt, keep_positions=True), "%s: live read models != rebuild" % name
        runs[name] = (_event_log(d), models, d.projector_checkpoints(), head)
        d.stop()
    log_one, models_one, checkpoints_one, head_one = runs["one"]
    log, models, checkpoints, head = runs["scaled"]
    assert set(checkpoints_one) == {"projector"}
    assert checkpoints == {"projector/0-of-2": head, "projector/1-of-2": head}, checkpoints
    assert head == head_one
    _same(log_one, models_one, log, models)


def _set_processes(d, processes):
    """Rewrites the processes section of d's config (takes effect at the next start)."""
    with open(d.config) as f:
        lines = f.read().splitlines()
    out, section = [], None
    for line in lines:
        if not line.startswith(" "):
            section = line.strip()
        elif section == "processes":
            continue
        out.append(line)
        if line.strip() == "processes":
            out += ["    %s = %d" % (k, v) for k, v in processes.items()]
    with open(d.config, "w") as f:
        f.write("\n".join(out) + "\n")


def test_two_projectors_take_over_from_one(start, tmp_path):
    """Scaling out on existing read models: one projector builds them; then, with no
    projector running, more records come in; then two partitions start from the one
    projector's checkpoint (the least row), catch up side by side on one SQLite file
    (shared transactions, each waiting for the other's lock), and the result is a
    replay of the log."""
    paths = []
    for prefix, count in (("JOIN1", 2000), ("JOIN2", 6000)):
        path = tmp_path / ("%s.jsonl" % prefix)
        with open(path, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_records.py"), "--count", str(count),
                            "--seed", "11", "--prefix", prefix], stdout=f, check=True)
        paths.append((path, count))
    d = start(ONE, "sqlite")
    _ingest_and_settle(d, paths[0][0], paths[0][1], tmp_path, "first")
    first = d.projector_checkpoints()
    assert list(first) == ["projector"]
    d.stop()

    no_projector = dict(ONE, projector=0)
    _set_processes(d, no_projector)
    d.start()
    _wait_running(d, {k: v for k, v in no_projector.items() if v})
    r = d.cli("ingest", str(paths[1][0]), "--json", "--timeout", "600", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["accepted"] == paths[1][1]
    assert d.projector_checkpoints() == first
    d.stop()

    _set_processes(d, SCALED)
    d.start()
    _wait_running(d, SCALED)
    head, rebuilt = _settle(d, paths[1][1], tmp_path, "joined", partitions=2)
    checkpoints = d.projector_checkpoints()
    # the one projector's row stays (a rebuild clears it); both partitions at the head
    assert checkpoints == dict(first, **{"projector/0-of-2": head, "projector/1-of-2": head}), checkpoints
    live = _read_models(d, keep_positions=True)
    again = _read_models(d, rebuilt, keep_positions=True)
    assert again.pop("checkpoint") == [("projector/0-of-2", head), ("projector/1-of-2", head)]
    live.pop("checkpoint")
    assert live == again, "read models after scaling out != a replay of the log"
    assert len([c for c in d.list_all("") if c["client_id"].startswith("JOIN")]) == 8000
    # neither starved the other: a batch waits up to 10 s for the lock before it counts
    # as not applied (readmodel_sqlite.c), and none had to
    with open(d.log_path, errors="replace") as f:
        refused = [line for line in f if '"process":"projector"' in line and "not applied" in line]
    assert not refused, refused[:3]


def test_rebuild_in_place_while_two_partitions_follow_the_feed(start, tmp_path):
    """`dossier rebuild` in place (by partition 0, for both) while records keep coming
    in: partition 1 waits for the file's lock, then finds its checkpoint moved (back or
    forward) and follows from there. The end: a replay of the log, rows and checkpoints."""
    n = 4000
    path = tmp_path / "records.jsonl"
    with open(path, "w") as f:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_records.py"), "--count", str(n),
                        "--seed", "13", "--prefix", "LIVE"], stdout=f, check=True)
    d = start(SCALED, "sqlite")
    _wait_running(d, SCALED)
    ingest = subprocess.Popen([os.path.join(BIN_DIR, "dossier"), "--config", d.config, "ingest", str(path),
                               "--json", "--timeout", "600"], env=d.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    rebuilds = 0
    while ingest.poll() is None or rebuilds == 0:
        if d.event_count() > 0:
            d.cli("rebuild", check=True, timeout=600)
            rebuilds += 1
    out, err = ingest.communicate(timeout=600)
    assert ingest.returncode == 0, err[-3000:]
    assert json.loads(out)["accepted"] == n
    head, rebuilt = _settle(d, n, tmp_path, "live", partitions=2)
    with open(d.log_path, errors="replace") as f:
        moved = sum(1 for line in f if "moved from" in line)
    print("%d rebuilds in place while ingesting; a partition found its checkpoint moved %d times"
          % (rebuilds, moved))
    assert _read_models(d, keep_positions=True) == _read_models(d, rebuilt, keep_positions=True), \
        "read models after rebuilds in place under load != a replay of the log"


def _leases(d, count=2):
    """{partition: (owner, expires_at)} of the leases of count partitions."""
    if d.backend == "mongodb":
        return {doc["partition"]: (doc["owner"], doc["expires_at"])
                for doc in d._mongo_db()["rm_projector_leases"].find({"partitions": count})}
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.data, "readmodels.db"), uri=True, timeout=30)
    try:
        rows = con.execute("SELECT partition_index, owner, expires_at FROM projector_leases "
                           "WHERE partition_count = ?", (count,)).fetchall()
    except sqlite3.OperationalError:
        rows = []                                   # no lease claimed yet
    finally:
        con.close()
    return {i: (owner, expires) for i, owner, expires in rows}


def _owner_pid(owner):
    """A lease owner is <hostname>-<pid>-<random> (projector_lease.c)."""
    return int(owner.rsplit("-", 2)[1])


def _active(d):
    """{partition: pid} of unexpired leases whose owner is a running projector."""
    now = time.time() * 1000
    running = set(d.pids("projector"))
    return {i: _owner_pid(owner) for i, (owner, expires) in _leases(d).items()
            if expires > now and _owner_pid(owner) in running}


def _log_lines(d, pid, text):
    with open(d.log_path, errors="replace") as f:
        return [line for line in f if '"pid":%d,' % pid in line and text in line]


def _same_as_replay(d, head, rebuilt):
    assert d.projector_checkpoints() == {"projector/0-of-2": head, "projector/1-of-2": head}
    live = _read_models(d, keep_positions=True)
    again = _read_models(d, rebuilt, keep_positions=True)
    # who projects is not a read model: the rebuilt target has no leases
    leases = live.pop("rm_projector_leases" if d.backend == "mongodb" else "projector_leases")
    assert len(leases) == 2, leases
    assert live == again, "read models with leased partitions != a replay of the log (checkpoints included)"


@pytest.mark.parametrize("backend", [b for b in os.environ.get("DOSSIER_TEST_BACKENDS", "sqlite,mongodb").split(",")
                                     if b])
def test_three_projectors_lease_two_partitions_and_a_standby_takes_over(start, tmp_path, backend):
    """projector_partition = auto under the supervisor, as `docker compose up --scale
    projector=3` with DOSSIER_PROJECTOR_PARTITIONS=2 would run it: every instance has the
    same settings; two claim a partition each by lease, the third waits as a standby.
    The read models equal a replay of the log. Then kill -9 the holder of partition 0
    (which also serves `dossier rebuild`) while records come in: a standby (the old
    one, or the killed one restarted by the supervisor) takes partition 0 once its
    lease expires, binds the control socket, and the read models again equal a replay.
    On SQLite (table projector_leases) and MongoDB (rm_projector_leases; fewer records)."""
    n = 1500 if backend == "sqlite" else 400
    paths = []
    for prefix, count in (("LEASE1", n), ("LEASE2", n)):
        path = tmp_path / ("%s.jsonl" % prefix)
        with open(path, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_records.py"), "--count", str(count),
                            "--seed", "17", "--prefix", prefix], stdout=f, check=True)
        paths.append((path, count))
    d = start(AUTO, backend, AUTO_ENV)
    _wait_running(d, AUTO)
    def leased(not_by=None):
        """_active(d) once both partitions are held, partition 0 not by not_by (one look:
        a takeover may be under way between two)."""
        now = _active(d)
        return now if len(now) == 2 and now[0] != not_by else None
    active = wait_for(leased, 30, interval=0.2, what="two partitions leased")
    pids = d.pids("projector")
    standby = set(pids) - set(active.values())
    assert len(standby) == 1, (pids, active)
    standby = standby.pop()
    assert _log_lines(d, standby, "standby: every one of the 2 partitions is leased"), "no standby line"
    for partition, pid in active.items():
        assert _log_lines(d, pid, "claimed partition %d of 2 by lease" % partition)

    head, rebuilt = _ingest_and_settle(d, paths[0][0], paths[0][1], tmp_path, "leased", partitions=2)
    _same_as_replay(d, head, rebuilt)

    victim = active[0]
    ingest = subprocess.Popen([os.path.join(BIN_DIR, "dossier"), "--config", d.config, "ingest",
                               str(paths[1][0]), "--json", "--timeout", "600"], env=d.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: d.event_count() > head + n // 8, 60, what="second ingestion under way")
    killed_at = time.time()
    os.kill(victim, signal.SIGKILL)
    taken = wait_for(lambda: leased(not_by=victim), 60, interval=0.1, what="partition 0 taken over")
    took = time.time() - killed_at
    print("partition 0 taken over by pid %d %.1f s after its holder was killed (lease %d ms)"
          % (taken[0], took, LEASE_MS))
    assert taken[1] == active[1], "partition 1 changed hands without reason"
    assert _log_lines(d, taken[0], "claimed partition 0 of 2 by lease")
    out, err = ingest.communicate(timeout=600)
    assert ingest.returncode == 0, err[-3000:]
    assert json.loads(out)["accepted"] == paths[1][1]
    # the supervisor restarted the victim: three run again, one of them a standby
    _wait_running(d, AUTO)
    head, rebuilt = _settle(d, paths[1][1], tmp_path, "taken_over", partitions=2)
    _same_as_replay(d, head, rebuilt)
    assert len(_active(d)) == 2
    assert len([c for c in d.list_all("") if c["client_id"].startswith("LEASE")]) == 2 * n
