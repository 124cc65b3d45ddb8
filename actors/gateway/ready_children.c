/* ready_children — reads the supervisor's metrics file and the other processes'
 * (see ready_children.h). The files are the processes' own renderings, so the lines
 * are regular: one sample per child (labels child and child_instance) or per health
 * state (label state), value 0 or 1. */
#include "ready_children.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define S_PREFIX "dossier_supervisor_child_up{"
#define S_HEALTH "dossier_process_health{"

/* Copies the value of label name="..." from labels into out. 0 found, -1 not. */
static int
s_label (const char *labels, const char *name, char *out, size_t size)
{
    char key [64];
    snprintf (key, sizeof key, "%s=\"", name);
    const char *at = labels;
    while ((at = strstr (at, key)) && at != labels && at [-1] != ',' && at [-1] != '{')
        at++;
    if (!at)
        return -1;
    at += strlen (key);
    const char *end = strchr (at, '"');
    if (!end || (size_t) (end - at) >= size)
        return -1;
    memcpy (out, at, (size_t) (end - at));
    out [end - at] = 0;
    return 0;
}

int
gw_ready_children (config_t *config, int64_t max_age_ms, gw_buf_t *out, int *count)
{
    char *path = config_data_path (config, "run/metrics/supervisor-0.prom");
    struct stat info;
    FILE *file = NULL;
    if (path && stat (path, &info) == 0 && (int64_t) (time (NULL) - info.st_mtime) * 1000 <= max_age_ms)
        file = fopen (path, "r");
    free (path);
    if (!file)
        return 0;
    int rc = 0;
    char line [1024];
    while (rc == 0 && fgets (line, sizeof line, file)) {
        if (strncmp (line, S_PREFIX, strlen (S_PREFIX)) != 0)
            continue;
        const char *close = strrchr (line, '}');
        if (!close || atof (close + 1) >= 1)
            continue;
        char child [96], instance [16], reason [160];
        if (s_label (line, "child", child, sizeof child) || s_label (line, "child_instance", instance, sizeof instance))
            continue;
        snprintf (reason, sizeof reason, "%s#%s not running", child, instance);
        if ((*count > 0 && gw_buf_append_str (out, ",")) || gw_buf_append_json_string (out, reason, strlen (reason)))
            rc = -1;
        (*count)++;
    }
    fclose (file);
    return rc;
}

/* The file at path when it changed within max_age_ms, else NULL. */
static FILE *
s_open_fresh (const char *path, int64_t max_age_ms)
{
    struct stat info;
    if (stat (path, &info) != 0 || !S_ISREG (info.st_mode)
    ||  (int64_t) (time (NULL) - info.st_mtime) * 1000 > max_age_ms)
        return NULL;
    return fopen (path, "r");
}

int
gw_ready_processes (config_t *config, int64_t max_age_ms, gw_buf_t *out, int *count)
{
    char *dir = config_data_path (config, "run/metrics");
    DIR *listing = dir ? opendir (dir) : NULL;
    int rc = 0;
    struct dirent *entry;
    while (rc == 0 && listing && (entry = readdir (listing))) {
        size_t length = strlen (entry->d_name);
        if (length < 6 || strcmp (entry->d_name + length - 5, ".prom") != 0)
            continue;
        char path [4200];
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        FILE *file = s_open_fresh (path, max_age_ms);
        char line [1024];
        while (rc == 0 && file && fgets (line, sizeof line, file)) {
            if (strncmp (line, S_HEALTH, strlen (S_HEALTH)) != 0)
                continue;
            const char *close = strrchr (line, '}');
            if (!close || atof (close + 1) < 1)
                continue;
            char state [32], process [96], instance [96], reason [256];
            if (s_label (line, "state", state, sizeof state) || strcmp (state, "ok") == 0
            ||  s_label (line, "process", process, sizeof process)
            ||  s_label (line, "instance", instance, sizeof instance))
                continue;
            snprintf (reason, sizeof reason, "%s#%s %s", process, instance, state);
            if ((*count > 0 && gw_buf_append_str (out, ",")) || gw_buf_append_json_string (out, reason, strlen (reason)))
                rc = -1;
            (*count)++;
        }
        if (file)
            fclose (file);
    }
    if (listing)
        closedir (listing);
    free (dir);
    return rc;
}
