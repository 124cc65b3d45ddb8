"""Harness for the Kafka end-to-end tests: a real single-node Apache Kafka 3.9 in
KRaft mode on 127.0.0.1 (jars from `scripts/kafka.sh fetch`), records produced and
read back with kcat (a client that is not ours), topics and consumer-group offsets
through Kafka's own tools. `python3 tests/e2e/kafka_harness.py` starts a broker by
hand and prints its address."""
import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import time

from dossier_harness import ROOT, free_port, wait_for

LIBS = os.path.join(ROOT, ".cache", "kafka", "libs")
CLASSPATH = os.path.join(LIBS, "*")
# Short-lived tool JVMs (topics, groups, storage) start faster with the C1 compiler only.
TOOL_JVM = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]


def fetch():
    """Makes sure the broker jars are in .cache/kafka/libs (downloads only the first time)."""
    r = subprocess.run([os.path.join(ROOT, "scripts", "kafka.sh"), "fetch"],
                       capture_output=True, timeout=900)
    if r.returncode != 0:
        raise AssertionError("scripts/kafka.sh fetch failed (%d):\n%s%s"
                             % (r.returncode, r.stdout.decode(), r.stderr.decode()[-3000:]))


class KafkaError(AssertionError):
    pass


class Kafka:
    """One single-node broker (broker and controller in one JVM) in a temp dir.
    stop() then start() brings it back on the same ports with the same data."""

    def __init__(self, heap="512m"):
        self.dir = tempfile.mkdtemp(prefix="kafka-", dir="/tmp")
        self.port = free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.heap = heap
        self.log_dir = os.path.join(self.dir, "logs")        # the broker's own log4j files
        self.data_dir = os.path.join(self.dir, "data")       # partitions and metadata log
        self.properties = os.path.join(self.dir, "server.properties")
        self.proc = None
        self.out = None
        self.cluster_id = None

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    # -- lifecycle ---------------------------------------------------------
    def _write_config(self):
        os.makedirs(self.log_dir, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": "1@127.0.0.1:%d" % self.controller_port,
            "listeners": "PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d" % (self.port, self.controller_port),
            "advertised.listeners": "PLAINTEXT://127.0.0.1:%d" % self.port,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.data_dir,
            "num.partitions": "4",
            "default.replication.factor": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            # 50 partitions of __consumer_offsets take seconds to create on 2 cores
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.hours": "24",
        }
        with open(self.properties, "w") as f:
            f.writelines("%s=%s\n" % kv for kv in props.items())
        with open(os.path.join(self.dir, "log4j.properties"), "w") as f:
            f.write("log4j.rootLogger=INFO, file\n"
                    "log4j.appender.file=org.apache.log4j.FileAppender\n"
                    "log4j.appender.file.File=%s\n"
                    "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
                    "log4j.appender.file.layout.ConversionPattern=[%%d] %%p %%m (%%c)%%n\n"
                    "log4j.logger.kafka.request.logger=WARN\n"
                    "log4j.logger.state.change.logger=WARN\n"
                    % os.path.join(self.log_dir, "server.log"))
        with open(os.path.join(self.dir, "tools-log4j.properties"), "w") as f:
            f.write("log4j.rootLogger=WARN, stderr\n"
                    "log4j.appender.stderr=org.apache.log4j.ConsoleAppender\n"
                    "log4j.appender.stderr.Target=System.err\n"
                    "log4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n"
                    "log4j.appender.stderr.layout.ConversionPattern=%p %m (%c)%n\n")

    def tool(self, main, *args, timeout=120, check=True):
        """Runs one of Kafka's command-line classes; returns the CompletedProcess."""
        cmd = (["java"] + TOOL_JVM
               + ["-Dlog4j.configuration=file:" + os.path.join(self.dir, "tools-log4j.properties"),
                  "-cp", CLASSPATH, main] + list(args))
        r = subprocess.run(cmd, capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise KafkaError("%s %s -> %d\nstdout: %s\nstderr: %s"
                             % (main, " ".join(args), r.returncode, r.stdout.decode()[-2000:],
                                r.stderr.decode()[-3000:]))
        return r

    def _format(self):
        self.cluster_id = self.tool("kafka.tools.StorageTool", "random-uuid").stdout.decode().strip()
        self.tool("kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", self.properties)

    def start(self, timeout=120):
        """Starts the broker (formatting its storage the first time) and waits until it
        answers a metadata request. Returns self."""
        if not os.path.isdir(LIBS) or not os.path.exists(os.path.join(LIBS, ".fetched")):
            fetch()
        if self.cluster_id is None:
            self._write_config()
            self._format()
        self.out = open(os.path.join(self.log_dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen(
            ["java", "-Xmx" + self.heap, "-Xms" + self.heap, "-XX:+UseG1GC", "-Djava.awt.headless=true",
             "-Dlog4j.configuration=file:" + os.path.join(self.dir, "log4j.properties"),
             "-Dkafka.logs.dir=" + self.log_dir,
             "-cp", CLASSPATH, "kafka.Kafka", self.properties],
            stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(lambda: self.proc.poll() is not None or self.answers(), timeout, interval=0.2,
                     what="kafka broker on %s" % self.bootstrap)
        except AssertionError:
            raise KafkaError("broker did not answer within %ds; log:\n%s" % (timeout, self.tail_log()))
        if self.proc.poll() is not None:
            raise KafkaError("broker exited with %s; log:\n%s" % (self.proc.returncode, self.tail_log()))
        return self

    def answers(self):
        """True when the broker answers a metadata request (kcat -L)."""
        r = subprocess.run(["kcat", "-L", "-b", self.bootstrap, "-m", "2", "-J"],
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            return False
        try:
            return bool(json.loads(r.stdout).get("brokers"))
        except ValueError:
            return False

    def stop(self, timeout=60):
        """Graceful stop (SIGTERM, controlled shutdown), SIGKILL after timeout. Returns the exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.out and not self.out.closed:
            self.out.close()
        return self.proc.returncode

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def cleanup(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail_log(self, n=60):
        lines = []
        for name in ("stdout.log", "server.log"):
            try:
                with open(os.path.join(self.log_dir, name), "rb") as f:
                    lines += [b"== " + name.encode()] + f.read().splitlines()[-n:]
            except OSError:
                pass
        return b"\n".join(lines).decode("utf-8", "replace")

    # -- topics --------------------------------------------------------------
    def create_topic(self, name, partitions=4):
        self.tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", self.bootstrap, "--create",
                  "--if-not-exists", "--topic", name, "--partitions", str(partitions),
                  "--replication-factor", "1")
        wait_for(lambda: self.partitions(name) == partitions, 30,
                 what="topic %s with %d partitions" % (name, partitions))

    def partitions(self, topic):
        """Number of partitions of topic as the broker reports it (0 when unknown)."""
        r = subprocess.run(["kcat", "-L", "-b", self.bootstrap, "-t", topic, "-m", "5", "-J"],
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            return 0
        for t in json.loads(r.stdout).get("topics", []):
            if t.get("topic") == topic and not t.get("error"):
                return len(t.get("partitions", []))
        return 0

    # -- records ---------------------------------------------------------------
    def produce(self, topic, records, timeout=300, headers=()):
        """Produces (key, value) pairs (str or bytes; neither may hold a newline, the key
        no tab) with kcat, acks=all, waiting until every one is acknowledged (also across
        a broker restart, up to timeout). headers: (name, value) pairs put on every
        record. Returns the number produced."""
        path = os.path.join(self.dir, "produce-%d.txt" % time.monotonic_ns())
        n = 0
        with open(path, "wb") as f:
            for key, value in records:
                key = key.encode() if isinstance(key, str) else key
                value = value.encode() if isinstance(value, str) else value
                if b"\n" in key + value or b"\t" in key:
                    raise ValueError("record %d: newline in key or value, or tab in key" % n)
                f.write(key + b"\t" + value + b"\n")
                n += 1
        try:
            # -E: keep going while the broker is away (the broker-down test produces then)
            args = [a for name, value in headers for a in ("-H", "%s=%s" % (name, value))]
            r = subprocess.run(["kcat", "-E", "-P", "-b", self.bootstrap, "-t", topic, "-K", "\t", "-l",
                                "-X", "acks=all", "-X", "linger.ms=20",
                                "-X", "message.timeout.ms=%d" % (timeout * 1000)] + args + [path],
                               capture_output=True, timeout=timeout + 30)
        finally:
            os.unlink(path)
        # kcat reports failed deliveries on stderr and in its exit code
        if r.returncode != 0 or b"Delivery failed" in r.stderr:
            raise KafkaError("kcat -P %s -> %d: %s" % (topic, r.returncode, r.stderr.decode()[-2000:]))
        return n

    def consume(self, topic, timeout=120):
        """Every record of topic from the beginning, as dicts of kcat's JSON envelope
        (topic, partition, offset, ts, key, payload) with headers as a list of
        (name, value) pairs."""
        r = subprocess.run(["kcat", "-C", "-b", self.bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q",
                            "-m", "10"], capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise KafkaError("kcat -C %s -> %d: %s" % (topic, r.returncode, r.stderr.decode()[-2000:]))
        out = []
        for line in r.stdout.splitlines():
            if not line.strip():
                continue
            m = json.loads(line)
            h = m.get("headers") or []
            m["headers"] = list(zip(h[0::2], h[1::2]))
            out.append(m)
        return out

    def end_offsets(self, topic):
        """{partition: end offset} of topic."""
        ends = {}
        for p in range(self.partitions(topic)):
            r = subprocess.run(["kcat", "-Q", "-b", self.bootstrap, "-t", "%s:%d:-1" % (topic, p), "-m", "10"],
                               capture_output=True, timeout=30)
            # kcat -Q prints "<topic> [<p>] offset <n>"
            words = r.stdout.decode().split()
            if r.returncode != 0 or "offset" not in words:
                raise KafkaError("kcat -Q %s:%d -> %d: %s%s" % (topic, p, r.returncode, r.stdout.decode(),
                                                                 r.stderr.decode()[-1000:]))
            ends[p] = int(words[words.index("offset") + 1])
        return ends

    # -- consumer groups ---------------------------------------------------------
    def describe_group(self, group):
        """The group's partitions as Kafka's own tool reports them: a list of dicts
        {topic, partition, current (committed offset or None), end, lag, consumer_id},
        [] when the group has no committed offsets and no members yet."""
        r = self.tool("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server",
                      self.bootstrap, "--describe", "--group", group, check=False)
        if r.returncode != 0:
            return []
        rows = []
        header = None
        for line in r.stdout.decode().splitlines():
            cols = line.split()
            if not cols:
                continue
            if cols[0] == "GROUP":
                header = cols
                continue
            # a member without partitions shows "-" there: it owns no row
            if header and len(cols) == len(header) and cols[header.index("PARTITION")].isdigit():
                row = dict(zip(header, cols))
                num = lambda v: None if v == "-" else int(v)  # noqa: E731
                rows.append({"topic": row["TOPIC"], "partition": int(row["PARTITION"]),
                             "current": num(row["CURRENT-OFFSET"]), "end": num(row["LOG-END-OFFSET"]),
                             "lag": num(row["LAG"]),
                             "consumer_id": None if row["CONSUMER-ID"] == "-" else row["CONSUMER-ID"]})
        return rows

    def wait_group_assigned(self, group, topic, members=1, timeout=60):
        """Waits until every partition of topic is assigned to a member of group and the
        group has `members` distinct members. Returns the rows of describe_group."""
        n = self.partitions(topic)

        def assigned():
            rows = [r for r in self.describe_group(group) if r["topic"] == topic]
            ids = {r["consumer_id"] for r in rows if r["consumer_id"]}
            ok = len(rows) == n and all(r["consumer_id"] for r in rows) and len(ids) == members
            return rows if ok else None
        return wait_for(assigned, timeout, interval=0.5,
                        what="consumer group %s: %d member(s) assigned all %d partitions of %s "
                             "(is Dossier's ingest consuming Kafka?)" % (group, members, n, topic))

    def wait_group_caught_up(self, group, topic, timeout=180):
        """Waits until group has committed the end offset of every partition of topic."""
        def caught_up():
            ends = self.end_offsets(topic)
            rows = {r["partition"]: r for r in self.describe_group(group) if r["topic"] == topic}
            ok = all(p in rows and rows[p]["current"] == end for p, end in ends.items())
            return rows if ok else None
        return wait_for(caught_up, timeout, interval=1.0,
                        what="consumer group %s committed every offset of %s" % (group, topic))


# -- looking at a Dossier from the Kafka tests ------------------------------------

def case_count(dossier, client_prefix=""):
    """Cases in the read model whose client_id starts with client_prefix (read-only)."""
    path = os.path.join(dossier.data, "readmodels.db")
    if not os.path.exists(path):
        return 0
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM cases WHERE substr(client_id, 1, ?) = ?",
                           (len(client_prefix), client_prefix)).fetchone()[0]
    except sqlite3.OperationalError:   # the projector has not created its tables yet
        return 0
    finally:
        con.close()


def events(dossier, type_):
    """[(event_id, stream, data dict)] of every event of type_ in the log, in order."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(dossier.data, "events.db"), uri=True, timeout=10)
    try:
        return [(r[0], r[1], json.loads(r[2])) for r in
                con.execute("SELECT event_id, stream, data FROM events WHERE type = ? ORDER BY position", (type_,))]
    finally:
        con.close()


def gen_records(count, prefix, seed, kyb_ratio=0.4):
    """Deterministic client records from scripts/gen_records.py, as (client_id, json line) pairs."""
    r = subprocess.run(["python3", os.path.join(ROOT, "scripts", "gen_records.py"), "--count", str(count),
                        "--seed", str(seed), "--prefix", prefix, "--kyb-ratio", str(kyb_ratio)],
                       capture_output=True, check=True, timeout=120)
    out = []
    for line in r.stdout.decode().splitlines():
        out.append((json.loads(line)["client_id"], line))
    return out


PROCESSES = {"store": 1, "broker": 1, "handler": 2, "projector": 1, "notifier": 1, "gateway": 1, "ingest": 1}


def setup_topics(kafka, name):
    """Creates the four topics of one test, 4 partitions each: <name>.kyc_events, its
    .DLT, <name>.notification_events and its .DLT. Returns the Dossier environment that
    points ingest and notifier at them, with consumer group <name>-ingest."""
    topic, notify = name + ".kyc_events", name + ".notification_events"
    for t in (topic, topic + ".DLT", notify, notify + ".DLT"):
        kafka.create_topic(t, 4)
    return {"DOSSIER_KAFKA_TOPIC": topic, "DOSSIER_KAFKA_GROUP": name + "-ingest", "DOSSIER_NOTIFY_TOPIC": notify}


def wait_cases(dossier, prefix, n, timeout=300):
    """Waits until the read model holds n cases of clients named prefix*; fails on more."""
    try:
        wait_for(lambda: case_count(dossier, prefix) >= n, timeout, interval=0.25,
                 what="%d cases of %s* in the read model" % (n, prefix))
    except AssertionError as e:
        raise AssertionError("%s: %d there" % (e, case_count(dossier, prefix)))
    got = case_count(dossier, prefix)
    assert got == n, "expected %d cases of %s*, found %d" % (n, prefix, got)


def check_cases_over_rest(dossier, prefix, records, spot=25):
    """Every client of records has exactly one case listed over REST, and a sample of
    them reads back in full with GET /v1/cases/{id}."""
    items = [c for c in dossier.list_all("") if c["client_id"].startswith(prefix)]
    ids = [c["client_id"] for c in items]
    assert len(items) == len(records), "REST lists %d cases of %s*, expected %d" % (len(items), prefix, len(records))
    assert len(set(ids)) == len(ids), "a client has two cases: %s" % [i for i in set(ids) if ids.count(i) > 1][:5]
    assert set(ids) == {k for k, _ in records}
    by_client = {c["client_id"]: c for c in items}
    step = max(1, len(records) // spot)
    for client_id, line in records[::step]:
        case = dossier.get("/v1/cases/%s" % by_client[client_id]["case_id"])
        assert case.status == 200, case
        body = case.json()
        rec = json.loads(line)
        assert body["client_id"] == client_id and body["traitement_type"] == rec["traitement_type"], body
    return items


def check_notifications(kafka, dossier, topic, timeout=180):
    """Reads topic back with kcat until there is one message per NotificationRequired
    event of the log, then checks each: key = case id, headers `id` and the CloudEvents
    binding, value = the JSON payload of that event. Duplicates (same `id`) are allowed
    (at-least-once) but must be the same message; they are counted.
    Returns {"events": n, "messages": m, "duplicates": m - n}."""
    expected = {eid: (stream, data) for eid, stream, data in events(dossier, "NotificationRequired")}
    state = {}

    def all_there():
        msgs = kafka.consume(topic)
        state["msgs"] = msgs
        ids = {dict(m["headers"]).get("id") for m in msgs}
        state["missing"] = len(set(expected) - ids)
        return not state["missing"]
    try:
        wait_for(all_there, timeout, interval=1.0,
                 what="one message on %s per NotificationRequired event (%d)" % (topic, len(expected)))
    except AssertionError as e:
        raise AssertionError("%s: %d of %d missing, %d messages on the topic"
                             % (e, state.get("missing", len(expected)), len(expected), len(state.get("msgs", []))))
    seen = {}
    for m in state["msgs"]:
        names = [k for k, _ in m["headers"]]
        h = dict(m["headers"])
        assert len(names) == len(h), "a header appears twice: %s" % names
        eid = h.get("id")
        assert eid in expected, "message with id %r is no NotificationRequired event of this Dossier: %s" % (eid, m)
        stream, data = expected[eid]
        assert m["key"] == stream, "key %r is not the case id %r" % (m["key"], stream)
        assert h.get("ce_id") == eid, h
        assert h.get("ce_specversion") == "1.0", h
        assert h.get("ce_type") and h.get("ce_source") and h.get("ce_time"), h
        assert h.get("content-type") == "application/json", h
        payload = json.loads(m["payload"])
        for field in ("notification_id", "case_id", "notification_type", "template_id", "language_code",
                      "recipient_details", "context_data"):
            assert payload.get(field) == data.get(field), "payload field %s: %r != event's %r" % (
                field, payload.get(field), data.get(field))
        if eid in seen:
            assert seen[eid] == (m["key"], m["payload"]), "a duplicate of %s differs from the first copy" % eid
        seen[eid] = (m["key"], m["payload"])
    result = {"events": len(expected), "messages": len(state["msgs"]),
              "duplicates": len(state["msgs"]) - len(expected)}
    print("notifications on %s: %s" % (topic, result))
    return result


def main():
    k = Kafka()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    try:
        k.start()
        print("kafka broker on %s (files in %s); Ctrl-C stops it" % (k.bootstrap, k.dir), flush=True)
        while not stopping and k.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        k.stop()
        k.cleanup()


if __name__ == "__main__":
    main()
