"""The deploy files checked against the binaries, so that none of them can drift:

* the registry of configuration keys (`dossier config keys --json`) against every
  key the C sources read (config_get calls, endpoints, getenv) and README's table;
* compose/docker-compose.yml: `docker-compose config` accepts it, every command is a
  built binary that accepts its arguments, every DOSSIER_* variable is a registry
  key, every endpoint names the service that binds it, every port is a configured one;
* deploy/k8s/*.yaml: valid against the Kubernetes JSON schemas (kubernetes-validate,
  offline), with the same consistency checks;
* the Dockerfile: two Debian slim stages, every binary built, a runtime library for
  every shared object the binaries need, a non-root user, a /data volume;
* the container topology on one host: every process started alone through
  deploy/entrypoint.sh (no supervisor), TCP endpoints, readiness through the file.
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.parse

import pytest
import yaml

from dossier_harness import BIN_DIR, ROOT, free_port, wait_for

COMPOSE = os.path.join(ROOT, "compose", "docker-compose.yml")
K8S_DIR = os.path.join(ROOT, "deploy", "k8s")
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
DOCKERIGNORE = os.path.join(ROOT, ".dockerignore")
ENTRYPOINT = os.path.join(ROOT, "deploy", "entrypoint.sh")
README = os.path.join(ROOT, "README.md")
K8S_VERSION = "1.30.0"          # the oldest Kubernetes release the manifests must suit
SOURCE_DIRS = ("common", "domain", "broker", "supervisor", "actors", "cli")
DAEMONS = ("store", "broker", "handler", "projector", "notifier", "scheduler", "gateway", "ingest")
# Processes that keep files in data_dir even when store = mongodb (checkpoints).
STATEFUL = ("notifier", "scheduler")
# Wrappers of config_get that take a literal key: file -> (function, config section).
KEY_WRAPPERS = {
    "supervisor/supervisor.c": ("s_setting", "supervisor"),
    "actors/handler/handler_rules.c": ("s_setting", "dossier"),
}
# Wrappers of endpoints_get that take a literal endpoint name.
ENDPOINT_WRAPPERS = ("cli_ctl_connect",)
# Files whose config_get/endpoints_get calls take a variable: the wrappers above, and
# config.c and endpoints.c themselves.
DYNAMIC_OK = {"common/config.c", "common/endpoints.c", "cli/cli_ctl.c"} | set(KEY_WRAPPERS)


def _bin(name):
    return os.path.join(BIN_DIR, name)


# ---- the registry -------------------------------------------------------------------

class Registry:
    def __init__(self, entries):
        self.entries = entries

    def by_env(self, name):
        for e in self.entries:
            env = e["env"]
            if "<" in env:
                prefix = env.split("<")[0]
                if name.startswith(prefix) and len(name) > len(prefix):
                    return e
            elif env == name:
                return e
        return None

    def by_key(self, section, key):
        for e in self.entries:
            if e["section"] != section:
                continue
            if "<" in e["key"]:
                prefix = e["key"].split("<")[0]
                if key.startswith(prefix) and len(key) > len(prefix):
                    return e
            elif e["key"] == key:
                return e
        return None

    def endpoints(self):
        return {e["key"][len("endpoint_"):]: e for e in self.entries
                if e["key"] and e["key"].startswith("endpoint_")}


@pytest.fixture(scope="module")
def registry():
    r = subprocess.run([_bin("dossier"), "config", "keys", "--json"], capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr.decode()
    return Registry(json.loads(r.stdout))


def test_config_keys_command(registry):
    """`dossier config keys` needs no config file and no running process."""
    r = subprocess.run([_bin("dossier"), "--config", "/nonexistent/dossier.cfg", "config", "keys"],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr.decode()
    table = r.stdout.decode()
    assert table.startswith("KEY")
    assert all(e["env"] in table for e in registry.entries)
    for bad in (["config"], ["config", "values"], ["config", "keys", "--bogus"], ["config", "keys", "extra"]):
        r = subprocess.run([_bin("dossier")] + bad, capture_output=True, timeout=20)
        assert r.returncode == 1 and b"usage: dossier config keys" in r.stderr, (bad, r)
    r = subprocess.run([_bin("dossier"), "config", "--help"], capture_output=True, timeout=20)
    assert r.returncode == 0 and r.stdout.startswith(b"usage: dossier config keys"), r


_LEXEMES = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|/\*.*?\*/|//[^\n]*', re.S)


def _strip_comments(text):
    """C source without comments; string and character literals kept intact."""
    return _LEXEMES.sub(lambda m: " " if m.group(0)[0] == "/" else m.group(0), text)


def _sources():
    for d in SOURCE_DIRS:
        for path in sorted(glob.glob(os.path.join(ROOT, d, "**", "*.c"), recursive=True)):
            rel = os.path.relpath(path, ROOT)
            with open(path, encoding="utf-8", errors="replace") as f:
                yield rel, _strip_comments(f.read())


ARG0 = r"\s*\(\s*[^,()]+(?:\([^()]*\))?\s*,\s*"
KEY_CALL = re.compile(r"\b(config_get|config_get_long)" + ARG0 + r"(\"[^\"]*\"|[A-Za-z_][\w>.-]*)")
ENDPOINT_CALL = re.compile(r"\b(endpoints_get|endpoints_get_bind)" + ARG0 + r"(\"[^\"]*\"|[A-Za-z_][\w>.-]*)")
GETENV = re.compile(r"\bgetenv\s*\(\s*\"(DOSSIER_\w*)\"\s*\)")
ENV_FAMILY = re.compile(r"\"(DOSSIER_[A-Z0-9_]+_)\"")
SECTION = re.compile(r"\bzconfig_locate" + ARG0 + r"\"(\w+)\"")


def _read_by_sources():
    """(section, key) pairs, environment variables and env-name prefixes that the
    sources read, and config_get/endpoints_get calls with a non-literal key outside
    the known wrappers."""
    keys, envs, families, sections, dynamic = set(), set(), set(), set(), []
    for rel, text in _sources():
        for fn, arg in KEY_CALL.findall(text):
            if arg.startswith('"'):
                keys.add(("dossier", arg.strip('"')))
            elif rel not in DYNAMIC_OK:
                dynamic.append("%s: %s(..., %s, ...)" % (rel, fn, arg))
        for fn, arg in ENDPOINT_CALL.findall(text):
            if arg.startswith('"'):
                keys.add(("dossier", "endpoint_" + arg.strip('"')))
            elif rel not in DYNAMIC_OK:
                dynamic.append("%s: %s(..., %s)" % (rel, fn, arg))
        for wrapper in ENDPOINT_WRAPPERS:
            for name in re.findall(r"\b%s%s\"(\w+)\"" % (wrapper, ARG0), text):
                keys.add(("dossier", "endpoint_" + name))
        if rel in KEY_WRAPPERS:
            fn, section = KEY_WRAPPERS[rel]
            for name in re.findall(r"\b%s%s\"([^\"]+)\"" % (fn, ARG0), text):
                keys.add((section, name))
        envs.update(GETENV.findall(text))
        families.update(f for f in ENV_FAMILY.findall(text) if f != "DOSSIER_")
        sections.update(SECTION.findall(text))
    return keys, envs, families, sections, dynamic


def test_registry_lists_every_key_the_sources_read(registry):
    keys, envs, families, sections, dynamic = _read_by_sources()
    assert len(keys) > 40, "the source scan found too little: %s" % sorted(keys)
    assert not dynamic, ("config_get/endpoints_get with a key that is not a literal; list its keys in "
                         "common/config_keys.c and its wrapper in this test:\n  " + "\n  ".join(dynamic))
    missing = sorted("%s/%s" % k for k in keys if not registry.by_key(*k))
    assert not missing, "keys read by the sources but missing from common/config_keys.c: %s" % missing
    missing = sorted(e for e in envs if not registry.by_env(e))
    assert not missing, "environment variables read but missing from common/config_keys.c: %s" % missing
    for prefix in families:
        assert any(e["env"].startswith(prefix) for e in registry.entries), \
            "variables %s<NAME> are read, but the registry has none" % prefix
    for section in sections:
        assert any(e["section"] == section for e in registry.entries), "section %s is read" % section

    # ... and nothing in the registry that no source reads any more.
    for e in registry.entries:
        if e["section"] is None:
            assert e["env"] in envs, "%s is in the registry but no source reads it" % e["env"]
        elif "<" in e["env"]:
            assert any(e["env"].startswith(f) for f in families), "%s: nobody reads it" % e["env"]
        else:
            assert (e["section"], e["key"]) in keys, \
                "%s/%s is in the registry but no source reads it" % (e["section"], e["key"])


def _readme_rows():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[1] == "environment":
            continue
        rows.append(cells)
    return rows


def _unquote(cell):
    m = re.fullmatch(r"`([^`]*)`", cell)
    return m.group(1) if m else None


def test_readme_configuration_table_matches_registry(registry):
    rows = _readme_rows()
    assert rows, "README has no configuration table"
    seen = set()
    for key_cell, env_cell, default_cell, meaning in rows:
        env = _unquote(env_cell)
        assert env, "README row %r: the environment cell must be one `NAME`" % key_cell
        entry = next((e for e in registry.entries if e["env"] == env), None)
        assert entry, "README lists %s, which is not in the registry" % env
        seen.add(env)
        if entry["section"] is None:
            assert key_cell in ("—", "-"), "%s: environment only, README shows key %s" % (env, key_cell)
        else:
            shown = entry["key"] if entry["section"] == "dossier" else "%s/%s" % (entry["section"], entry["key"])
            assert _unquote(key_cell) == shown, "%s: README key %s, registry %s" % (env, key_cell, shown)
        expected = "unset" if entry["default"] is None else "`%s`" % entry["default"]
        assert default_cell == expected, "%s: README default %s, registry %s" % (env, default_cell, expected)
        assert meaning, "%s: no meaning in README" % env
    missing = sorted(e["env"] for e in registry.entries if e["env"] not in seen)
    assert not missing, "README's configuration table lacks %s" % missing


# ---- arguments of the commands the deploy files run ---------------------------------

def _check_command(argv, where):
    """argv runs a built binary with arguments it accepts. The dossier CLI gets --help
    (0 for a known command); the processes are started with a configuration file that
    does not exist, which every one of them refuses only after parsing its arguments."""
    assert argv, "%s: no command" % where
    binary = argv[0]
    assert "/" not in binary, "%s: %s must be found on PATH (/usr/local/bin in the image)" % (where, binary)
    path = _bin(binary)
    assert os.access(path, os.X_OK), "%s: %s is not a built binary (%s)" % (where, binary, BIN_DIR)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    if binary == "dossier":
        r = subprocess.run([path] + list(argv[1:]) + ["--help"], capture_output=True, timeout=20, env=env)
        assert r.returncode == 0, "%s: %s: %s" % (where, " ".join(argv), r.stderr.decode())
        return
    env["DOSSIER_CONFIG"] = "/nonexistent/dossier-test-deploy.cfg"
    r = subprocess.run([path] + list(argv[1:]), capture_output=True, timeout=20, env=env)
    err = r.stderr.decode()
    assert r.returncode == 1 and "cannot load" in err and "usage" not in err and "unknown" not in err, \
        "%s: %s does not accept its arguments (exit %d): %s" % (where, " ".join(argv), r.returncode, err)


def test_entrypoint_reports_readiness(tmp_path):
    subprocess.run(["sh", "-n", ENTRYPOINT], check=True)
    assert os.access(ENTRYPOINT, os.X_OK)
    ready = tmp_path / "ready"
    env = dict(os.environ, ENTRYPOINT_READY_FILE=str(ready))
    assert subprocess.run(["sh", ENTRYPOINT, "--ready"], env=env).returncode != 0
    # The command gets the file as descriptor DOSSIER_READY_FD, truncated at start.
    ready.write_text("ready\n")
    r = subprocess.run(["sh", ENTRYPOINT, "sh", "-c", 'echo "fd=$DOSSIER_READY_FD"'],
                       env=env, capture_output=True, timeout=10)
    assert r.stdout.decode().strip() == "fd=3", r
    assert subprocess.run(["sh", ENTRYPOINT, "--ready"], env=env).returncode != 0
    subprocess.run(["sh", ENTRYPOINT, "sh", "-c", 'echo ready >&"$DOSSIER_READY_FD"'], env=env, check=True)
    assert subprocess.run(["sh", ENTRYPOINT, "--ready"], env=env).returncode == 0
    assert subprocess.run(["sh", ENTRYPOINT], env=env, capture_output=True).returncode == 2


# ---- compose ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose():
    """The compose file as `docker-compose config` resolves it (anchors, merges)."""
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is missing: scripts/install-deps.sh installs it (Debian package)"
    r = subprocess.run([tool, "-f", COMPOSE, "config"], capture_output=True, timeout=60,
                       env=dict(os.environ, COMPOSE_PROJECT_NAME="dossier"))
    assert r.returncode == 0, "docker-compose config refused %s:\n%s" % (COMPOSE, r.stderr.decode())
    return yaml.safe_load(r.stdout)


def _dossier_services(compose):
    return {name: svc for name, svc in compose["services"].items()
            if svc.get("image", "").split(":")[0] == "dossier"}


def _process_of(argv):
    """The process an argv runs: dossier-store -> store, dossier ... -> cli."""
    binary = os.path.basename(argv[0])
    return "cli" if binary == "dossier" else binary[len("dossier-"):]


def _endpoint_parts(value, where):
    m = re.fullmatch(r"tcp://([A-Za-z0-9.-]+):(\d+)", value)
    assert m, "%s: %s is not tcp://<service>:<port>" % (where, value)
    return m.group(1), int(m.group(2))


def _http_port(addr, where):
    m = re.fullmatch(r"(.*):(\d+)", addr or "")
    assert m, "%s: http_addr %r is not host:port" % (where, addr)
    return int(m.group(2))


def test_compose_commands_are_binaries_that_accept_their_arguments(compose):
    services = _dossier_services(compose)
    processes = {_process_of(svc["command"]) for svc in services.values()}
    assert set(DAEMONS) <= processes, "compose runs no %s" % sorted(set(DAEMONS) - processes)
    for name, svc in services.items():
        _check_command(svc["command"], "compose service %s" % name)
        assert "entrypoint" not in svc, "%s: the image's entrypoint (tini, readiness file) must stay" % name


def test_compose_environment_is_registry_keys(compose, registry):
    for name, svc in compose["services"].items():
        for var in svc.get("environment", {}) or {}:
            if var.startswith("DOSSIER_"):
                assert registry.by_env(var), "compose service %s sets %s, which no process reads" % (name, var)


def test_compose_endpoints_name_their_binders(compose, registry):
    services = _dossier_services(compose)
    binary_of = {name: _process_of(svc["command"]) for name, svc in services.items()}
    ports = {}
    for name, svc in services.items():
        env = svc.get("environment", {}) or {}
        process = binary_of[name]
        for endpoint, entry in registry.endpoints().items():
            value = env.get(entry["env"])
            deployed = entry["binder"] in binary_of.values()
            if process in entry["processes"] and deployed:
                # unset, it would be an ipc path inside this container: nobody else's
                assert value, "%s (%s) reads %s but compose does not set it" % (name, process, entry["env"])
            if not value:
                continue
            host, port = _endpoint_parts(value, "%s %s" % (name, entry["env"]))
            assert binary_of.get(host) == entry["binder"], \
                "%s: %s=%s, but service %r does not run the %s" % (name, entry["env"], value, host, entry["binder"])
            assert ports.setdefault(endpoint, port) == port, "%s: two ports for %s" % (name, endpoint)
        if process in ("store", "projector", "gateway", "cli"):
            assert env.get("DOSSIER_STORE") == "mongodb", \
                "%s: containers share no files: the log and read models must be in MongoDB" % name
    assert len(set(ports.values())) == len(ports), "two endpoints share a port: %s" % ports


def test_compose_ports_are_configured_ones(compose):
    services = compose["services"]
    for name, svc in services.items():
        assert "container_name" not in svc, "%s: container_name prevents --scale" % name
        for p in svc.get("ports", []) or []:
            published = str(p.get("published", "")) if isinstance(p, dict) else str(p).rsplit(":", 1)[0]
            assert published == "" or "-" in published, \
                "%s publishes the fixed host port %s: a second replica could not start" % (name, published)
    published = {name for name, svc in services.items() if svc.get("ports")}
    dossier = _dossier_services(compose)
    gateways = [n for n, s in dossier.items() if _process_of(s["command"]) == "gateway"]
    assert published <= set(gateways), "only the gateway is reached from outside: %s" % sorted(published)
    for name in gateways:
        svc = dossier[name]
        port = _http_port(svc["environment"].get("DOSSIER_HTTP_ADDR"), name)
        assert svc["environment"]["DOSSIER_HTTP_ADDR"].rsplit(":", 1)[0] in ("0.0.0.0", "", "[::]"), \
            "%s: listening on loopback, the gateway cannot be reached from outside its container" % name
        targets = {int(p["target"]) for p in svc["ports"]}
        assert targets == {port}, "%s: ports %s, but http_addr says %d" % (name, targets, port)
        urls = [a for a in svc["healthcheck"]["test"] if a.startswith("http")]
        assert urls and all(urllib.parse.urlsplit(u).port == port for u in urls), svc["healthcheck"]


def test_compose_health_restart_and_start_order(compose):
    services = compose["services"]
    for name, svc in services.items():
        health = svc.get("healthcheck", {})
        one_shot = svc.get("restart") in ("no", "on-failure")
        if name in _dossier_services(compose) and not one_shot and "tools" not in svc.get("profiles", []):
            assert health.get("test") and health["test"] != ["NONE"], "%s has no health check" % name
            assert svc.get("restart") in ("unless-stopped", "always"), "%s: restart policy" % name
            test = health["test"]
            assert test[0] == "CMD" and test[1] in ("dossier-entrypoint", "curl"), test
        for dep, cond in (svc.get("depends_on") or {}).items():
            target = services[dep]
            condition = cond.get("condition") if isinstance(cond, dict) else "service_started"
            if condition == "service_healthy":
                t = target.get("healthcheck", {}).get("test")
                assert t and t != ["NONE"], "%s waits for %s to be healthy, which has no health check" % (name, dep)
            elif condition == "service_completed_successfully":
                assert target.get("restart") in ("no", "on-failure"), \
                    "%s waits for %s to complete, but %s is a long-running service" % (name, dep, dep)
    for name in STATEFUL:
        svc = next(s for s in _dossier_services(compose).values() if _process_of(s["command"]) == name)
        assert svc["environment"].get("DOSSIER_DATA_DIR") == "/data"
        targets = [v.get("target") if isinstance(v, dict) else str(v).split(":")[1] for v in svc.get("volumes", [])]
        assert "/data" in targets, "%s keeps its checkpoint in /data: it needs a volume" % name


def test_compose_every_process_has_its_scrape_and_health_port(compose):
    """Containers share no files, so each process but the gateway (its /metrics and
    /ready are on its HTTP port) is scraped and checked on its own metrics port."""
    for name, svc in _dossier_services(compose).items():
        process = _process_of(svc["command"])
        if process in ("gateway", "cli") or svc.get("restart") in ("no", "on-failure"):
            continue
        port = svc["environment"].get("DOSSIER_METRICS_PORT")
        assert port and port != "0", "%s has no metrics_port" % name
        port = _http_port(port if ":" in port else ":" + port, name)
        assert str(port) in [str(p) for p in svc.get("expose", [])], "%s does not expose %d" % (name, port)
        urls = [a for a in svc["healthcheck"]["test"] if a.startswith("http")]
        assert urls and all(urllib.parse.urlsplit(u).port == port and urllib.parse.urlsplit(u).path == "/ready"
                            for u in urls), "%s: health check %s" % (name, svc["healthcheck"]["test"])


# ---- Kubernetes ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def k8s_docs():
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S_DIR, "*.yaml"))):
        with open(path) as f:
            docs += [(os.path.basename(path), d) for d in yaml.safe_load_all(f) if d]
    assert docs, "no manifests in %s" % K8S_DIR
    return docs


def test_k8s_manifests_validate_against_schemas(k8s_docs):
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate is missing: scripts/install-deps.sh installs it (PyPI)")
    errors = []
    for name, doc in k8s_docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except Exception as e:  # ValidationError, or a kind without a schema
            errors.append("%s %s/%s: %s" % (name, doc.get("kind"), doc.get("metadata", {}).get("name"),
                                            str(e).splitlines()[0]))
    assert not errors, "\n".join(errors)


def _workloads(docs):
    return [d for _, d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet")]


def _pod_containers(workload):
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []), spec["containers"]


def _k8s_env(docs):
    """Variables every pod gets from the ConfigMap and the Secret, by object name."""
    maps = {}
    for _, d in docs:
        if d["kind"] == "ConfigMap":
            maps[("configMapRef", d["metadata"]["name"])] = d.get("data", {})
        elif d["kind"] == "Secret":
            maps[("secretRef", d["metadata"]["name"])] = dict(d.get("stringData", {}))
    return maps


def _container_env(container, maps):
    env = {}
    for ref in container.get("envFrom", []):
        kind = next(iter(ref))
        key = (kind, ref[kind]["name"])
        assert key in maps, "%s takes its environment from %s, which is not defined" % (container["name"], key)
        env.update(maps[key])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value")
    return env


def test_k8s_containers_commands_env_probes_resources(k8s_docs, registry):
    maps = _k8s_env(k8s_docs)
    for source in maps.values():
        for var in source:
            assert registry.by_env(var), "%s in a ConfigMap/Secret is not a registry key" % var
    processes = set()
    for w in _workloads(k8s_docs):
        name = w["metadata"]["name"]
        init, containers = _pod_containers(w)
        for c in init + containers:
            where = "%s/%s" % (name, c["name"])
            assert c["image"].split(":")[0] == "dossier", where
            assert "command" not in c, "%s: the image's entrypoint (tini, readiness file) must stay" % where
            _check_command(c["args"], where)
            env = _container_env(c, maps)
            for var in env:
                assert registry.by_env(var), "%s sets %s, which no process reads" % (where, var)
            res = c.get("resources", {})
            assert res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory"), where
            assert res.get("limits", {}).get("memory"), "%s: no memory limit" % where
            sec = c.get("securityContext", {})
            assert sec.get("allowPrivilegeEscalation") is False and sec.get("readOnlyRootFilesystem"), where
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"].get("runAsNonRoot") is True, name
        for c in containers:
            processes.add(_process_of(c["args"]))
            assert c.get("readinessProbe"), "%s/%s has no readiness probe" % (name, c["name"])
            port_names = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                p = c.get(probe)
                if not p:
                    continue
                handler = p.get("httpGet") or p.get("tcpSocket")
                if handler:
                    assert handler["port"] in port_names or handler["port"] in port_names.values(), \
                        "%s/%s %s probes port %s, which it does not declare" % (name, c["name"], probe, handler["port"])
                else:
                    assert p["exec"]["command"] == ["dossier-entrypoint", "--ready"], p
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, "%s: the readiness file needs a writable /tmp" % name
        if any(_process_of(c["args"]) in ("store",) + STATEFUL for c in containers):
            assert w["kind"] == "StatefulSet" and w["spec"]["replicas"] == 1, \
                "%s: a single writer / owner of local state must be a StatefulSet of one" % name
        if any(_process_of(c["args"]) in STATEFUL for c in containers):
            claims = [t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])]
            data = [m["name"] for c in containers for m in c["volumeMounts"] if m["mountPath"] == "/data"]
            assert data and data[0] in claims, "%s: /data must be a persistent volume" % name
    assert set(DAEMONS) <= processes, "no workload runs %s" % sorted(set(DAEMONS) - processes)


def test_k8s_every_process_is_scraped_and_probed_on_its_metrics_port(k8s_docs):
    maps = _k8s_env(k8s_docs)
    for w in _workloads(k8s_docs):
        template = w["spec"]["template"]
        for c in template["spec"]["containers"]:
            process = _process_of(c["args"])
            if process == "gateway":
                continue
            where = "%s/%s" % (w["metadata"]["name"], c["name"])
            value = _container_env(c, maps).get("DOSSIER_METRICS_PORT")
            assert value and value != "0", "%s has no metrics_port" % where
            port = _http_port(value if ":" in value else ":" + value, where)
            named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            assert named.get("metrics") == port, "%s: no containerPort metrics = %d" % (where, port)
            notes = template["metadata"].get("annotations", {})
            assert notes.get("prometheus.io/scrape") == "true" and notes.get("prometheus.io/port") == str(port), \
                "%s: scrape annotations %s" % (where, notes)
            for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/healthz")):
                get = c.get(probe, {}).get("httpGet", {})
                assert get.get("path") == path and get.get("port") == "metrics", "%s %s: %s" % (where, probe, c.get(probe))


def test_k8s_services_and_endpoints_agree(k8s_docs, registry):
    maps = _k8s_env(k8s_docs)
    workloads = _workloads(k8s_docs)

    def selected(service):
        sel = service["spec"].get("selector", {})
        found = [w for w in workloads
                 if all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        assert len(found) == 1, "Service %s selects %d workloads" % (service["metadata"]["name"], len(found))
        return found[0]

    services = {d["metadata"]["name"]: d for _, d in k8s_docs if d["kind"] == "Service"}
    for w in workloads:
        if w["kind"] == "StatefulSet":
            assert w["spec"]["serviceName"] in services, "%s: no governing Service" % w["metadata"]["name"]
    bound = {}       # (service name, service port) -> (process, container port)
    for name, svc in services.items():
        w = selected(svc)
        containers = w["spec"]["template"]["spec"]["containers"]
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            match = [(c, p) for c in containers for p in c.get("ports", [])
                     if target in (p.get("name"), p["containerPort"])]
            assert match, "Service %s port %s targets %s, which no container declares" % (name, port["port"], target)
            c, p = match[0]
            bound[(name, port["port"])] = (_process_of(c["args"]), p["containerPort"])

    # Every endpoint a container uses is host = a Service of the binder, port = its port,
    # and the binder's container listens on that port.
    declared = set()
    for w in workloads:
        for c in _pod_containers(w)[1]:
            env = _container_env(c, maps)
            process = _process_of(c["args"])
            for endpoint, entry in registry.endpoints().items():
                value = env.get(entry["env"])
                if process in entry["processes"] and entry["binder"] in {p for p, _ in bound.values()}:
                    assert value, "%s reads %s but the manifests do not set it" % (process, entry["env"])
                if not value:
                    continue
                host, port = _endpoint_parts(value, "%s %s" % (process, entry["env"]))
                assert (host, port) in bound, "%s=%s: no Service %s with port %d" % (entry["env"], value, host, port)
                binder, container_port = bound[(host, port)]
                assert binder == entry["binder"], "%s=%s reaches the %s" % (entry["env"], value, binder)
                declared.add((binder, container_port))
            if process == "gateway":
                declared.add(("gateway", _http_port(env.get("DOSSIER_HTTP_ADDR"), "gateway")))
            metrics = env.get("DOSSIER_METRICS_PORT")
            if metrics and metrics != "0":
                declared.add((process, _http_port(metrics if ":" in metrics else ":" + metrics, "metrics_port")))
    for key, (process, container_port) in bound.items():
        assert (process, container_port) in declared, \
            "Service %s:%d reaches port %d of the %s, which it does not listen on by configuration" \
            % (key[0], key[1], container_port, process)
    for w in workloads:
        for c in _pod_containers(w)[1]:
            for p in c.get("ports", []):
                assert (_process_of(c["args"]), p["containerPort"]) in declared, \
                    "%s declares port %d, which no configuration makes it listen on" % (c["name"], p["containerPort"])


# ---- Dockerfile ---------------------------------------------------------------------

def _dockerfile_stages():
    with open(DOCKERFILE) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append({"from": rest.split()[0], "lines": []})
        else:
            assert stages, "Dockerfile: %s before FROM" % word
            stages[-1]["lines"].append((word.upper(), rest.strip()))
    return stages


def _apt_packages(stage):
    pkgs = set()
    for word, rest in stage["lines"]:
        if word == "RUN" and "apt-get install" in rest:
            for part in rest.split("&&"):
                if "apt-get install" in part:
                    pkgs.update(t for t in part.split("install", 1)[1].split() if not t.startswith("-"))
    return pkgs


def test_dockerfile_builds_every_binary_into_a_slim_non_root_image(registry):
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "a multi-stage build"
    assert all(s["from"] == "debian:bookworm-slim" for s in stages), [s["from"] for s in stages]
    build, final = stages[0], stages[-1]
    built = set()
    for word, rest in build["lines"]:
        if word == "RUN" and "make" in rest:
            built.update(os.path.basename(t) for t in re.findall(r"build/bin/([\w-]+)", rest))
    binaries = {b for b in os.listdir(BIN_DIR) if b == "dossier" or b.startswith("dossier-")}
    assert built == binaries, "the image builds %s; make builds %s" % (sorted(built), sorted(binaries))
    assert ("COPY", ". .") in build["lines"], "the build stage takes the context as .dockerignore leaves it"
    assert "libcmocka-dev" not in _apt_packages(build)

    words = dict((w, r) for w, r in final["lines"])
    user = words.get("USER", "root").split(":")[0]
    assert user not in ("root", "0"), "the image must not run as root"
    assert "/data" in words.get("VOLUME", ""), "a /data volume"
    assert "/usr/local/bin/dossier-entrypoint" in words.get("ENTRYPOINT", "")
    assert any(w == "COPY" and "--from=" in r and "build/bin" in r for w, r in final["lines"])
    for w, rest in final["lines"]:
        if w == "ENV":
            for var in re.findall(r"(DOSSIER_\w+)=", rest):
                assert registry.by_env(var), "Dockerfile sets %s, which no process reads" % var
    runtime = _apt_packages(final)
    assert not any(p.endswith("-dev") or p == "build-essential" for p in runtime), runtime
    assert {"tini", "curl"} <= runtime, "the entrypoint and the gateway's health check need tini and curl"
    assert json.loads(words["CMD"])[0] in binaries, "the default command is a Dossier binary"

    # A Debian package in the runtime stage for every shared object the binaries need
    # (the base image brings libc).
    needed = set()
    for b in binaries:
        r = subprocess.run(["readelf", "-d", os.path.join(BIN_DIR, b)], capture_output=True, text=True, check=True)
        needed.update(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout))
    # make SANITIZE=1 links the sanitizer runtimes; the image is built without.
    needed = {n for n in needed if not re.match(r"lib(a|ub|l|t)san\.", n)}
    paths = {}
    for line in subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout.splitlines():
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        if m and "x86-64" in m.group(2):
            paths.setdefault(m.group(1), m.group(3))
    unresolved = sorted(n for n in needed if n not in paths)
    assert not unresolved, "cannot find %s" % unresolved
    # dpkg knows a file by the path its package installed: the one ldconfig shows, or
    # (merged /usr, versioned names) the one the links resolve to.
    candidates = {n: [paths[n], os.path.realpath(paths[n])] for n in needed}
    r = subprocess.run(["dpkg", "-S"] + sorted({p for c in candidates.values() for p in c}),
                       capture_output=True, text=True)
    owners = {}
    for line in r.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        owners[path] = pkg.split(":")[0]
    base = {"libc6", "libgcc-s1"}       # in debian:bookworm-slim itself
    for n in sorted(needed):
        pkg = next((owners[p] for p in candidates[n] if p in owners), None)
        assert pkg, "no Debian package owns %s (%s)" % (n, paths[n])
        assert pkg in runtime or pkg in base, \
            "the binaries need %s from %s, which the runtime stage does not install" % (n, pkg)

    with open(DOCKERIGNORE) as f:
        ignored = {l.strip().rstrip("/") for l in f if l.strip() and not l.startswith("#")}
    assert {".git", ".cache", "build", "build-san", "data"} <= ignored, "the build context must leave these out"
    needed_in_context = set(SOURCE_DIRS) | {"Makefile", "schemas", "config", "deploy", "deploy/entrypoint.sh"}
    assert not needed_in_context & ignored, "the build needs %s" % sorted(needed_in_context & ignored)


# ---- the container topology on one host ---------------------------------------------

def test_processes_run_alone_with_tcp_endpoints():
    """What each container does, on one host: every process started by itself through
    deploy/entrypoint.sh (no supervisor, no readiness pipe), sockets over TCP,
    readiness read from the file; a case goes in over HTTP and comes out of the read
    models, and `dossier ingest` reaches ingest over TCP."""
    base = tempfile.mkdtemp(prefix="dep-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    http = free_port()
    env.update(DOSSIER_DATA_DIR=os.path.join(base, "data"), DOSSIER_LOG_LEVEL="info",
               DOSSIER_RULES_FILE=os.path.join(ROOT, "config", "rules.json"),
               DOSSIER_HTTP_ADDR="127.0.0.1:%d" % http, DOSSIER_STORE="sqlite")
    for name in ("broker_front", "broker_back", "store", "store_pub", "ingest", "projector", "notify_pub"):
        env["DOSSIER_ENDPOINT_" + name.upper()] = "tcp://127.0.0.1:%d" % free_port()
    procs = {}
    ok = False
    try:
        for name in DAEMONS:
            penv = dict(env, ENTRYPOINT_READY_FILE=os.path.join(base, name + ".ready"))
            log = open(os.path.join(base, name + ".log"), "wb")
            procs[name] = (subprocess.Popen(["sh", ENTRYPOINT, _bin("dossier-" + name)], env=penv, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True), penv, log)

        def ready(name):
            proc, penv, _ = procs[name]
            assert proc.poll() is None, "%s exited with %s:\n%s" % (name, proc.returncode, _tail(base, name))
            return subprocess.run(["sh", ENTRYPOINT, "--ready"], env=penv).returncode == 0

        for name in DAEMONS:
            wait_for(lambda: ready(name), 30, what="%s ready" % name)

        import urllib.request
        url = "http://127.0.0.1:%d" % http

        def status(path, body=None):
            req = urllib.request.Request(url + path, data=body, method="POST" if body else "GET",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()

        wait_for(lambda: status("/ready")[0] == 200, 30, what="gateway /ready")
        with open(os.path.join(ROOT, "examples", "kyc_individual.json"), "rb") as f:
            code, body = status("/v1/cases", f.read())
        assert code == 201, (code, body)
        case_id = json.loads(body)["case_id"]
        wait_for(lambda: status("/v1/cases/" + case_id)[0] == 200, 30, what="the case in the read models")

        r = subprocess.run([_bin("dossier"), "ingest", "--quiet", os.path.join(ROOT, "examples", "records.jsonl")],
                           env=env, capture_output=True, timeout=120)
        assert r.returncode in (0, 2), r.stderr.decode()[-2000:]      # 2: some records are invalid on purpose

        # The handler's broker identity comes from the host name (entrypoint.sh).
        with open("/proc/sys/kernel/hostname") as f:
            host = f.read().strip()[-32:]
        assert ("handler-" + host) in _tail(base, "handler", 400), _tail(base, "handler")

        for name in reversed(DAEMONS):
            procs[name][0].send_signal(signal.SIGTERM)
        for name in reversed(DAEMONS):
            code = procs[name][0].wait(20)
            assert code == 0, "%s exited with %s:\n%s" % (name, code, _tail(base, name))
        ok = True
    finally:
        for proc, _, log in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            log.close()
        if ok:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print("process logs kept in %s" % base)


def _tail(base, name, n=30):
    try:
        with open(os.path.join(base, name + ".log"), "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
    except OSError:
        return ""
