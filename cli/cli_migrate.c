/* cli_migrate — `dossier migrate`: puts the storage schema and indexes in place
 * before (or without) starting Dossier. Each owner creates its own: the event log's
 * by running `dossier-store --migrate`, the MongoDB read models' through
 * readmodel_mongo_migrate (common/readmodel_indexes.c). Everything is idempotent. */
#include "cli_commands.h"
#include "readmodel_indexes.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Directory of the Dossier binaries: $DOSSIER_BIN_DIR (as the supervisor uses),
 * else this program's own directory. */
static void
s_bin_dir (char *out, size_t size)
{
    const char *env = getenv ("DOSSIER_BIN_DIR");
    if (env && *env) {
        snprintf (out, size, "%s", env);
        return;
    }
    char exe [PATH_MAX] = "";
    ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    exe [n > 0 ? n : 0] = 0;
    snprintf (out, size, "%s", n > 0 ? dirname (exe) : ".");
}

static double
s_now_s (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs `dossier-store [--config PATH] --migrate` and waits up to timeout_s.
 * Returns 0 when it succeeded, 1 otherwise (err says why). */
static int
s_migrate_store (config_t *config, double timeout_s, FILE *err)
{
    char dir [PATH_MAX - 32], path [PATH_MAX];
    s_bin_dir (dir, sizeof dir);
    snprintf (path, sizeof path, "%s/dossier-store", dir);
    if (access (path, X_OK) != 0) {
        fprintf (err, "dossier: cannot run %s: %s\n", path, strerror (errno));
        return 1;
    }
    const char *config_file = config_path (config);
    fflush (NULL);
    pid_t pid = fork ();
    if (pid < 0) {
        fprintf (err, "dossier: cannot start dossier-store: %s\n", strerror (errno));
        return 1;
    }
    if (pid == 0) {
        if (config_file)
            execl (path, path, "--config", config_file, "--migrate", (char *) NULL);
        else
            execl (path, path, "--migrate", (char *) NULL);
        _exit (127);
    }
    double deadline = s_now_s () + timeout_s;
    int status = 0;
    while (true) {
        pid_t done = waitpid (pid, &status, WNOHANG);
        if (done == pid)
            break;
        if (done < 0 && errno != EINTR) {
            fprintf (err, "dossier: waiting for dossier-store: %s\n", strerror (errno));
            return 1;
        }
        if (s_now_s () > deadline) {
            kill (pid, SIGKILL);
            waitpid (pid, &status, 0);
            fprintf (err, "dossier: dossier-store --migrate did not finish in %.0f s\n", timeout_s);
            return 1;
        }
        usleep (20 * 1000);
    }
    if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
        return 0;
    fprintf (err, "dossier: dossier-store --migrate failed (%s %d)\n",
             WIFEXITED (status) ? "exit" : "signal", WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status));
    return 1;
}

int
cli_migrate_run (config_t *config, const cli_args_t *args, FILE *out, FILE *err)
{
    const char *store = config_get (config, "store", "sqlite");
    bool mongodb = strcmp (store, "mongodb") == 0;
    if (!mongodb && strcmp (store, "sqlite") != 0) {
        fprintf (err, "dossier: unknown store '%.32s' (sqlite or mongodb)\n", store);
        return 1;
    }
    int rc = s_migrate_store (config, args->timeout_s, err);
    fprintf (out, "event log (%s): %s\n", store, rc == 0 ? "schema and indexes in place" : "FAILED");
    if (mongodb) {
        int rm = readmodel_mongo_migrate (config) == 0 ? 0 : 1;
        fprintf (out, "read models (mongodb): %s\n", rm == 0 ? "indexes in place" : "FAILED");
        rc = rc || rm;
    }
    else
        fprintf (out, "read models (sqlite): created by the projector when it opens them\n");
    return rc;
}
