/* config — settings from a ZPL file (czmq zconfig) with environment overrides:
 * key "http_addr" in section "dossier" is overridden by DOSSIER_HTTP_ADDR.
 * The file is $DOSSIER_CONFIG, else the path given, else built-in defaults. */
#ifndef DOSSIER_CONFIG_H
#define DOSSIER_CONFIG_H

#include <czmq.h>

typedef struct _config_t config_t;

/* Loads $DOSSIER_CONFIG, else path, else (both unset) built-in defaults. Returns NULL
 * if the named file is missing or cannot be parsed. Caller owns; destroy with config_destroy. */
config_t *config_load (const char *path);
void config_destroy (config_t **self_p);

/* Value of "dossier/<key>": environment DOSSIER_<KEY> wins, then the file, then dflt.
 * The returned string is borrowed from config (valid until destroy). */
const char *config_get (config_t *self, const char *key, const char *dflt);
long config_get_long (config_t *self, const char *key, long dflt);

/* Absolute path of the config file in use, or NULL when running on defaults. */
const char *config_path (config_t *self);

/* The underlying tree, for sections such as "processes" (borrowed, may be NULL). */
zconfig_t *config_tree (config_t *self);

/* Malloc'd path "<data_dir>/<name>"; caller frees. Creates data_dir if missing. */
char *config_data_path (config_t *self, const char *name);

#endif
