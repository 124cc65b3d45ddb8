/* sqlite_checkpointer — a thread and a connection of their own for the WAL
 * checkpoints of one writer (see sqlite_checkpointer.h). Inline, every few megabytes
 * of WAL a commit took the checkpoint's tens of milliseconds: that was what the
 * slowest acknowledgments of the store and the slowest projections were made of. */
#include "sqlite_checkpointer.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>

struct sqlite_checkpointer_t {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int pending;                /* frames were committed since the last checkpoint */
    int stop;
    int warned;
    int wake_frames, inline_frames;
    sqlite3 *writer;            /* not owned */
    sqlite3 *db;                /* the checkpointer's own connection */
};

static void *
s_run (void *arg)
{
    sqlite_checkpointer_t *self = (sqlite_checkpointer_t *) arg;
    pthread_mutex_lock (&self->lock);
    while (!self->stop) {
        while (!self->pending && !self->stop)
            pthread_cond_wait (&self->wake, &self->lock);
        if (self->stop)
            break;
        self->pending = 0;
        pthread_mutex_unlock (&self->lock);
        /* PASSIVE: copies what it can without waiting for the writer or readers;
         * the writer restarts the WAL from its start once all of it is copied. */
        int frames = 0, copied = 0;
        int rc = sqlite3_wal_checkpoint_v2 (self->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn (NULL, NULL, "background checkpoint failed: %s", sqlite3_errmsg (self->db));
        else
        if (rc == SQLITE_OK && frames < 0 && !self->warned) {
            self->warned = 1;           /* "not in WAL mode": then it would never copy anything */
            log_warn (NULL, NULL, "background checkpoint: the database is not in WAL mode");
        }
        pthread_mutex_lock (&self->lock);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

/* Called by SQLite after each commit on the writer's connection with the WAL's
 * length in frames. */
static int
s_wal_hook (void *arg, sqlite3 *db, const char *name, int frames)
{
    sqlite_checkpointer_t *self = (sqlite_checkpointer_t *) arg;
    if (frames >= self->inline_frames)
        sqlite3_wal_checkpoint_v2 (db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    else
    if (frames >= self->wake_frames) {
        pthread_mutex_lock (&self->lock);
        self->pending = 1;
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->lock);
    }
    return SQLITE_OK;
}

sqlite_checkpointer_t *
sqlite_checkpointer_new (sqlite3 *writer, const char *path, int wake_frames, int inline_frames)
{
    sqlite_checkpointer_t *self = (sqlite_checkpointer_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->writer = writer;
    self->wake_frames = wake_frames;
    self->inline_frames = inline_frames;
    if (sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        sqlite3_close (self->db);
        free (self);
        return NULL;
    }
    sqlite3_busy_timeout (self->db, 5000);
    /* A connection that has not read the database yet does not know it is in WAL
     * mode: its checkpoints answer SQLITE_OK and copy nothing. */
    if (sqlite3_exec (self->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close (self->db);
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    if (pthread_create (&self->thread, NULL, s_run, self) != 0) {
        pthread_mutex_destroy (&self->lock);
        pthread_cond_destroy (&self->wake);
        sqlite3_close (self->db);
        free (self);
        return NULL;
    }
    /* Our hook replaces SQLite's automatic checkpoint on this connection. */
    sqlite3_wal_hook (writer, s_wal_hook, self);
    return self;
}

void
sqlite_checkpointer_destroy (sqlite_checkpointer_t **self_p)
{
    sqlite_checkpointer_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    /* The writer checkpoints by itself again (its close checkpoints and removes
     * the WAL, after this thread is gone). */
    sqlite3_wal_autocheckpoint (self->writer, 1000);
    pthread_mutex_lock (&self->lock);
    self->stop = 1;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->thread, NULL);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->wake);
    sqlite3_close (self->db);
    free (self);
    *self_p = NULL;
}
