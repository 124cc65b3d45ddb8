/* metrics — Prometheus registry and text rendering. Families keep creation order
 * (so a scrape reads the same way each time); series are found through one hash
 * keyed "name{labels}", so callers may look a series up per message. */
#include "metrics.h"
#include "log.h"

#include <czmq.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double metrics_latency_buckets [] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
const size_t metrics_latency_buckets_count = sizeof metrics_latency_buckets / sizeof metrics_latency_buckets [0];
_Static_assert (sizeof metrics_latency_buckets / sizeof metrics_latency_buckets [0] == METRICS_LATENCY_BUCKETS,
                "METRICS_LATENCY_BUCKETS must count metrics_latency_buckets");

typedef struct _family_t family_t;

struct _metric_t {
    family_t *family;
    char *labels;               /* pre-rendered, "" for none */
    double value;               /* counter/gauge; histogram: sum */
    uint64_t count;             /* histogram */
    uint64_t *buckets;          /* histogram: per bound, not cumulative */
    metrics_t *registry;
    metric_t *next;
};

struct _family_t {
    char *name;
    char *help;
    metrics_type_t type;
    double *bounds;
    size_t n_bounds;
    metric_t *first, *last;
    family_t *next;
};

struct _metrics_t {
    pthread_mutex_t lock;
    char *const_labels;
    family_t *first, *last;
    zhashx_t *series;           /* "name{labels}" -> metric_t * (not owned) */
};

metrics_t *
metrics_new (const char *const_labels)
{
    metrics_t *self = calloc (1, sizeof (metrics_t));
    if (!self)
        return NULL;
    self->const_labels = strdup (const_labels ? const_labels : "");
    self->series = zhashx_new ();
    if (!self->const_labels || !self->series || pthread_mutex_init (&self->lock, NULL) != 0) {
        free (self->const_labels);
        zhashx_destroy (&self->series);
        free (self);
        return NULL;
    }
    return self;
}

void
metrics_destroy (metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    metrics_t *self = *self_p;
    family_t *family = self->first;
    while (family) {
        metric_t *metric = family->first;
        while (metric) {
            metric_t *next = metric->next;
            free (metric->labels);
            free (metric->buckets);
            free (metric);
            metric = next;
        }
        family_t *next = family->next;
        free (family->name);
        free (family->help);
        free (family->bounds);
        free (family);
        family = next;
    }
    zhashx_destroy (&self->series);
    pthread_mutex_destroy (&self->lock);
    free (self->const_labels);
    free (self);
    *self_p = NULL;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
static bool
s_valid_name (const char *name)
{
    if (!name || !*name || (*name >= '0' && *name <= '9'))
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
              || *c == '_' || *c == ':'))
            return false;
    return true;
}

static family_t *
s_family (metrics_t *self, const char *name, const char *help, metrics_type_t type,
          const double *bounds, size_t n_bounds)
{
    for (family_t *family = self->first; family; family = family->next)
        if (strcmp (family->name, name) == 0)
            return family;
    family_t *family = calloc (1, sizeof (family_t));
    if (!family)
        return NULL;
    family->name = strdup (name);
    family->help = strdup (help ? help : "");
    family->type = type;
    if (n_bounds) {
        family->bounds = malloc (n_bounds * sizeof (double));
        if (family->bounds)
            memcpy (family->bounds, bounds, n_bounds * sizeof (double));
        family->n_bounds = n_bounds;
    }
    if (!family->name || !family->help || (n_bounds && !family->bounds)) {
        free (family->name);
        free (family->help);
        free (family->bounds);
        free (family);
        return NULL;
    }
    if (self->last)
        self->last->next = family;
    else
        self->first = family;
    self->last = family;
    return family;
}

static metric_t *
s_series (metrics_t *self, const char *name, const char *help, const char *labels, metrics_type_t type,
          const double *bounds, size_t n_bounds)
{
    if (!self || !s_valid_name (name))
        return NULL;
    labels = labels ? labels : "";
    /* Lookups may happen per message: small keys stay on the stack. */
    char small [256];
    size_t key_size = strlen (name) + strlen (labels) + 3;
    char *key = key_size <= sizeof small ? small : malloc (key_size);
    if (!key)
        return NULL;
    snprintf (key, key_size, "%s{%s}", name, labels);
    pthread_mutex_lock (&self->lock);
    metric_t *metric = (metric_t *) zhashx_lookup (self->series, key);
    if (metric) {
        if (metric->family->type != type)
            metric = NULL;
        goto done;
    }
    family_t *family = s_family (self, name, help, type, bounds, n_bounds);
    if (!family)
        goto done;
    if (family->type != type) {
        log_error (NULL, NULL, "metrics: %s is already a metric of another type", name);
        goto done;
    }
    metric = calloc (1, sizeof (metric_t));
    if (!metric)
        goto done;
    metric->family = family;
    metric->registry = self;
    metric->labels = strdup (labels);
    if (family->n_bounds)
        metric->buckets = calloc (family->n_bounds, sizeof (uint64_t));
    if (!metric->labels || (family->n_bounds && !metric->buckets)
    ||  zhashx_insert (self->series, key, metric) != 0) {
        free (metric->labels);
        free (metric->buckets);
        free (metric);
        metric = NULL;
        goto done;
    }
    if (family->last)
        family->last->next = metric;
    else
        family->first = metric;
    family->last = metric;
done:
    pthread_mutex_unlock (&self->lock);
    if (key != small)
        free (key);
    return metric;
}

metric_t *
metrics_counter (metrics_t *self, const char *name, const char *help, const char *labels)
{
    return s_series (self, name, help, labels, METRICS_COUNTER, NULL, 0);
}

metric_t *
metrics_gauge (metrics_t *self, const char *name, const char *help, const char *labels)
{
    return s_series (self, name, help, labels, METRICS_GAUGE, NULL, 0);
}

metric_t *
metrics_histogram (metrics_t *self, const char *name, const char *help, const char *labels,
                   const double *bounds, size_t n_bounds)
{
    if (!bounds || n_bounds == 0)
        return NULL;
    return s_series (self, name, help, labels, METRICS_HISTOGRAM, bounds, n_bounds);
}

void
metric_add (metric_t *metric, double by)
{
    if (!metric || metric->family->type == METRICS_HISTOGRAM
    ||  (metric->family->type == METRICS_COUNTER && !(by >= 0)))
        return;
    pthread_mutex_lock (&metric->registry->lock);
    metric->value += by;
    pthread_mutex_unlock (&metric->registry->lock);
}

void
metric_set (metric_t *metric, double value)
{
    if (!metric || metric->family->type != METRICS_GAUGE)
        return;
    pthread_mutex_lock (&metric->registry->lock);
    metric->value = value;
    pthread_mutex_unlock (&metric->registry->lock);
}

void
metric_observe_n (metric_t *metric, double value, uint64_t n)
{
    if (!metric || metric->family->type != METRICS_HISTOGRAM || isnan (value) || n == 0)
        return;
    pthread_mutex_lock (&metric->registry->lock);
    metric->value += value * (double) n;
    metric->count += n;
    for (size_t i = 0; i < metric->family->n_bounds; i++)
        if (value <= metric->family->bounds [i]) {
            metric->buckets [i] += n;
            break;
        }
    pthread_mutex_unlock (&metric->registry->lock);
}

void
metric_observe (metric_t *metric, double value)
{
    metric_observe_n (metric, value, 1);
}

double
metric_value (metric_t *metric)
{
    if (!metric)
        return 0;
    pthread_mutex_lock (&metric->registry->lock);
    double value = metric->family->type == METRICS_HISTOGRAM ? (double) metric->count : metric->value;
    pthread_mutex_unlock (&metric->registry->lock);
    return value;
}

int
metrics_label_value (char *out, size_t size, const char *value)
{
    if (size == 0)
        return -1;
    size_t n = 0;
    for (const char *c = value ? value : ""; *c; c++) {
        const char *put = NULL;
        char one [2] = { *c, 0 };
        if (*c == '\\')
            put = "\\\\";
        else
        if (*c == '"')
            put = "\\\"";
        else
        if (*c == '\n')
            put = "\\n";
        else
            put = one;
        size_t len = strlen (put);
        if (n + len >= size) {
            out [n] = 0;
            return -1;
        }
        memcpy (out + n, put, len);
        n += len;
    }
    out [n] = 0;
    return 0;
}

/* ---- rendering ------------------------------------------------------------------- */

static void
s_number (char *out, size_t size, double value)
{
    if (isinf (value))
        snprintf (out, size, "%s", value > 0 ? "+Inf" : "-Inf");
    else
    if (isnan (value))
        snprintf (out, size, "NaN");
    else {
        /* The shortest of the usual precisions that reads back as the same double. */
        snprintf (out, size, "%.15g", value);
        if (strtod (out, NULL) != value)
            snprintf (out, size, "%.17g", value);
    }
}

/* name{const,labels[,extra]} value\n */
static void
s_line (FILE *out, const metrics_t *self, const char *name, const char *suffix, const char *labels,
        const char *extra, const char *value)
{
    const char *parts [3] = { self->const_labels, labels, extra };
    int any = 0;
    fprintf (out, "%s%s", name, suffix);
    for (size_t i = 0; i < 3; i++) {
        if (!parts [i] || !*parts [i])
            continue;
        fprintf (out, "%s%s", any ? "," : "{", parts [i]);
        any = 1;
    }
    fprintf (out, "%s %s\n", any ? "}" : "", value);
}

static void
s_help (FILE *out, const char *help)
{
    for (const char *c = help; *c; c++) {
        if (*c == '\\')
            fputs ("\\\\", out);
        else
        if (*c == '\n')
            fputs ("\\n", out);
        else
            fputc (*c, out);
    }
}

char *
metrics_render (metrics_t *self, size_t *size)
{
    char *text = NULL;
    size_t length = 0;
    FILE *out = open_memstream (&text, &length);
    if (!out)
        return NULL;
    static const char *type_names [] = { "counter", "gauge", "histogram" };
    pthread_mutex_lock (&self->lock);
    for (const family_t *family = self->first; family; family = family->next) {
        fprintf (out, "# HELP %s ", family->name);
        s_help (out, family->help);
        fprintf (out, "\n# TYPE %s %s\n", family->name, type_names [family->type]);
        for (const metric_t *metric = family->first; metric; metric = metric->next) {
            char value [64];
            if (family->type != METRICS_HISTOGRAM) {
                s_number (value, sizeof value, metric->value);
                s_line (out, self, family->name, "", metric->labels, NULL, value);
                continue;
            }
            uint64_t cumulative = 0;
            for (size_t i = 0; i <= family->n_bounds; i++) {
                char le [80], bound [64];
                s_number (bound, sizeof bound, i < family->n_bounds ? family->bounds [i] : INFINITY);
                snprintf (le, sizeof le, "le=\"%s\"", bound);
                cumulative += i < family->n_bounds ? metric->buckets [i] : 0;
                snprintf (value, sizeof value, "%llu",
                          (unsigned long long) (i < family->n_bounds ? cumulative : metric->count));
                s_line (out, self, family->name, "_bucket", metric->labels, le, value);
            }
            s_number (value, sizeof value, metric->value);
            s_line (out, self, family->name, "_sum", metric->labels, NULL, value);
            snprintf (value, sizeof value, "%llu", (unsigned long long) metric->count);
            s_line (out, self, family->name, "_count", metric->labels, NULL, value);
        }
    }
    pthread_mutex_unlock (&self->lock);
    if (fclose (out) != 0) {
        free (text);
        return NULL;
    }
    if (size)
        *size = length;
    return text;
}
