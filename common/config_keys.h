/* config_keys — the registry of every configuration setting a Dossier process reads:
 * its key and section in the config file, its environment variable, its default, the
 * processes that read it and what it means. `dossier config keys` prints it; the
 * deploy tests compare it with the sources, README and the compose/Kubernetes files. */
#ifndef DOSSIER_CONFIG_KEYS_H
#define DOSSIER_CONFIG_KEYS_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    /* Section of the config file ("dossier", "supervisor", "processes", "kafka"), or
     * NULL for a variable that only the environment sets. */
    const char *section;
    /* Key inside the section ("http_addr"); "<name>"-style placeholders mark a family
     * ("<property>" in section kafka). NULL when section is NULL. */
    const char *key;
    /* The environment variable that overrides it (DOSSIER_<KEY>, with the section
     * for sections other than dossier); placeholders as in key. */
    const char *env;
    /* Default as text; a form in <...> when derived from another key; NULL: unset. */
    const char *dflt;
    /* Comma-separated processes (supervisor, store, broker, handler, projector,
     * notifier, scheduler, gateway, ingest) and cli, that read it. */
    const char *processes;
    /* Endpoints only: the one process that binds it (the others connect). */
    const char *binder;
    const char *description;    /* one line */
} config_key_t;

/* Number of entries, and entry i (borrowed, static; NULL past the end). */
size_t config_keys_count (void);
const config_key_t *config_keys_at (size_t index);

/* The entry for name: a key of section "dossier" ("http_addr"), "section/key"
 * ("supervisor/grace_ms", "kafka/sasl.mechanism" matches the kafka/<property>
 * family), or an environment variable ("DOSSIER_HTTP_ADDR",
 * "DOSSIER_PROCESSES_HANDLER" matches DOSSIER_PROCESSES_<NAME>). NULL if unknown. */
const config_key_t *config_keys_find (const char *name);

/* Prints the registry to out: an aligned table, or (json != 0) one JSON array of
 * objects {section, key, env, default, processes: [...], binder, description}.
 * Returns 0, or -1 when out cannot be written. */
int config_keys_print (FILE *out, int json);

#endif
