/* handler_rules — the local rules file, and the configuration service behind a cache,
 * a circuit breaker and an asynchronous client. A lookup key is the request path
 * itself (/v1/notification-rules?trigger=..&traitement_type=..&case_type=..&country=..
 * or /v1/document-rules?...), so what is cached is exactly what was asked. A failed
 * fetch is not tried again for that key for retry_ms, so a service that answers one
 * lookup with garbage costs one request per retry_ms, not one per case; the breaker
 * does the same for the service as a whole. */
#include "handler_rules.h"
#include "handler_metrics.h"
#include "circuit_breaker.h"
#include "config_client.h"
#include "rules_cache.h"

#include "log.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TTL_MS            30000
#define S_CONNECT_MS        200
#define S_TIMEOUT_MS        500
#define S_THRESHOLD         3
#define S_COOLDOWN_MS       5000
#define S_MAX_STALE_MS      (24LL * 3600 * 1000)
#define S_RETRY_MS          1000
#define S_SLOTS             4
#define S_CACHE_ENTRIES     4096
#define S_HOLD_SLACK_MS     100     /* on top of the request timeout: queueing, scheduling */

struct _handler_rules_t {
    rules_t *local;
    char *url;                      /* NULL: local rules only */
    config_client_t *client;
    rules_cache_t *cache;
    circuit_breaker_t *breaker;
    zhashx_t *fetches;              /* key -> trigger ("" documents) of fetches under way (owned strings) */
    zhashx_t *failed;               /* key -> int64_t * : no new fetch of key before that time */
    int64_t retry_ms;
    int64_t timeout_ms;
    int curl_initialised;           /* curl_global_init is counted: one cleanup per init */
    handler_rules_stats_t stats;
};

/* --------------------------------------------------------------------------
 * Construction */

static void
s_free_item (void **item)
{
    if (item && *item) {
        free (*item);
        *item = NULL;
    }
}

static long
s_setting (config_t *config, const char *key, long dflt, long min, long max)
{
    long value = config_get_long (config, key, dflt);
    if (value < min || value > max) {
        log_warn (NULL, NULL, "%s = %ld is out of range [%ld, %ld]: using %ld", key, value, min, max, dflt);
        value = dflt;
    }
    return value;
}

handler_rules_t *
handler_rules_new (config_t *config)
{
    handler_rules_t *self = calloc (1, sizeof (handler_rules_t));
    if (!self)
        return NULL;
    const char *rules_file = config_get (config, "rules_file", "config/rules.json");
    char error [256];
    self->local = rules_load_file (rules_file, error, sizeof error);
    if (!self->local) {
        log_error (NULL, NULL, "rules file %s refused: %s", rules_file, error);
        goto fail;
    }
    log_info (NULL, NULL, "rules %s loaded from %s: %zu document rules, %zu notification rules",
              rules_version (self->local), rules_file, rules_document_count (self->local),
              rules_notification_count (self->local));
    const char *url = config_get (config, "config_service_url", "");
    if (!url || !*url)
        return self;            /* the embedded default: every rule from the file */

    long ttl = s_setting (config, "config_service_ttl_ms", S_TTL_MS, 0, 7L * 24 * 3600 * 1000);
    long connect = s_setting (config, "config_service_connect_timeout_ms", S_CONNECT_MS, 1, 60000);
    long timeout = s_setting (config, "config_service_timeout_ms", S_TIMEOUT_MS, 1, 60000);
    long threshold = s_setting (config, "config_service_breaker_threshold", S_THRESHOLD, 1, 1000);
    long cooldown = s_setting (config, "config_service_breaker_cooldown_ms", S_COOLDOWN_MS, 0, 3600000);
    long max_stale = s_setting (config, "config_service_max_stale_ms", (long) S_MAX_STALE_MS, 0,
                                30L * 24 * 3600 * 1000);
    long retry = s_setting (config, "config_service_retry_ms", S_RETRY_MS, 0, 3600000);
    long slots = s_setting (config, "config_service_slots", S_SLOTS, 1, 64);
    if (connect > timeout)
        connect = timeout;
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error (NULL, NULL, "config service: libcurl cannot be initialised");
        goto fail;
    }
    self->curl_initialised = 1;
    self->url = strdup (url);
    self->client = config_client_new (url, connect, timeout, (size_t) slots);
    if (!self->client) {
        log_error (NULL, NULL, "config_service_url '%.200s' refused: it must start with http:// or https://", url);
        goto fail;
    }
    self->cache = rules_cache_new (ttl, max_stale, S_CACHE_ENTRIES);
    self->breaker = circuit_breaker_new ((int) threshold, cooldown);
    self->fetches = zhashx_new ();
    self->failed = zhashx_new ();
    if (!self->url || !self->cache || !self->breaker || !self->fetches || !self->failed)
        goto fail;
    zhashx_set_destructor (self->fetches, s_free_item);
    zhashx_set_duplicator (self->fetches, (zhashx_duplicator_fn *) strdup);
    zhashx_set_destructor (self->failed, s_free_item);
    self->retry_ms = retry;
    self->timeout_ms = timeout;
    log_info (NULL, NULL, "notification and document rules from the configuration service at %s "
              "(ttl %ld ms, timeouts %ld/%ld ms, breaker %ld failures / %ld ms); %s is the fall-back "
              "for document rules", url, ttl, connect, timeout, threshold, cooldown, rules_file);
    return self;
fail:
    handler_rules_destroy (&self);
    return NULL;
}

void
handler_rules_destroy (handler_rules_t **self_p)
{
    if (self_p && *self_p) {
        handler_rules_t *self = *self_p;
        config_client_destroy (&self->client);
        rules_cache_destroy (&self->cache);
        circuit_breaker_destroy (&self->breaker);
        zhashx_destroy (&self->fetches);
        zhashx_destroy (&self->failed);
        rules_destroy (&self->local);
        free (self->url);
        if (self->curl_initialised)
            curl_global_cleanup ();
        free (self);
        *self_p = NULL;
    }
}

const rules_t *
handler_rules_local (handler_rules_t *self)
{
    return self->local;
}

int
handler_rules_remote (handler_rules_t *self)
{
    return self->url != NULL;
}

int64_t
handler_rules_hold_ms (handler_rules_t *self)
{
    return self->timeout_ms + S_HOLD_SLACK_MS;
}

/* --------------------------------------------------------------------------
 * Lookups (called from inside a decision: memory only) */

/* The lookup key (= request path). Returns 0, -1 when it does not fit. */
static int
s_key (char key [HANDLER_RULES_KEY_MAX], const char *trigger, const rules_context_t *context)
{
    char tt [32], ct [HANDLER_RULES_KEY_MAX / 2], country [32], tr [96];
    if (config_client_escape (context->traitement_type, tt, sizeof tt)
    ||  config_client_escape (context->case_type, ct, sizeof ct)
    ||  config_client_escape (context->country, country, sizeof country)
    ||  config_client_escape (trigger ? trigger : "", tr, sizeof tr))
        return -1;
    int n = trigger
          ? snprintf (key, HANDLER_RULES_KEY_MAX, "/v1/notification-rules?trigger=%s&traitement_type=%s&case_type=%s&country=%s",
                      tr, tt, ct, country)
          : snprintf (key, HANDLER_RULES_KEY_MAX, "/v1/document-rules?traitement_type=%s&case_type=%s&country=%s",
                      tt, ct, country);
    return n > 0 && n < HANDLER_RULES_KEY_MAX ? 0 : -1;
}

static int
s_recently_failed (handler_rules_t *self, const char *key, int64_t now_ms)
{
    int64_t *until = (int64_t *) zhashx_lookup (self->failed, key);
    return until && now_ms < *until;
}

static void
s_want (handler_rules_session_t *session, const char *key, const char *trigger)
{
    for (size_t i = 0; i < session->wanted; i++)
        if (strcmp (session->keys [i], key) == 0)
            return;
    if (session->wanted == HANDLER_RULES_KEYS_MAX)
        return;
    snprintf (session->keys [session->wanted], HANDLER_RULES_KEY_MAX, "%s", key);
    snprintf (session->triggers [session->wanted], sizeof session->triggers [0], "%s", trigger ? trigger : "");
    session->wanted++;
}

/* The cached answer for key: fresh, or stale (served; a fetch is wanted first when one
 * is possible), or none (-1; a fetch is wanted when possible). */
static int
s_lookup (handler_rules_session_t *session, const char *trigger, const rules_context_t *context,
          const rules_t **rules_p)
{
    handler_rules_t *self = session->owner;
    char key [HANDLER_RULES_KEY_MAX];
    if (s_key (key, trigger, context) != 0) {
        session->unavailable++;
        return -1;
    }
    int state = rules_cache_get (self->cache, key, session->now_ms, rules_p);
    if (state == RULES_CACHE_FRESH)
        return 0;
    if (session->may_wait
    &&  (config_client_busy (self->client, key)
         || (!s_recently_failed (self, key, session->now_ms)
             && circuit_breaker_would_allow (self->breaker, session->now_ms))))
        s_want (session, key, trigger);
    if (state == RULES_CACHE_STALE) {
        session->stale++;
        return 0;
    }
    session->unavailable++;
    return -1;
}

static int
s_source_notifications (void *arg, const char *trigger, const rules_context_t *context,
                        rules_notification_set_t *set)
{
    const rules_t *rules = NULL;
    if (!trigger || s_lookup ((handler_rules_session_t *) arg, trigger, context, &rules) != 0)
        return -1;
    rules_notification_set (rules, set);
    return 0;
}

static int
s_source_documents (void *arg, const rules_context_t *context, rules_document_set_t *set)
{
    const rules_t *rules = NULL;
    if (s_lookup ((handler_rules_session_t *) arg, NULL, context, &rules) != 0)
        return -1;
    rules_document_set (rules, set);
    return 0;
}

void
handler_rules_begin (handler_rules_t *self, handler_rules_session_t *session, int may_wait,
                     int64_t now_ms, rules_source_t *source, const rules_source_t **source_p)
{
    session->owner = self;
    session->now_ms = now_ms;
    session->may_wait = may_wait;
    session->wanted = 0;
    session->unavailable = 0;
    session->stale = 0;
    if (!self->url) {
        *source_p = NULL;
        return;
    }
    source->notifications = s_source_notifications;
    source->documents = s_source_documents;
    source->arg = session;
    *source_p = source;
}

/* --------------------------------------------------------------------------
 * Fetches */

int
handler_rules_fetch (handler_rules_t *self, handler_rules_session_t *session)
{
    int waiting = 0;
    int64_t now = session->now_ms;
    for (size_t i = 0; self->url && i < session->wanted; i++) {
        const char *key = session->keys [i];
        if (config_client_busy (self->client, key)) {
            waiting = 1;
            continue;
        }
        if (s_recently_failed (self, key, now))
            continue;
        if (!circuit_breaker_allow (self->breaker, now)) {
            self->stats.refused++;
            continue;
        }
        if (zhashx_insert (self->fetches, key, session->triggers [i]) != 0
        &&  zhashx_lookup (self->fetches, key) == NULL)
            continue;           /* out of memory: decide without it */
        if (config_client_get (self->client, key, key, rules_cache_etag (self->cache, key)) != 0) {
            zhashx_delete (self->fetches, key);
            continue;
        }
        self->stats.requests++;
        waiting = 1;
    }
    return waiting;
}

int
handler_rules_waiting (handler_rules_t *self, const handler_rules_session_t *session)
{
    for (size_t i = 0; self->url && i < session->wanted; i++)
        if (config_client_busy (self->client, session->keys [i]))
            return 1;
    return 0;
}

/* A fetch failed: count it for the breaker, hold the key back for retry_ms, and say
 * what the handler does meanwhile. */
static void
s_failed (handler_rules_t *self, const char *key, int64_t now, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_failed (handler_rules_t *self, const char *key, int64_t now, const char *fmt, ...)
{
    char reason [320];
    va_list args;
    va_start (args, fmt);
    vsnprintf (reason, sizeof reason, fmt, args);
    va_end (args);
    self->stats.failures++;
    int64_t *until = malloc (sizeof (int64_t));
    if (until) {
        *until = now + self->retry_ms;
        zhashx_update (self->failed, key, until);
    }
    const rules_t *rules = NULL;
    int state = rules_cache_get (self->cache, key, now, &rules);
    if (state != RULES_CACHE_MISS)
        log_warn (NULL, NULL, "config service: %s for %s; serving the cached rules (version %s) meanwhile",
                  reason, key, rules_version (rules));
    else
        log_warn (NULL, NULL, "config service: %s for %s; no rules cached: notification decisions that "
                  "need them are deferred%s", reason, key,
                  strncmp (key, "/v1/document-rules", 18) == 0 ? " (document rules fall back to the rules file)" : "");
    if (circuit_breaker_failure (self->breaker, now))
        log_warn (NULL, NULL, "config service: circuit breaker open after %d consecutive failures; "
                  "no calls for a cool-down, then one probe", circuit_breaker_failures (self->breaker));
}

static void
s_succeeded (handler_rules_t *self, const char *key, int64_t now)
{
    zhashx_delete (self->failed, key);
    if (circuit_breaker_success (self->breaker, now))
        log_info (NULL, NULL, "config service: answering again; circuit breaker closed");
}

static void
s_on_done (const config_client_result_t *result, void *arg)
{
    handler_rules_t *self = (handler_rules_t *) arg;
    int64_t now = zclock_mono ();
    handler_metrics_config_request (result->answered ? result->status : 0, (double) result->elapsed_ms / 1000);
    const char *key = result->key;
    const char *trigger = (const char *) zhashx_lookup (self->fetches, key);
    if (!trigger)
        return;                 /* not ours (cannot happen: every get is recorded) */
    if (!result->answered)
        s_failed (self, key, now, "no answer after %lld ms (%s)", (long long) result->elapsed_ms, result->error);
    else
    if (result->status == 200) {
        char error [256];
        rules_t *rules = rules_parse_answer (result->body, result->size, *trigger ? trigger : NULL,
                                             error, sizeof error);
        if (!rules)
            s_failed (self, key, now, "malformed answer (%s)", error);
        else {
            const rules_t *old = NULL;
            rules_cache_get (self->cache, key, now, &old);
            if (!old)
                log_info (NULL, NULL, "config service: rules version %s for %s", rules_version (rules), key);
            else
            if (strcmp (rules_version (old), rules_version (rules)) != 0)
                log_info (NULL, NULL, "config service: rules version %s for %s (was %s)", rules_version (rules),
                          key, rules_version (old));
            char version [80];
            snprintf (version, sizeof version, "%s", rules_version (rules));
            if (rules_cache_put (self->cache, key, &rules, result->etag, now) != 0)
                s_failed (self, key, now, "answer version %s could not be kept (out of memory)", version);
            else {
                self->stats.answers++;
                s_succeeded (self, key, now);
            }
        }
    }
    else
    if (result->status == 304) {
        if (rules_cache_touch (self->cache, key, now) == 0) {
            self->stats.not_modified++;
            s_succeeded (self, key, now);
        }
        else
            s_failed (self, key, now, "304 Not Modified without a cached answer");
    }
    else
        s_failed (self, key, now, "HTTP %ld", result->status);
    zhashx_delete (self->fetches, key);
}

size_t
handler_rules_pollitems (handler_rules_t *self, zmq_pollitem_t *items, size_t max)
{
    return self->client ? config_client_pollitems (self->client, items, max) : 0;
}

long
handler_rules_timeout (handler_rules_t *self)
{
    return self->client ? config_client_timeout (self->client) : -1;
}

size_t
handler_rules_service (handler_rules_t *self)
{
    if (!self->client)
        return 0;
    uint64_t before = self->stats.answers + self->stats.not_modified + self->stats.failures;
    config_client_perform (self->client, s_on_done, self);
    return (size_t) (self->stats.answers + self->stats.not_modified + self->stats.failures - before);
}

void
handler_rules_stats (handler_rules_t *self, handler_rules_stats_t *stats)
{
    *stats = self->stats;
    stats->breaker = self->breaker ? circuit_breaker_state (self->breaker, zclock_mono ()) : CIRCUIT_CLOSED;
}
