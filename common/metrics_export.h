/* metrics_export — makes every process's metrics scrapeable through one URL. Each
 * process's registry is written every second to <data_dir>/run/metrics/
 * <process>-<instance>.prom (aside, then renamed: a reader never sees half a file),
 * node_exporter's textfile-collector idiom; the gateway merges the fresh files
 * into its /metrics answer, one family at a time. */
#ifndef DOSSIER_METRICS_EXPORT_H
#define DOSSIER_METRICS_EXPORT_H

#include "config.h"
#include "metrics.h"

#include <stdint.h>

/* Creates the process registry (labels process="<process>", instance="<instance
 * from DOSSIER_INSTANCE, else 0>") and starts the writer thread; with metrics_port
 * set, also the process's own port (metrics_http.h: /metrics, /healthz, /ready).
 * 0 ok, -1 failed (logged; the process runs on, its metrics unexported). Call once,
 * from main. */
int metrics_export_start (config_t *config, const char *process);

/* The process registry; NULL before metrics_export_start or after stop. The
 * metric_* calls accept the NULL a lookup on it returns. */
metrics_t *metrics_process (void);

/* Stops the writer, removes the process's file (a stopped process is not
 * scraped as if alive) and destroys the registry. */
void metrics_export_stop (void);

/* A metrics_port value ("<port>" or "<host>:<port>", 0 or empty: off) with offset
 * added to its port, written into address as "<host>:<port>" or "<port>". Returns
 * 1 (address written), 0 (off: nothing written), -1 (not a port, or out of range
 * with the offset). The supervisor gives each child its own port this way. */
int metrics_export_port (const char *value, int offset, char *address, size_t size);

/* Writes the registry to the process's file now. 0 ok, -1 failed. */
int metrics_export_flush (void);

/* What the gateway serves: every *.prom file in the metrics directory written
 * within max_age_ms, plus extra (the caller's own rendering, may be NULL), merged
 * so that each family appears once with its HELP and TYPE. Caller frees; NULL
 * when out of memory. */
char *metrics_export_collect (config_t *config, const char *extra, int64_t max_age_ms, size_t *size);

/* The merge itself, for tests: texts in exposition format, n of them. Caller frees. */
char *metrics_export_merge (const char *const *texts, size_t n, size_t *size);

#endif
