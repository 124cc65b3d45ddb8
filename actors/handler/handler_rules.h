/* handler_rules — where the handler's decisions get their rules. Always the local rules
 * file (the embedded default, and the fall-back for document rules); when
 * config_service_url is set, notification and document rules come from the
 * configuration service (schemas/config_service.openapi.yaml) through a cache (TTL,
 * ETag revalidation, stale-if-error), a circuit breaker and an asynchronous HTTP
 * client driven from the handler's poll loop: a decision never waits on the network,
 * it says which rules it wanted and the handler may hold the command until they came
 * (at most the request timeout) before deciding once more with whatever is there. */
#ifndef DOSSIER_HANDLER_RULES_H
#define DOSSIER_HANDLER_RULES_H

#include "config.h"
#include "rules.h"

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#define HANDLER_RULES_KEYS_MAX 8        /* lookups one decision can ask to be fetched */
#define HANDLER_RULES_KEY_MAX  1024     /* a lookup key: the request path and query */

typedef struct _handler_rules_t handler_rules_t;

/* One decision's lookups. Fill with handler_rules_begin; read-only for the caller. */
typedef struct {
    handler_rules_t *owner;
    int64_t now_ms;
    int may_wait;               /* this decision may be held for a fetch */
    size_t wanted;              /* lookups it would rather have fetched first */
    char keys [HANDLER_RULES_KEYS_MAX][HANDLER_RULES_KEY_MAX];
    char triggers [HANDLER_RULES_KEYS_MAX][32];     /* "" for document rules */
    size_t unavailable;         /* lookups answered "not now" (deferred or fallen back) */
    size_t stale;               /* lookups answered with stale rules */
} handler_rules_session_t;

typedef struct {
    uint64_t requests;          /* HTTP requests started */
    uint64_t answers;           /* 200 with a usable body */
    uint64_t not_modified;      /* 304 */
    uint64_t failures;          /* transport failures, bad statuses, malformed bodies */
    uint64_t refused;           /* fetches the open breaker saved */
    int breaker;                /* circuit_state_t */
} handler_rules_stats_t;

/* Reads rules_file (required, as ever) and the config_service_* settings. NULL on
 * failure, logged: a missing or bad rules file, a config_service_url that is not
 * http(s). Caller owns. */
handler_rules_t *handler_rules_new (config_t *config);
void handler_rules_destroy (handler_rules_t **self_p);

/* The local rules (borrowed). */
const rules_t *handler_rules_local (handler_rules_t *self);
/* 1 when rules come from the configuration service. */
int handler_rules_remote (handler_rules_t *self);

/* Starts a decision's lookups at now_ms. Sets *source_p to the source to put in the
 * decision's context (borrowing session, which must outlive the decision), or to NULL
 * when rules are local only. */
void handler_rules_begin (handler_rules_t *self, handler_rules_session_t *session, int may_wait,
                          int64_t now_ms, rules_source_t *source, const rules_source_t **source_p);

/* After a decision: asks the service for what the session wanted, as far as the
 * breaker allows. Returns 1 when some fetch the decision wanted is under way (hold the
 * command and decide again when handler_rules_waiting says 0), else 0 (append what
 * was decided: stale rules or deferrals are the best there is). */
int handler_rules_fetch (handler_rules_t *self, handler_rules_session_t *session);
/* 1 while a fetch the session wanted is still queued or in flight. */
int handler_rules_waiting (handler_rules_t *self, const handler_rules_session_t *session);
/* The longest a command is held for rules, in milliseconds. */
int64_t handler_rules_hold_ms (handler_rules_t *self);

/* Poll-loop integration: the HTTP client's file descriptors (returns how many were
 * written to items, at most max), the time until it needs service (-1 idle), and the
 * service itself, which stores answers and returns how many fetches ended. */
size_t handler_rules_pollitems (handler_rules_t *self, zmq_pollitem_t *items, size_t max);
long handler_rules_timeout (handler_rules_t *self);
size_t handler_rules_service (handler_rules_t *self);

void handler_rules_stats (handler_rules_t *self, handler_rules_stats_t *stats);

#endif
