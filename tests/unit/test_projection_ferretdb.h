/* test_projection_ferretdb — a private FerretDB (MongoDB wire protocol) for the unit
 * tests of the MongoDB read models (projector and gateway): started on a free port
 * and a temporary directory, waited on through its "ready" line, stopped and removed
 * at the end. The server is .cache/ferretdb/ferretdb (scripts/ferretdb.sh builds it
 * when missing), or $DOSSIER_FERRETDB. A test that cannot start it fails: it is never
 * skipped. Also: a dump of the read-model collections in the text format of
 * t_dump (test_projection_helpers.h), so the two backends compare byte for byte. */
#ifndef TEST_PROJECTION_FERRETDB_H
#define TEST_PROJECTION_FERRETDB_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <mongoc/mongoc.h>

#include "config.h"
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    pid_t pid;
    int port;
    int out_fd;                 /* read end of the server's stdout */
    char dir [64];              /* temporary directory: data/ and ferretdb.log */
    char uri [128];
} t_ferret_t;

static inline int64_t
t_ferret_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The repository root: two levels above the test binary (build/tests/x). */
static inline void
t_ferret_root (char *out, size_t size)
{
    char exe [PATH_MAX] = "";
    ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    exe [n > 0 ? n : 0] = 0;
    char *dir = dirname (exe);
    snprintf (out, size, "%s/../..", dir);
}

/* Path of the server binary, building it once if it is missing. */
static inline void
t_ferret_binary (char *out, size_t size)
{
    const char *env = getenv ("DOSSIER_FERRETDB");
    if (env && *env) {
        snprintf (out, size, "%s", env);
        return;
    }
    char root [PATH_MAX - 64];
    t_ferret_root (root, sizeof root);
    if (snprintf (out, size, "%s/.cache/ferretdb/ferretdb", root) >= (int) size)
        abort ();
    if (access (out, X_OK) == 0)
        return;
    char cmd [PATH_MAX + 128];
    snprintf (cmd, sizeof cmd, "'%s/scripts/ferretdb.sh' build >&2", root);
    if (system (cmd) != 0 || access (out, X_OK) != 0) {
        fprintf (stderr, "FerretDB test server missing: %s (scripts/ferretdb.sh build)\n", out);
        abort ();
    }
}

static inline int
t_ferret_free_port (void)
{
    int s = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    if (s < 0 || bind (s, (struct sockaddr *) &addr, sizeof addr) != 0
    ||  getsockname (s, (struct sockaddr *) &addr, &len) != 0)
        abort ();
    close (s);
    return ntohs (addr.sin_port);
}

/* Starts the server on f->port and f->dir; waits for its ready line. 0 ok, -1 failed. */
static inline int
t_ferret_spawn (t_ferret_t *f)
{
    char bin [PATH_MAX], data [128], port [16], log_path [128];
    t_ferret_binary (bin, sizeof bin);
    snprintf (data, sizeof data, "%s/data", f->dir);
    snprintf (port, sizeof port, "%d", f->port);
    snprintf (log_path, sizeof log_path, "%s/ferretdb.log", f->dir);
    int out [2];
    if (pipe (out) != 0)
        return -1;
    pid_t pid = fork ();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* a test that crashes must not leave its server behind */
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        int log_fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2 (out [1], 1);
        if (log_fd >= 0)
            dup2 (log_fd, 2);
        close (out [0]);
        execl (bin, bin, "-port", port, "-dir", data, (char *) NULL);
        _exit (127);
    }
    close (out [1]);
    f->pid = pid;
    f->out_fd = out [0];
    char line [256];
    size_t got = 0;
    int64_t deadline = t_ferret_now_ms () + 60000;
    while (t_ferret_now_ms () < deadline) {
        struct pollfd p = { .fd = f->out_fd, .events = POLLIN };
        int rc = poll (&p, 1, 200);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0) {
            ssize_t n = read (f->out_fd, line + got, sizeof line - 1 - got);
            if (n <= 0)
                break;                  /* the server exited */
            got += (size_t) n;
            line [got] = 0;
            if (strstr (line, "ready ")) {
                snprintf (f->uri, sizeof f->uri, "mongodb://127.0.0.1:%d/", f->port);
                return 0;
            }
            if (got >= sizeof line - 1)
                got = 0;
        }
        int status;
        if (waitpid (pid, &status, WNOHANG) == pid) {
            f->pid = 0;
            break;
        }
    }
    if (f->pid > 0) {
        kill (f->pid, SIGKILL);
        waitpid (f->pid, NULL, 0);
    }
    f->pid = 0;
    close (f->out_fd);
    f->out_fd = -1;
    return -1;
}

/* Stops the server (SIGTERM, then SIGKILL after 10 s); the data stays. */
static inline void
t_ferret_stop (t_ferret_t *f)
{
    if (f->pid > 0) {
        kill (f->pid, SIGTERM);
        int64_t deadline = t_ferret_now_ms () + 10000;
        while (waitpid (f->pid, NULL, WNOHANG) != f->pid) {
            if (t_ferret_now_ms () > deadline) {
                kill (f->pid, SIGKILL);
                waitpid (f->pid, NULL, 0);
                break;
            }
            usleep (10000);
        }
        f->pid = 0;
    }
    if (f->out_fd >= 0)
        close (f->out_fd);
    f->out_fd = -1;
}

/* Starts it again on the same port and data (after t_ferret_stop). */
static inline void
t_ferret_restart (t_ferret_t *f)
{
    if (t_ferret_spawn (f) != 0) {
        fprintf (stderr, "FerretDB did not come back on port %d (see %s/ferretdb.log)\n", f->port, f->dir);
        abort ();
    }
}

/* A fresh server. Aborts when it cannot start (never a silent skip). */
static inline void
t_ferret_new (t_ferret_t *f)
{
    memset (f, 0, sizeof *f);
    f->out_fd = -1;
    snprintf (f->dir, sizeof f->dir, "/tmp/dos-fdbXXXXXX");
    if (!mkdtemp (f->dir))
        abort ();
    for (int attempt = 0; attempt < 3; attempt++) {
        f->port = t_ferret_free_port ();
        if (t_ferret_spawn (f) == 0)
            return;
    }
    fprintf (stderr, "FerretDB did not start (see %s/ferretdb.log)\n", f->dir);
    abort ();
}

static inline void
t_ferret_rmtree (const char *path)
{
    DIR *dir = opendir (path);
    if (!dir)
        return;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (strcmp (entry->d_name, ".") == 0 || strcmp (entry->d_name, "..") == 0)
            continue;
        char file [1024];
        if (snprintf (file, sizeof file, "%s/%s", path, entry->d_name) >= (int) sizeof file)
            continue;
        struct stat st;
        if (lstat (file, &st) == 0 && S_ISDIR (st.st_mode))
            t_ferret_rmtree (file);
        else
            unlink (file);
    }
    closedir (dir);
    rmdir (path);
}

static inline void
t_ferret_destroy (t_ferret_t *f)
{
    t_ferret_stop (f);
    if (f->dir [0])
        t_ferret_rmtree (f->dir);
    f->dir [0] = 0;
}

/* A client for the server (the test's own, not the code under test's). */
static inline mongoc_client_t *
t_ferret_client (t_ferret_t *f)
{
    mongoc_init ();
    char uri [192];
    snprintf (uri, sizeof uri, "%s?serverSelectionTimeoutMS=5000", f->uri);
    mongoc_client_t *client = mongoc_client_new (uri);
    if (!client)
        abort ();
    mongoc_client_set_error_api (client, MONGOC_ERROR_API_VERSION_2);
    return client;
}

/* Appends one field's value as text: what sqlite3_column_text would give. */
static inline void
t_ferret_value (char **out, size_t *len, size_t *cap, const bson_t *doc, const char *key)
{
    char buf [64];
    const char *text = "NULL";
    size_t n = 4;
    bson_iter_t it;
    if (bson_iter_init_find (&it, doc, key)) {
        if (BSON_ITER_HOLDS_UTF8 (&it)) {
            uint32_t l;
            text = bson_iter_utf8 (&it, &l);
            n = l;
        }
        else
        if (BSON_ITER_HOLDS_NUMBER (&it)) {
            snprintf (buf, sizeof buf, "%lld", (long long) bson_iter_as_int64 (&it));
            text = buf;
            n = strlen (buf);
        }
    }
    while (*len + n + 4 >= *cap)
        *out = realloc (*out, *cap *= 2);
    memcpy (*out + *len, text, n);
    *len += n;
    (*out) [(*len)++] = '|';
    (*out) [*len] = 0;
}

/* Every read-model collection of database db as t_dump prints the SQLite tables:
 * same tables, columns and order. Caller frees. */
static inline char *
t_mongo_dump (mongoc_client_t *client, const char *db)
{
    static const struct {
        const char *table, *collection;
        const char *columns [9];
        const char *sort [2];
    } tables [] = {
        { "checkpoint", "rm_checkpoints", { "_id", "position" }, { "_id" } },
        { "cases", "rm_cases", { "_id", "seq", "client_id", "traitement_type", "status", "updated_position",
                                 "summary_json", "full_json" }, { "_id" } },
        { "companies", "rm_companies", { "_id", "case_id", "seq", "updated_position", "json" }, { "_id" } },
        { "persons", "rm_persons", { "_id", "case_id", "company_id", "seq", "updated_position", "json" }, { "_id" } },
        { "beneficial_owners", "rm_beneficial_owners", { "_id", "company_id", "case_id", "seq", "updated_position",
                                                         "json" }, { "_id" } },
        { "documents", "rm_documents", { "_id", "case_id", "seq", "status", "updated_position", "json" }, { "_id" } },
        { "case_events", "rm_case_events", { "case_seq", "version", "case_id", "position", "json" },
          { "case_seq", "version" } },
        { "projector_errors", "rm_projector_errors", { "_id", "event_id", "error" }, { "_id" } },
    };
    size_t cap = 1 << 16, len = 0;
    char *out = malloc (cap);
    out [0] = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables [0]; t++) {
        mongoc_collection_t *coll = mongoc_client_get_collection (client, db, tables [t].collection);
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
        BSON_APPEND_DOCUMENT_BEGIN (&opts, "sort", &sort);
        for (size_t s = 0; s < 2 && tables [t].sort [s]; s++)
            BSON_APPEND_INT32 (&sort, tables [t].sort [s], 1);
        bson_append_document_end (&opts, &sort);
        mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (coll, &filter, &opts, NULL);
        const bson_t *doc;
        while (mongoc_cursor_next (cursor, &doc)) {
            size_t n = strlen (tables [t].table);
            while (len + n + 2 >= cap) {     /* a test helper: out of memory ends the test */
                char *bigger = realloc (out, cap * 2);
                if (!bigger)
                    abort ();
                out = bigger;
                cap *= 2;
            }
            memcpy (out + len, tables [t].table, n + 1);
            len += n;
            for (size_t c = 0; c < 9 && tables [t].columns [c]; c++)
                t_ferret_value (&out, &len, &cap, doc, tables [t].columns [c]);
            out [len++] = '\n';
            out [len] = 0;
        }
        bson_error_t error;
        if (mongoc_cursor_error (cursor, &error)) {
            fprintf (stderr, "dump of %s.%s failed: %s\n", db, tables [t].collection, error.message);
            abort ();
        }
        mongoc_cursor_destroy (cursor);
        bson_destroy (&filter);
        bson_destroy (&opts);
        mongoc_collection_destroy (coll);
    }
    return out;
}

/* A test group's whole fixture: a FerretDB of its own, a client of the test's, and a
 * config whose mongodb_uri points at it (DOSSIER_MONGODB_URI; no config file). 0 ok. */
static inline int
t_ferret_group_up (t_ferret_t *f, mongoc_client_t **client, config_t **config)
{
    t_ferret_new (f);
    *client = t_ferret_client (f);
    unsetenv ("DOSSIER_CONFIG");
    setenv ("DOSSIER_MONGODB_URI", f->uri, 1);
    /* FerretDB takes any write concern; production keeps the default (majority, journal) */
    *config = config_load (NULL);
    return *config ? 0 : -1;
}

static inline void
t_ferret_group_down (t_ferret_t *f, mongoc_client_t **client, config_t **config)
{
    config_destroy (config);
    mongoc_client_destroy (*client);
    *client = NULL;
    t_ferret_destroy (f);
    mongoc_cleanup ();
}

#endif
