/* metrics_export — the process registry, its writer thread, and the merge the
 * gateway serves (see metrics_export.h). The registry is process-wide on purpose:
 * counters are bumped deep inside codecs and loops that should not carry it. */
#include "metrics_export.h"
#include "endpoints.h"
#include "health.h"
#include "log.h"
#include "metrics_http.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_WRITE_EVERY_MS 1000
#define S_FILE_MAX       (4 * 1024 * 1024)

static struct {
    metrics_t *registry;
    char *path;                 /* <dir>/<process>-<instance>.prom */
    char *tmp;                  /* path + ".tmp" */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool running, stopping;
    metrics_http_t *http;       /* the process's own port, when metrics_port is set */
    long stall_ms;              /* health_stall_ms */
    metric_t *health [HEALTH_STATES];   /* dossier_process_health, one series per state */
} s_export = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

metrics_t *
metrics_process (void)
{
    return s_export.registry;
}

int
metrics_export_flush (void)
{
    if (!s_export.registry || !s_export.path)
        return -1;
    size_t size = 0;
    char *text = metrics_render (s_export.registry, &size);
    if (!text)
        return -1;
    int rc = -1;
    FILE *file = fopen (s_export.tmp, "w");
    if (file) {
        bool written = fwrite (text, 1, size, file) == size;
        if (fclose (file) == 0 && written && rename (s_export.tmp, s_export.path) == 0)
            rc = 0;
    }
    free (text);
    return rc;
}

/* The health state as a state set: 1 on the current state, 0 on the others. Set on
 * the writer's thread, so a stuck main loop shows as stalled in the file (and the
 * gateway's /ready names it) while the loop itself does nothing. */
static void
s_update_health (void)
{
    health_state_t now = health_state (s_export.stall_ms);
    for (int i = 0; i < HEALTH_STATES; i++)
        metric_set (s_export.health [i], i == (int) now ? 1 : 0);
}

static void *
s_writer (void *arg)
{
    (void) arg;
    pthread_mutex_lock (&s_export.lock);
    while (!s_export.stopping) {
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_sec += S_WRITE_EVERY_MS / 1000;
        pthread_cond_timedwait (&s_export.wake, &s_export.lock, &until);
        if (s_export.stopping)
            break;
        pthread_mutex_unlock (&s_export.lock);
        s_update_health ();
        metrics_export_flush ();
        pthread_mutex_lock (&s_export.lock);
    }
    pthread_mutex_unlock (&s_export.lock);
    return NULL;
}

int
metrics_export_port (const char *value, int offset, char *address, size_t size)
{
    if (!value || !*value)
        return 0;
    const char *colon = strrchr (value, ':');
    const char *digits = colon ? colon + 1 : value;
    char *end = NULL;
    long port = strtol (digits, &end, 10);
    if (end == digits || *end || port < 0 || port > 65535)
        return -1;
    if (port == 0)
        return 0;
    port += offset;
    if (port > 65535 || port < 1)
        return -1;
    /* The host as endpoints name a binder's: "*" when left out (a scraper comes from
     * outside the container), names as ZeroMQ would bind them. */
    int n = colon ? snprintf (address, size, "%.*s:%ld", (int) (colon - value), value, port)
                  : snprintf (address, size, "%ld", port);
    return n > 0 && (size_t) n < size ? 1 : -1;
}

/* Starts the process's own scrape and health port when metrics_port is set. A
 * failure is logged and leaves the process running: the files still work. */
static void
s_start_http (config_t *config)
{
    const char *value = config_get (config, "metrics_port", "0");
    char port [128];
    int set = metrics_export_port (value, 0, port, sizeof port);
    if (set < 0)
        log_error (NULL, NULL, "metrics: metrics_port %s is not [host:]port; no metrics port", value);
    if (set <= 0)
        return;
    char endpoint [160];
    snprintf (endpoint, sizeof endpoint, "tcp://%s%s", strchr (port, ':') ? "" : "*:", port);
    char *address = endpoints_bind_address (endpoint);
    s_export.http = metrics_http_start (address, s_export.registry, s_export.stall_ms);
    metrics_http_on_scrape (s_export.http, s_update_health);   /* as fresh as /healthz */
    free (address);
}

int
metrics_export_start (config_t *config, const char *process)
{
    if (s_export.registry)
        return 0;
    const char *instance = config_get (config, "instance", "0");
    char labels [256], process_value [64], instance_value [64];
    metrics_label_value (process_value, sizeof process_value, process);
    metrics_label_value (instance_value, sizeof instance_value, instance);
    snprintf (labels, sizeof labels, "process=\"%s\",instance=\"%s\"", process_value, instance_value);
    char *dir = config_data_path (config, "run/metrics");
    s_export.registry = metrics_new (labels);
    if (!dir || !s_export.registry) {
        free (dir);
        metrics_destroy (&s_export.registry);
        log_error (NULL, NULL, "metrics: out of memory");
        return -1;
    }
    s_export.stall_ms = config_get_long (config, "health_stall_ms", 15000);
    for (int i = 0; i < HEALTH_STATES; i++) {
        char state [64];
        snprintf (state, sizeof state, "state=\"%s\"", health_state_name ((health_state_t) i));
        s_export.health [i] = metrics_gauge (s_export.registry, "dossier_process_health",
            "1 for the process's health state now (ok, starting, not_ready, stalled: main loop silent "
            "longer than health_stall_ms), 0 for the others.", state);
    }
    s_update_health ();
    s_start_http (config);
    if (zsys_dir_create ("%s", dir) != 0) {
        log_warn (NULL, NULL, "metrics: cannot create %s: %s; metrics are not exported", dir, strerror (errno));
        free (dir);
        return -1;              /* the registry stays: counting costs nothing */
    }
    size_t size = strlen (dir) + strlen (process) + strlen (instance) + 16;
    s_export.path = malloc (size);
    s_export.tmp = malloc (size + 4);
    if (s_export.path && s_export.tmp) {
        snprintf (s_export.path, size, "%s/%s-%s.prom", dir, process, instance);
        snprintf (s_export.tmp, size + 4, "%s.tmp", s_export.path);
    }
    free (dir);
    if (!s_export.path || !s_export.tmp) {
        free (s_export.path);
        free (s_export.tmp);
        s_export.path = s_export.tmp = NULL;
        return -1;
    }
    s_export.stopping = false;
    if (pthread_create (&s_export.thread, NULL, s_writer, NULL) != 0) {
        log_warn (NULL, NULL, "metrics: cannot start the writer thread; metrics are not exported");
        return -1;
    }
    s_export.running = true;
    return 0;
}

void
metrics_export_stop (void)
{
    /* First the port: its thread renders the registry destroyed below. */
    metrics_http_stop (&s_export.http);
    if (s_export.running) {
        pthread_mutex_lock (&s_export.lock);
        s_export.stopping = true;
        pthread_cond_signal (&s_export.wake);
        pthread_mutex_unlock (&s_export.lock);
        pthread_join (s_export.thread, NULL);
        s_export.running = false;
    }
    if (s_export.path)
        unlink (s_export.path);
    free (s_export.path);
    free (s_export.tmp);
    s_export.path = s_export.tmp = NULL;
    metrics_destroy (&s_export.registry);
    memset (s_export.health, 0, sizeof s_export.health);
}

/* ---- merging ------------------------------------------------------------------- */

typedef struct {
    char *name;
    char *help;                 /* the whole "# HELP ..." line, first seen */
    char *type;                 /* the whole "# TYPE ..." line, first seen */
    FILE *samples;
    char *buffer;
    size_t size;
} s_family_t;

static void
s_family_free (void **item_p)
{
    s_family_t *family = (s_family_t *) *item_p;
    if (!family)
        return;
    if (family->samples)
        fclose (family->samples);
    free (family->buffer);
    free (family->name);
    free (family->help);
    free (family->type);
    free (family);
    *item_p = NULL;
}

/* The family of name, created at the end of order. NULL when out of memory. */
static s_family_t *
s_family (zhashx_t *families, zlistx_t *order, const char *name, size_t length)
{
    char key [256];
    if (length >= sizeof key)
        length = sizeof key - 1;
    memcpy (key, name, length);
    key [length] = 0;
    s_family_t *family = (s_family_t *) zhashx_lookup (families, key);
    if (family)
        return family;
    family = calloc (1, sizeof (s_family_t));
    if (!family)
        return NULL;
    family->name = strdup (key);
    family->samples = open_memstream (&family->buffer, &family->size);
    if (!family->name || !family->samples || zhashx_insert (families, key, family) != 0) {
        void *item = family;
        s_family_free (&item);
        return NULL;
    }
    zlistx_add_end (order, family);
    return family;
}

/* The length of the metric name a line starts with. */
static size_t
s_name_length (const char *line)
{
    size_t n = 0;
    while (line [n] && line [n] != '{' && line [n] != ' ' && line [n] != '\t')
        n++;
    return n;
}

static void
s_merge_text (zhashx_t *families, zlistx_t *order, const char *text)
{
    s_family_t *current = NULL;
    const char *line = text;
    while (line && *line) {
        const char *end = strchr (line, '\n');
        size_t length = end ? (size_t) (end - line) : strlen (line);
        if (length > 7 && (strncmp (line, "# HELP ", 7) == 0 || strncmp (line, "# TYPE ", 7) == 0)) {
            const char *name = line + 7;
            s_family_t *family = s_family (families, order, name, s_name_length (name));
            char **slot = family ? (line [2] == 'H' ? &family->help : &family->type) : NULL;
            if (slot && !*slot)
                *slot = strndup (line, length);
            current = family;
        }
        else
        if (length > 0 && line [0] != '#') {
            /* A histogram's _bucket/_sum/_count lines follow their TYPE line. */
            s_family_t *family = current;
            size_t name_length = s_name_length (line);
            if (!family || strncmp (line, family->name, strlen (family->name)) != 0 || name_length < strlen (family->name))
                family = s_family (families, order, line, name_length);
            if (family)
                fprintf (family->samples, "%.*s\n", (int) length, line);
        }
        line = end ? end + 1 : NULL;
    }
}

char *
metrics_export_merge (const char *const *texts, size_t n, size_t *size)
{
    zhashx_t *families = zhashx_new ();
    zlistx_t *order = zlistx_new ();
    char *out = NULL;
    size_t length = 0;
    FILE *stream = NULL;
    if (!families || !order)
        goto done;
    zlistx_set_destructor (order, s_family_free);
    for (size_t i = 0; i < n; i++)
        if (texts [i])
            s_merge_text (families, order, texts [i]);
    stream = open_memstream (&out, &length);
    if (!stream)
        goto done;
    for (s_family_t *family = (s_family_t *) zlistx_first (order); family;
         family = (s_family_t *) zlistx_next (order)) {
        fflush (family->samples);
        if (family->help)
            fprintf (stream, "%s\n", family->help);
        if (family->type)
            fprintf (stream, "%s\n", family->type);
        if (family->size)
            fwrite (family->buffer, 1, family->size, stream);
    }
    if (fclose (stream) != 0) {
        free (out);
        out = NULL;
    }
done:
    zhashx_destroy (&families);
    zlistx_destroy (&order);
    if (out && size)
        *size = length;
    return out;
}

/* The whole file at path when it changed within max_age_ms; NULL otherwise. */
static char *
s_read_fresh (const char *path, int64_t max_age_ms)
{
    struct stat info;
    if (stat (path, &info) != 0 || !S_ISREG (info.st_mode) || info.st_size > S_FILE_MAX)
        return NULL;
    int64_t age_ms = (int64_t) (time (NULL) - info.st_mtime) * 1000;
    if (age_ms > max_age_ms)
        return NULL;
    FILE *file = fopen (path, "r");
    if (!file)
        return NULL;
    char *text = malloc ((size_t) info.st_size + 1);
    size_t got = text ? fread (text, 1, (size_t) info.st_size, file) : 0;
    fclose (file);
    if (text)
        text [got] = 0;
    return text;
}

char *
metrics_export_collect (config_t *config, const char *extra, int64_t max_age_ms, size_t *size)
{
    char *dir = config_data_path (config, "run/metrics");
    char **texts = NULL;
    size_t n = 0, cap = 0;
    DIR *listing = dir ? opendir (dir) : NULL;
    struct dirent *entry;
    while (listing && (entry = readdir (listing))) {
        size_t length = strlen (entry->d_name);
        if (length < 6 || strcmp (entry->d_name + length - 5, ".prom") != 0)
            continue;
        char path [4200];
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        if (extra && s_export.path && strcmp (path, s_export.path) == 0)
            continue;           /* the caller's own, fresher in extra */
        char *text = s_read_fresh (path, max_age_ms);
        if (!text)
            continue;
        if (n + 2 > cap) {
            size_t grown = cap ? cap * 2 : 16;
            char **bigger = realloc (texts, grown * sizeof (char *));
            if (!bigger) {
                free (text);
                break;
            }
            texts = bigger;
            cap = grown;
        }
        texts [n++] = text;
    }
    if (listing)
        closedir (listing);
    free (dir);
    const char **all = calloc (n + 1, sizeof (char *));
    char *out = NULL;
    if (all) {
        all [0] = extra;
        for (size_t i = 0; i < n; i++)
            all [i + 1] = texts [i];
        out = metrics_export_merge (all, n + 1, size);
        free (all);
    }
    for (size_t i = 0; i < n; i++)
        free (texts [i]);
    free (texts);
    return out;
}
