/* config — ZPL config file plus environment. Environment wins so that containers
 * and `make run VAR=...` can override any key without editing files. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct _config_t {
    zconfig_t *tree;        /* may be NULL: defaults only */
    char *path;             /* absolute path of the file, or NULL */
    zhash_t *cache;         /* env/derived values we handed out, owned here */
};

config_t *
config_load (const char *path)
{
    config_t *self = calloc (1, sizeof (config_t));
    if (!self)
        return NULL;
    self->cache = zhash_new ();
    zhash_autofree (self->cache);
    const char *env = getenv ("DOSSIER_CONFIG");
    const char *file = env && *env ? env : path;
    if (file && *file) {
        if (access (file, R_OK) == 0) {
            self->tree = zconfig_load (file);
            if (!self->tree) {
                config_destroy (&self);
                return NULL;
            }
            char resolved [PATH_MAX];
            self->path = strdup (realpath (file, resolved) ? resolved : file);
        }
        else {
            /* A named file that is missing is an error, never a silent fall-back to defaults. */
            config_destroy (&self);
            return NULL;
        }
    }
    return self;
}

void
config_destroy (config_t **self_p)
{
    if (self_p && *self_p) {
        config_t *self = *self_p;
        zconfig_destroy (&self->tree);
        zhash_destroy (&self->cache);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

const char *
config_get (config_t *self, const char *key, const char *dflt)
{
    char env_name [128] = "DOSSIER_";
    size_t len = strlen (env_name);
    for (const char *p = key; *p && len < sizeof env_name - 1; p++)
        env_name [len++] = *p == '/' ? '_' : (char) toupper ((unsigned char) *p);
    env_name [len] = 0;
    const char *env = getenv (env_name);
    if (env && *env) {
        zhash_update (self->cache, key, (void *) env);   /* copy: env may change */
        return (const char *) zhash_lookup (self->cache, key);
    }
    if (self->tree) {
        char path [160];
        snprintf (path, sizeof path, "dossier/%s", key);
        char *value = zconfig_get (self->tree, path, NULL);
        if (value && *value)
            return value;
    }
    return dflt;
}

long
config_get_long (config_t *self, const char *key, long dflt)
{
    const char *value = config_get (self, key, NULL);
    if (!value)
        return dflt;
    char *end;
    errno = 0;
    long n = strtol (value, &end, 10);
    return errno || *end || end == value ? dflt : n;
}

const char *
config_path (config_t *self)
{
    return self->path;
}

zconfig_t *
config_tree (config_t *self)
{
    return self->tree;
}

char *
config_data_path (config_t *self, const char *name)
{
    const char *dir = config_get (self, "data_dir", "./data");
    mkdir (dir, 0750);
    size_t size = strlen (dir) + strlen (name) + 2;
    char *path = malloc (size);
    if (path)
        snprintf (path, size, "%s/%s", dir, name);
    return path;
}
