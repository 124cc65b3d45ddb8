/* config_keys — see config_keys.h. One static table: a setting a process reads is
 * added here in the same change, or tests/e2e/test_deploy.py (which scans the
 * sources for config_get calls) fails. */
#include "config_keys.h"

#include <jansson.h>
#include <string.h>

#define S_DAEMONS "supervisor,store,broker,handler,projector,notifier,scheduler,gateway,ingest"
#define S_MONGO   "store,projector,gateway,cli"

static const config_key_t s_keys [] = {
    /* ---- everywhere ---- */
    { "dossier", "data_dir", "DOSSIER_DATA_DIR", "./data", S_DAEMONS ",cli", NULL,
      "directory of the SQLite files, notifier and scheduler state, and the default ipc sockets" },
    { "dossier", "log_level", "DOSSIER_LOG_LEVEL", "info", S_DAEMONS, NULL,
      "debug, info, warn or error (JSON lines on stderr)" },
    { "dossier", "instance", "DOSSIER_INSTANCE", NULL, "supervisor,handler,ingest,projector", NULL,
      "set by the supervisor per process: handler broker identity, metrics file name, a projector's default partition; only instance 0 of ingest binds endpoint_ingest" },
    { "dossier", "instances", "DOSSIER_INSTANCES", NULL, "supervisor,projector", NULL,
      "set by the supervisor per process: how many instances of that process it runs (a projector's default projector_partitions)" },

    { "dossier", "metrics_port", "DOSSIER_METRICS_PORT", "0", S_DAEMONS, NULL,
      "[host:]port of the process's own /metrics, /healthz and /ready (0: none); under the supervisor a base: the supervisor takes it, its n-th child (dossier status order, from 1) port + n" },
    { "dossier", "health_stall_ms", "DOSSIER_HEALTH_STALL_MS", "15000", S_DAEMONS, NULL,
      "a main loop silent this long makes the metrics port's /healthz and /ready answer 503" },

    /* ---- gateway ---- */
    { "dossier", "http_addr", "DOSSIER_HTTP_ADDR", "127.0.0.1:8080", "gateway", NULL,
      "gateway listen address host:port (several gateways may share it: SO_REUSEPORT)" },
    { "dossier", "body_limit", "DOSSIER_BODY_LIMIT", "1048576", "gateway,ingest,cli", NULL,
      "largest accepted request body or input record, bytes" },
    { "dossier", "command_timeout_ms", "DOSSIER_COMMAND_TIMEOUT_MS", "10000", "gateway", NULL,
      "a write command unanswered this long is answered 503 (the client retries with its key)" },
    { "dossier", "gateway_cache_bytes", "DOSSIER_GATEWAY_CACHE_BYTES", "33554432", "gateway", NULL,
      "memory for cached GET responses, bytes (0: no cache)" },

    /* ---- storage ---- */
    { "dossier", "store", "DOSSIER_STORE", "sqlite", S_MONGO, NULL,
      "sqlite or mongodb: where the event log and the read models live" },
    { "dossier", "sqlite_synchronous", "DOSSIER_SQLITE_SYNCHRONOUS", "full", "store", NULL,
      "SQLite synchronous mode of the event log (full: durable before acknowledged)" },
    { "dossier", "mongodb_uri", "DOSSIER_MONGODB_URI", "mongodb://127.0.0.1:27017", S_MONGO, NULL,
      "MongoDB connection string (replica set, TLS, credentials; never logged)" },
    { "dossier", "mongodb_database", "DOSSIER_MONGODB_DATABASE", "dossier", S_MONGO, NULL,
      "database holding the event log and the read models" },
    { "dossier", "mongodb_write_concern", "DOSSIER_MONGODB_WRITE_CONCERN", "majority", "store,projector", NULL,
      "write concern of every write: majority, or a number of members (1..50)" },
    { "dossier", "mongodb_journal", "DOSSIER_MONGODB_JOURNAL", "true", "store,projector", NULL,
      "j: true on every write" },
    { "dossier", "mongodb_wtimeout_ms", "DOSSIER_MONGODB_WTIMEOUT_MS", "10000", "store", NULL,
      "how long an append waits for its write concern before it counts as failed and is retried" },
    { "dossier", "mongodb_retry_max_ms", "DOSSIER_MONGODB_RETRY_MAX_MS", "0", "store", NULL,
      "how long the store retries one batch of appends (0: until MongoDB is back or the store stops)" },
    { "dossier", "projector_busy_behind", "DOSSIER_PROJECTOR_BUSY_BEHIND", "5000", "projector", NULL,
      "events behind the log from which the projector catches up in shared transactions with a larger cache" },
    { "dossier", "projector_partitions", "DOSSIER_PROJECTOR_PARTITIONS", NULL, "projector", NULL,
      "number of projector partitions (events split by a hash of the case id); default DOSSIER_INSTANCES, else 1" },
    { "dossier", "projector_partition", "DOSSIER_PROJECTOR_PARTITION", NULL, "projector", NULL,
      "the partition this projector owns (0-based), or auto: claimed by a lease in the read models; default DOSSIER_INSTANCE (e.g. a StatefulSet ordinal), else 0" },
    { "dossier", "projector_lease_ms", "DOSSIER_PROJECTOR_LEASE_MS", "15000", "projector", NULL,
      "projector_partition = auto: lease time to live in ms, renewed every third of it; a dead holder's partition is taken over within about this long" },

    /* ---- handler ---- */
    { "dossier", "rules_file", "DOSSIER_RULES_FILE", "config/rules.json", "handler", NULL,
      "document and notification rules (JSON); the fallback when a configuration service is set" },
    { "dossier", "handler_store_timeout_ms", "DOSSIER_HANDLER_STORE_TIMEOUT_MS", "8000", "handler,store", NULL,
      "handler: an append unanswered this long is a 503; store: older requests are answered expired" },
    { "dossier", "config_service_url", "DOSSIER_CONFIG_SERVICE_URL", NULL, "handler", NULL,
      "rules from this configuration service (http:// or https://) instead of rules_file alone" },
    { "dossier", "config_service_ttl_ms", "DOSSIER_CONFIG_SERVICE_TTL_MS", "30000", "handler", NULL,
      "how long fetched rules are used before they are revalidated" },
    { "dossier", "config_service_connect_timeout_ms", "DOSSIER_CONFIG_SERVICE_CONNECT_TIMEOUT_MS", "200", "handler", NULL,
      "connect timeout of a rules request" },
    { "dossier", "config_service_timeout_ms", "DOSSIER_CONFIG_SERVICE_TIMEOUT_MS", "500", "handler", NULL,
      "whole timeout of a rules request" },
    { "dossier", "config_service_breaker_threshold", "DOSSIER_CONFIG_SERVICE_BREAKER_THRESHOLD", "3", "handler", NULL,
      "failures in a row that open the circuit breaker" },
    { "dossier", "config_service_breaker_cooldown_ms", "DOSSIER_CONFIG_SERVICE_BREAKER_COOLDOWN_MS", "5000", "handler", NULL,
      "how long an open breaker waits before one trial request" },
    { "dossier", "config_service_max_stale_ms", "DOSSIER_CONFIG_SERVICE_MAX_STALE_MS", "86400000", "handler", NULL,
      "how long expired rules may still be used while the service fails (stale-if-error)" },
    { "dossier", "config_service_retry_ms", "DOSSIER_CONFIG_SERVICE_RETRY_MS", "1000", "handler", NULL,
      "delay before a failed rules request is tried again" },
    { "dossier", "config_service_slots", "DOSSIER_CONFIG_SERVICE_SLOTS", "4", "handler", NULL,
      "rules requests in flight at once (1..64)" },

    /* ---- broker ---- */
    { "dossier", "broker_worker_timeout_ms", "DOSSIER_BROKER_WORKER_TIMEOUT_MS", "3000", "broker", NULL,
      "a handler silent this long is dead: its commands go to the others" },
    { "dossier", "broker_queue_timeout_ms", "DOSSIER_BROKER_QUEUE_TIMEOUT_MS", "10000", "broker", NULL,
      "a command waiting this long for a live handler is answered 503" },
    { "dossier", "broker_queue_max", "DOSSIER_BROKER_QUEUE_MAX", "100000", "broker", NULL,
      "commands that may wait for a handler; more are answered 503" },

    /* ---- ingest and Kafka ---- */
    { "dossier", "ingest_timeout_ms", "DOSSIER_INGEST_TIMEOUT_MS", "15000", "ingest", NULL,
      "a record's command unanswered this long is reported 503 (and retried)" },
    { "dossier", "ingest_max_pending", "DOSSIER_INGEST_MAX_PENDING", "100000", "ingest", NULL,
      "records in flight per ingest process" },
    { "dossier", "kafka_brokers", "DOSSIER_KAFKA_BROKERS", NULL, "ingest,notifier", NULL,
      "Kafka bootstrap servers; set: ingest consumes and the notifier produces" },
    { "dossier", "kafka_topic", "DOSSIER_KAFKA_TOPIC", "kyc_events", "ingest", NULL,
      "input topic of client records (poison records to <topic>.DLT)" },
    { "dossier", "kafka_group", "DOSSIER_KAFKA_GROUP", "dossier-ingest", "ingest", NULL,
      "consumer group: every ingest process joins it and they share the partitions" },
    { "dossier", "kafka_max_in_flight", "DOSSIER_KAFKA_MAX_IN_FLIGHT", "5000", "ingest", NULL,
      "Kafka records held (unacknowledged) per ingest process" },
    { "dossier", "kafka_window_min", "DOSSIER_KAFKA_WINDOW_MIN", "4", "ingest", NULL,
      "fewest Kafka commands the adaptive window keeps in flight (it shrinks to this under failures)" },
    { "dossier", "kafka_window_max", "DOSSIER_KAFKA_WINDOW_MAX", "1000", "ingest", NULL,
      "most Kafka commands in flight per ingest process (at most kafka_max_in_flight)" },
    { "dossier", "kafka_window_slack_ms", "DOSSIER_KAFKA_WINDOW_SLACK_MS", "500", "ingest", NULL,
      "the window grows while a round's mean reply latency stays under 2 x the lowest seen + this" },
    { "dossier", "kafka_retry_backoff_ms", "DOSSIER_KAFKA_RETRY_BACKOFF_MS", "200", "ingest", NULL,
      "first delay before a record's command is retried after a 5xx or a timeout" },
    { "dossier", "kafka_retry_backoff_max_ms", "DOSSIER_KAFKA_RETRY_BACKOFF_MAX_MS", "10000", "ingest", NULL,
      "longest delay between retries of a record's command" },
    { "kafka", "<property>", "DOSSIER_KAFKA_PROPERTY_<NAME>", NULL, "ingest,notifier", NULL,
      "any librdkafka property (SASL, SSL, tuning); in the variable name '.' is written '_'" },

    /* ---- notifier ---- */
    { "dossier", "notify_file", "DOSSIER_NOTIFY_FILE", "<data_dir>/notifications.jsonl", "notifier", NULL,
      "JSON-lines file every notification is written to" },
    { "dossier", "notify_topic", "DOSSIER_NOTIFY_TOPIC", "notification_events", "notifier", NULL,
      "Kafka topic of notifications (when kafka_brokers is set)" },
    { "dossier", "notify_dlt_topic", "DOSSIER_NOTIFY_DLT_TOPIC", "<notify_topic>.DLT", "notifier", NULL,
      "Kafka topic of notifications that failed notify_max_attempts times" },
    { "dossier", "notify_max_attempts", "DOSSIER_NOTIFY_MAX_ATTEMPTS", "5", "notifier", NULL,
      "counted delivery failures before a notification is dead-lettered" },
    { "dossier", "notify_max_in_flight", "DOSSIER_NOTIFY_MAX_IN_FLIGHT", "10000", "notifier", NULL,
      "notifications sent to Kafka and not yet confirmed" },
    { "dossier", "notify_flush_ms", "DOSSIER_NOTIFY_FLUSH_MS", "2000", "notifier", NULL,
      "on stop, how long the notifier waits for Kafka to confirm what is in flight" },

    /* ---- scheduler ---- */
    { "dossier", "scheduler_retry_ms", "DOSSIER_SCHEDULER_RETRY_MS", "1000", "scheduler", NULL,
      "how often deferred notification decisions are tried again while rules are unavailable" },
    { "dossier", "scheduler_request_timeout_ms", "DOSSIER_SCHEDULER_REQUEST_TIMEOUT_MS", "10000", "scheduler", NULL,
      "a resolve command unanswered this long is sent again (same command id)" },
    { "dossier", "scheduler_max_inflight", "DOSSIER_SCHEDULER_MAX_INFLIGHT", "64", "scheduler", NULL,
      "resolve commands in flight at once" },

    /* ---- dossier CLI ---- */
    { "dossier", "cli_answer_timeout_ms", "DOSSIER_CLI_ANSWER_TIMEOUT_MS", "20000", "cli", NULL,
      "dossier ingest: a line unanswered this long is sent again" },
    { "dossier", "cli_retry_delay_ms", "DOSSIER_CLI_RETRY_DELAY_MS", "1000", "cli", NULL,
      "dossier ingest: delay before a line answered 503 is sent again" },

    /* ---- sockets (common/endpoints.c); in containers tcp://<service>:<port> ---- */
    { "dossier", "endpoint_broker_front", "DOSSIER_ENDPOINT_BROKER_FRONT", "ipc://<data_dir>/run/broker_front.ipc",
      "broker,gateway,ingest,scheduler", "broker", "commands in, replies out (ROUTER)" },
    { "dossier", "endpoint_broker_back", "DOSSIER_ENDPOINT_BROKER_BACK", "ipc://<data_dir>/run/broker_back.ipc",
      "broker,handler", "broker", "handlers take commands here (ROUTER)" },
    { "dossier", "endpoint_store", "DOSSIER_ENDPOINT_STORE", "ipc://<data_dir>/run/store.ipc",
      "store,handler,projector,notifier,scheduler", "store", "event log requests: append, read (ROUTER)" },
    { "dossier", "endpoint_store_pub", "DOSSIER_ENDPOINT_STORE_PUB", "ipc://<data_dir>/run/store_pub.ipc",
      "store,projector,notifier,scheduler", "store", "live feed of committed events (PUB)" },
    { "dossier", "endpoint_ingest", "DOSSIER_ENDPOINT_INGEST", "ipc://<data_dir>/run/ingest.ipc",
      "ingest,cli", "ingest", "dossier ingest sends records here (ROUTER)" },
    { "dossier", "endpoint_projector", "DOSSIER_ENDPOINT_PROJECTOR", "ipc://<data_dir>/run/projector.ipc",
      "projector,cli", "projector", "dossier rebuild and projector status (ROUTER)" },
    { "dossier", "endpoint_notify_pub", "DOSSIER_ENDPOINT_NOTIFY_PUB", "ipc://<data_dir>/run/notify_pub.ipc",
      "notifier", "notifier", "live feed of notifications for local subscribers (PUB)" },
    { "dossier", "endpoint_supervisor", "DOSSIER_ENDPOINT_SUPERVISOR", "ipc://<data_dir>/run/supervisor.ipc",
      "supervisor,cli", "supervisor", "dossier status and dossier stop (ROUTER)" },

    /* ---- supervisor ---- */
    { "processes", "<name>", "DOSSIER_PROCESSES_<NAME>", NULL, "supervisor", NULL,
      "instances of each process, in start order (see config/dossier.cfg)" },
    { "supervisor", "backoff_ms", "DOSSIER_SUPERVISOR_BACKOFF_MS", "100", "supervisor", NULL,
      "first restart delay of a process that died" },
    { "supervisor", "backoff_max_ms", "DOSSIER_SUPERVISOR_BACKOFF_MAX_MS", "5000", "supervisor", NULL,
      "longest restart delay (the delay doubles per restart)" },
    { "supervisor", "intensity", "DOSSIER_SUPERVISOR_INTENSITY", "5", "supervisor", NULL,
      "restarts within period_s after which a process is given up on" },
    { "supervisor", "period_s", "DOSSIER_SUPERVISOR_PERIOD_S", "30", "supervisor", NULL,
      "window of the restart intensity, seconds" },
    { "supervisor", "grace_ms", "DOSSIER_SUPERVISOR_GRACE_MS", "5000", "supervisor", NULL,
      "on stop, time the processes have to exit before SIGKILL" },
    { "supervisor", "ready_timeout_ms", "DOSSIER_SUPERVISOR_READY_TIMEOUT_MS", "10000", "supervisor", NULL,
      "a started process that has not said ready by then is restarted" },

    /* ---- environment only ---- */
    { NULL, NULL, "DOSSIER_CONFIG", NULL, S_DAEMONS ",cli", NULL,
      "the config file (ZPL), over the --config argument; unset: defaults and environment" },
    { NULL, NULL, "DOSSIER_BIN_DIR", "<directory of the binary>", "supervisor,cli", NULL,
      "where dossier-<name> binaries are found" },
    { NULL, NULL, "DOSSIER_READY_FD", NULL, S_DAEMONS, NULL,
      "set by the supervisor: descriptor on which the process writes ready; unset: nobody is told" },
};

#define S_KEY_COUNT (sizeof s_keys / sizeof s_keys [0])

size_t
config_keys_count (void)
{
    return S_KEY_COUNT;
}

const config_key_t *
config_keys_at (size_t index)
{
    return index < S_KEY_COUNT ? &s_keys [index] : NULL;
}

/* text matches pattern, where pattern may end in a placeholder "<...>" standing for
 * one or more characters. */
static int
s_match (const char *pattern, const char *text)
{
    const char *hole = strchr (pattern, '<');
    if (!hole)
        return strcmp (pattern, text) == 0;
    size_t fixed = (size_t) (hole - pattern);
    return strncmp (pattern, text, fixed) == 0 && text [fixed] != 0;
}

const config_key_t *
config_keys_find (const char *name)
{
    if (!name || !*name)
        return NULL;
    int is_env = strncmp (name, "DOSSIER_", 8) == 0;
    const char *slash = strchr (name, '/');
    size_t section_len = slash ? (size_t) (slash - name) : strlen ("dossier");
    const char *section = slash ? name : "dossier";
    const char *key = slash ? slash + 1 : name;
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const config_key_t *entry = &s_keys [i];
        if (is_env) {
            if (s_match (entry->env, name))
                return entry;
        }
        else
        if (entry->section && strlen (entry->section) == section_len
        &&  strncmp (entry->section, section, section_len) == 0 && s_match (entry->key, key))
            return entry;
    }
    return NULL;
}

/* ---- printing ---- */

static json_t *
s_processes_json (const char *list)
{
    json_t *array = json_array ();
    const char *p = list;
    while (array && p && *p) {
        size_t len = strcspn (p, ",");
        json_array_append_new (array, json_stringn (p, len));
        p += len;
        if (*p == ',')
            p++;
    }
    return array;
}

static json_t *
s_entry_json (const config_key_t *entry)
{
    return json_pack ("{s:o, s:o, s:s, s:o, s:o, s:o, s:s}",
                      "section", entry->section ? json_string (entry->section) : json_null (),
                      "key", entry->key ? json_string (entry->key) : json_null (),
                      "env", entry->env,
                      "default", entry->dflt ? json_string (entry->dflt) : json_null (),
                      "processes", s_processes_json (entry->processes),
                      "binder", entry->binder ? json_string (entry->binder) : json_null (),
                      "description", entry->description);
}

static int
s_print_json (FILE *out)
{
    json_t *array = json_array ();
    for (size_t i = 0; array && i < S_KEY_COUNT; i++) {
        json_t *entry = s_entry_json (&s_keys [i]);
        if (!entry || json_array_append_new (array, entry)) {
            json_decref (array);
            return -1;
        }
    }
    int rc = array && json_dumpf (array, out, JSON_INDENT (2) | JSON_PRESERVE_ORDER) == 0 ? 0 : -1;
    json_decref (array);
    if (rc == 0 && fputc ('\n', out) == EOF)
        rc = -1;
    return rc;
}

/* "section/key" as the table shows it: a plain key for section dossier. */
static void
s_name (const config_key_t *entry, char *buf, size_t size)
{
    if (!entry->section)
        snprintf (buf, size, "-");
    else
    if (strcmp (entry->section, "dossier") == 0)
        snprintf (buf, size, "%s", entry->key);
    else
        snprintf (buf, size, "%s/%s", entry->section, entry->key);
}

static int
s_print_table (FILE *out)
{
    int name_w = 3, env_w = 11;
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        char name [128];
        s_name (&s_keys [i], name, sizeof name);
        int len = (int) strlen (name);
        name_w = len > name_w ? len : name_w;
        len = (int) strlen (s_keys [i].env);
        env_w = len > env_w ? len : env_w;
    }
    if (fprintf (out, "%-*s  %-*s  %s\n", name_w, "KEY", env_w, "ENVIRONMENT", "DEFAULT") < 0)
        return -1;
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const config_key_t *entry = &s_keys [i];
        char name [128];
        s_name (entry, name, sizeof name);
        if (fprintf (out, "%-*s  %-*s  %s\n    %s\n    read by %s%s%s\n", name_w, name, env_w, entry->env,
                     entry->dflt ? entry->dflt : "-", entry->description, entry->processes,
                     entry->binder ? "; bound by " : "", entry->binder ? entry->binder : "") < 0)
            return -1;
    }
    return fflush (out) == 0 ? 0 : -1;
}

int
config_keys_print (FILE *out, int json)
{
    if (!out)
        return -1;
    int rc = json ? s_print_json (out) : s_print_table (out);
    if (rc == 0 && ferror (out))
        rc = -1;
    return rc;
}
