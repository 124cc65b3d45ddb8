/* process_table — the supervisor's children: one row per process instance, in start
 * order, with its state, pid, readiness pipe and restart history. Loading the table
 * from the config and rendering ctl.status JSON live here; forking does not. */
#ifndef DOSSIER_PROCESS_TABLE_H
#define DOSSIER_PROCESS_TABLE_H

#include "restart_policy.h"

#include <czmq.h>
#include <stdint.h>
#include <sys/types.h>

#define PROCESS_NAME_MAX      32
#define PROCESS_INSTANCES_MAX 64      /* per name: a typo like "handler = 2000" must not fork-bomb */
#define PROCESS_GROUPS_MAX    32

typedef enum {
    PROCESS_STARTING = 0,       /* forked, not yet ready */
    PROCESS_RUNNING,            /* said ready */
    PROCESS_BACKOFF,            /* died; waiting to be restarted */
    PROCESS_FAILED,             /* given up on */
    PROCESS_STOPPED             /* not started yet, or stopped on purpose */
} process_state_t;

typedef struct {
    char name [PROCESS_NAME_MAX];
    int instance;               /* 0-based, passed as DOSSIER_INSTANCE */
    int instances;              /* how many of name run, passed as DOSSIER_INSTANCES */
    int group;                  /* index of name in start order */
    pid_t pid;                  /* 0 when no live child */
    process_state_t state;
    int ready_fd;               /* read end of the readiness pipe, -1 when closed */
    int64_t started_ms;         /* monotonic ms of the latest fork */
    int64_t restart_at_ms;      /* when state is BACKOFF */
    int restarts;               /* restarts since the supervisor started */
    int term_sent;              /* SIGTERM (1) or SIGKILL (2) already sent to this incarnation */
    restart_history_t history;
} process_t;

typedef struct _process_table_t process_table_t;

/* Returns NULL on allocation failure. */
process_table_t *process_table_new (void);
void process_table_destroy (process_table_t **self_p);

/* Appends count instances of name as the next group. Returns 0 ok, -2 for an invalid
 * name ([a-z0-9_-], 1..31 chars), a duplicate name, or a count out of 0..64; -1 when
 * the table is full. A count of 0 adds an empty group (nothing is started). */
int process_table_add (process_table_t *self, const char *name, int count);

/* Fills the table from the "processes" section of tree (may be NULL: built-in default
 * list), applying DOSSIER_PROCESSES_<NAME> overrides from the environment. Invalid
 * entries are logged and skipped. Returns 0, or -2 if any entry was skipped. */
int process_table_load (process_table_t *self, zconfig_t *tree);

size_t process_table_size (process_table_t *self);
/* Borrowed row i (0 <= i < size), NULL when out of range. */
process_t *process_table_at (process_table_t *self, size_t i);
/* Borrowed row of a live child, NULL if pid is not one of ours. */
process_t *process_table_find_pid (process_table_t *self, pid_t pid);

int process_table_groups (process_table_t *self);
/* Name of group g, borrowed; NULL when out of range. */
const char *process_table_group_name (process_table_t *self, int g);

/* "starting", "running", "backoff", "failed" or "stopped". */
const char *process_state_name (process_state_t state);

/* ctl.status body: {"processes":[{name, instance, pid, state, uptime_s, restarts}...]}.
 * Returns a malloc'd NUL-terminated string (caller frees), NULL on allocation failure. */
char *process_table_status_json (process_table_t *self, int64_t now_ms);

#endif
