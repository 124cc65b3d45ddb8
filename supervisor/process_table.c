/* process_table — rows for every supervised instance (see process_table.h). Rows are
 * stored in start order so a reverse walk is the stop order. */
#include "process_table.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define PROCESS_TABLE_MAX (PROCESS_GROUPS_MAX * 8)

struct _process_table_t {
    process_t *rows;
    size_t size;
    size_t capacity;
    char groups [PROCESS_GROUPS_MAX][PROCESS_NAME_MAX];
    int n_groups;
};

/* The start order of config/dossier.cfg, used when there is no config file. */
static const struct { const char *name; int count; } s_default_processes [] = {
    { "store", 1 }, { "broker", 1 }, { "handler", 2 }, { "projector", 1 },
    { "notifier", 1 }, { "scheduler", 1 }, { "gateway", 1 }, { "ingest", 1 }
};

process_table_t *
process_table_new (void)
{
    return calloc (1, sizeof (process_table_t));
}

void
process_table_destroy (process_table_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->rows);
        free (*self_p);
        *self_p = NULL;
    }
}

/* A name becomes part of a binary path: no slashes, dots or shell-ish characters. */
static int
s_valid_name (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len >= PROCESS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name [i];
        if (!(islower (c) || isdigit (c) || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int
process_table_add (process_table_t *self, const char *name, int count)
{
    if (!name || !s_valid_name (name) || count < 0 || count > PROCESS_INSTANCES_MAX)
        return -2;
    for (int g = 0; g < self->n_groups; g++)
        if (streq (self->groups [g], name))
            return -2;
    if (self->n_groups == PROCESS_GROUPS_MAX || self->size + (size_t) count > PROCESS_TABLE_MAX)
        return -1;
    if (self->size + (size_t) count > self->capacity) {
        size_t capacity = self->capacity ? self->capacity : 16;
        while (capacity < self->size + (size_t) count)
            capacity *= 2;
        process_t *rows = realloc (self->rows, capacity * sizeof (process_t));
        if (!rows)
            return -1;
        self->rows = rows;
        self->capacity = capacity;
    }
    int group = self->n_groups++;
    snprintf (self->groups [group], PROCESS_NAME_MAX, "%s", name);
    for (int i = 0; i < count; i++) {
        process_t *row = &self->rows [self->size++];
        memset (row, 0, sizeof *row);
        snprintf (row->name, sizeof row->name, "%s", name);
        row->instance = i;
        row->instances = count;
        row->group = group;
        row->state = PROCESS_STOPPED;
        row->ready_fd = -1;
    }
    return 0;
}

/* Count for name: DOSSIER_PROCESSES_<NAME> wins over value. Returns -2 if unparseable. */
static int
s_count (const char *name, const char *value)
{
    char env_name [64] = "DOSSIER_PROCESSES_";
    size_t len = strlen (env_name);
    for (const char *p = name; *p && len < sizeof env_name - 1; p++)
        env_name [len++] = *p == '-' ? '_' : (char) toupper ((unsigned char) *p);
    env_name [len] = 0;
    const char *env = getenv (env_name);
    if (env && *env)
        value = env;
    if (!value)
        return -2;
    char *end;
    errno = 0;
    long n = strtol (value, &end, 10);
    if (errno || end == value || *end || n < 0 || n > PROCESS_INSTANCES_MAX)
        return -2;
    return (int) n;
}

static int
s_add_entry (process_table_t *self, const char *name, const char *value)
{
    int count = s_count (name, value);
    int rc = count < 0 ? -2 : process_table_add (self, name, count);
    if (rc == -2)
        log_error (NULL, NULL, "processes: ignoring entry '%.40s' = '%.20s' (name [a-z0-9_-], count 0..%d)",
                   name, value ? value : "", PROCESS_INSTANCES_MAX);
    else
    if (rc == -1)
        log_error (NULL, NULL, "processes: too many entries, ignoring '%.40s'", name);
    return rc;
}

int
process_table_load (process_table_t *self, zconfig_t *tree)
{
    int rc = 0;
    zconfig_t *section = tree ? zconfig_locate (tree, "processes") : NULL;
    if (section) {
        for (zconfig_t *item = zconfig_child (section); item; item = zconfig_next (item)) {
            const char *name = zconfig_name (item);
            if (s_add_entry (self, name ? name : "", zconfig_value (item)) != 0)
                rc = -2;
        }
    }
    else {
        for (size_t i = 0; i < sizeof s_default_processes / sizeof s_default_processes [0]; i++) {
            char value [16];
            snprintf (value, sizeof value, "%d", s_default_processes [i].count);
            if (s_add_entry (self, s_default_processes [i].name, value) != 0)
                rc = -2;
        }
    }
    return rc;
}

size_t
process_table_size (process_table_t *self)
{
    return self->size;
}

process_t *
process_table_at (process_table_t *self, size_t i)
{
    return i < self->size ? &self->rows [i] : NULL;
}

process_t *
process_table_find_pid (process_table_t *self, pid_t pid)
{
    if (pid <= 0)
        return NULL;
    for (size_t i = 0; i < self->size; i++)
        if (self->rows [i].pid == pid)
            return &self->rows [i];
    return NULL;
}

int
process_table_groups (process_table_t *self)
{
    return self->n_groups;
}

const char *
process_table_group_name (process_table_t *self, int g)
{
    return g >= 0 && g < self->n_groups ? self->groups [g] : NULL;
}

const char *
process_state_name (process_state_t state)
{
    switch (state) {
        case PROCESS_STARTING: return "starting";
        case PROCESS_RUNNING:  return "running";
        case PROCESS_BACKOFF:  return "backoff";
        case PROCESS_FAILED:   return "failed";
        case PROCESS_STOPPED:  return "stopped";
    }
    return "unknown";
}

char *
process_table_status_json (process_table_t *self, int64_t now_ms)
{
    json_t *list = json_array ();
    json_t *root = json_pack ("{s:o}", "processes", list);
    if (!root)
        return NULL;
    for (size_t i = 0; i < self->size; i++) {
        process_t *row = &self->rows [i];
        double uptime = row->pid > 0 && now_ms > row->started_ms
                      ? (double) (now_ms - row->started_ms) / 1000.0 : 0.0;
        json_t *item = json_pack ("{s:s, s:i, s:i, s:s, s:f, s:i}",
            "name", row->name, "instance", row->instance, "pid", (int) row->pid,
            "state", process_state_name (row->state), "uptime_s", uptime,
            "restarts", row->restarts);
        if (!item || json_array_append_new (list, item) != 0) {
            json_decref (root);
            return NULL;
        }
    }
    /* Twelve digits: enough for ms over years, and 1.662 prints as 1.662. */
    char *text = json_dumps (root, JSON_COMPACT | JSON_REAL_PRECISION (12));
    json_decref (root);
    return text;
}
