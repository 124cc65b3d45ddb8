/* broker_metrics — the broker's series (see broker_metrics.h). Fixed series are
 * looked up once, on first use after the process registry exists. */
#include "broker_metrics.h"
#include "envelope.h"
#include "metrics_export.h"
#include "metrics_memo.h"

#include <stdio.h>
#include <string.h>

static metrics_memo_t s_in = METRICS_MEMO_COUNTER ("dossier_broker_messages_in_total",
    "Messages received, by socket (front: clients, back: handlers) and envelope type.",
    "side=\"other\",type=\"other\"");
static metrics_memo_t s_out = METRICS_MEMO_COUNTER ("dossier_broker_messages_out_total",
    "Messages sent, by socket (front: clients, back: handlers) and envelope type.",
    "side=\"other\",type=\"other\"");

static struct {
    metrics_t *registry;            /* the registry the series below belong to */
    metric_t *errors [BROKER_METRICS_ERRORS];
    metric_t *redispatched, *in_flight, *queued, *handlers;
} s_fixed;

/* The fixed series, looked up again only if the registry changed (tests). */
static int
s_ready (void)
{
    metrics_t *registry = metrics_process ();
    if (!registry)
        return 0;
    if (registry == s_fixed.registry)
        return 1;
    static const char *reasons [BROKER_METRICS_ERRORS] = {
        "malformed", "unexpected_type", "no_id", "overloaded", "no_handler", "expired"
    };
    for (int i = 0; i < BROKER_METRICS_ERRORS; i++) {
        char labels [48];
        snprintf (labels, sizeof labels, "reason=\"%s\"", reasons [i]);
        s_fixed.errors [i] = metrics_counter (registry, "dossier_broker_errors_total",
                                              "Messages dropped and commands refused or forgotten, by reason.", labels);
    }
    s_fixed.redispatched = metrics_counter (registry, "dossier_broker_redispatched_commands_total",
                                            "Commands sent again because their handler died, fell silent or restarted.", NULL);
    s_fixed.in_flight = metrics_gauge (registry, "dossier_broker_commands_in_flight",
                                       "Commands sent to a handler and not yet answered.", NULL);
    s_fixed.queued = metrics_gauge (registry, "dossier_broker_commands_queued",
                                    "Commands waiting for a live handler.", NULL);
    s_fixed.handlers = metrics_gauge (registry, "dossier_broker_handlers",
                                      "Live handlers (heard from within the worker timeout).", NULL);
    s_fixed.registry = registry;
    return 1;
}

/* The last few (side, type) pairs each direction met, with their series: four
 * messages per command take the same few pairs, and comparing a pointer and a
 * short string is cheaper than escaping and formatting the labels every time. */
#define S_RECENT 8
typedef struct {
    metrics_t *registry;
    size_t next;                    /* slot to replace */
    struct {
        const char *side;           /* a string literal of the broker's */
        char type [ENVELOPE_TYPE_MAX];
        metric_t *metric;           /* owned by the registry */
    } slots [S_RECENT];
} s_recent_t;

static s_recent_t s_recent_in, s_recent_out;

static void
s_count (metrics_memo_t *memo, s_recent_t *recent, const char *side, const char *type)
{
    metrics_t *registry = metrics_process ();
    if (!registry)
        return;
    if (recent->registry != registry) {
        memset (recent, 0, sizeof (*recent));
        recent->registry = registry;
    }
    size_t length = strlen (type);
    for (size_t i = 0; i < S_RECENT; i++)
        if (recent->slots [i].side == side && recent->slots [i].metric
        &&  strcmp (recent->slots [i].type, type) == 0) {
            metric_add (recent->slots [i].metric, 1);
            return;
        }
    char value [ENVELOPE_TYPE_MAX * 2], labels [METRICS_MEMO_LABELS_MAX];
    metrics_label_value (value, sizeof value, type);
    snprintf (labels, sizeof labels, "side=\"%s\",type=\"%s\"", side, value);
    metric_t *metric = metrics_memo_get (memo, registry, labels);
    metric_add (metric, 1);
    if (metric && length < ENVELOPE_TYPE_MAX) {
        size_t slot = recent->next++ % S_RECENT;
        recent->slots [slot].side = side;
        memcpy (recent->slots [slot].type, type, length + 1);
        recent->slots [slot].metric = metric;
    }
}

void
broker_metrics_in (const char *side, const char *type)
{
    s_count (&s_in, &s_recent_in, side, type);
}

void
broker_metrics_out (const char *side, const char *type)
{
    s_count (&s_out, &s_recent_out, side, type);
}

void
broker_metrics_error (broker_metrics_error_t reason)
{
    if (reason < BROKER_METRICS_ERRORS && s_ready ())
        metric_add (s_fixed.errors [reason], 1);
}

void
broker_metrics_redispatched (long commands)
{
    if (commands > 0 && s_ready ())
        metric_add (s_fixed.redispatched, (double) commands);
}

void
broker_metrics_holding (size_t in_flight, size_t queued, size_t handlers)
{
    if (!s_ready ())
        return;
    metric_set (s_fixed.in_flight, (double) in_flight);
    metric_set (s_fixed.queued, (double) queued);
    metric_set (s_fixed.handlers, (double) handlers);
}
