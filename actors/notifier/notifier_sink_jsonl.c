/* notifier_sink_jsonl — notifications as JSON lines appended to a file, one write per
 * batch and one fsync per sync period (group commit): a line counts as settled only
 * once fsynced, so the notifier's checkpoint never passes a line that a crash of the
 * machine could lose. Each line carries the event id, so a consumer that sees a batch
 * twice (after a crash) drops the duplicates. */
#include "notifier_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "log.h"

/* Lines written are fsynced at most this long after the first of them: one fsync
 * (and so one checkpoint) per period instead of per batch at a steady trickle. */
#define S_SYNC_MS 50

typedef struct {
    int fd;
    char *path;
    int torn;                   /* the last write may have stopped mid-line */
    int64_t unsynced;           /* position of the first line written since the last fsync; 0 none */
    int64_t sync_at;            /* monotonic ms when those lines are fsynced */
} s_jsonl_t;

static void
s_jsonl_destroy (void **state_p)
{
    if (state_p && *state_p) {
        s_jsonl_t *self = (s_jsonl_t *) *state_p;
        if (self->fd >= 0)
            close (self->fd);
        free (self->path);
        free (self);
        *state_p = NULL;
    }
}

/* Writes all of data (retrying short writes and EINTR). 0 ok, -1 failed. */
static int
s_write_all (int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t n = write (fd, data, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        size -= (size_t) n;
    }
    return 0;
}

/* 1 if the file is not empty and does not end with a newline (a crash mid-line). */
static int
s_ends_torn (int fd)
{
    struct stat st;
    char last;
    if (fstat (fd, &st) != 0 || st.st_size == 0)
        return 0;
    return pread (fd, &last, 1, st.st_size - 1) == 1 && last != '\n';
}

static int
s_jsonl_deliver (void *state, const notifier_item_t *items, size_t count)
{
    s_jsonl_t *self = (s_jsonl_t *) state;
    size_t size = self->torn ? 1 : 0;
    for (size_t i = 0; i < count; i++)
        size += items [i].json_size + 1;
    char *buf = malloc (size);
    if (!buf)
        return -1;
    size_t off = 0;
    if (self->torn)
        buf [off++] = '\n';
    for (size_t i = 0; i < count; i++) {
        memcpy (buf + off, items [i].json, items [i].json_size);
        off += items [i].json_size;
        buf [off++] = '\n';
    }
    /* One write for the batch; a failure half-way leaves a torn line that the
     * next attempt closes before it writes again. */
    int rc = s_write_all (self->fd, buf, size);
    free (buf);
    if (rc != 0) {
        log_error (NULL, NULL, "notifier: cannot append to %s: %s", self->path, strerror (errno));
        self->torn = s_ends_torn (self->fd);
        return -1;
    }
    self->torn = 0;
    if (!self->unsynced) {
        self->unsynced = items [0].position > 0 ? items [0].position : 1;
        self->sync_at = zclock_mono () + S_SYNC_MS;
    }
    return 0;
}

/* Everything below the first line not yet fsynced. */
static int64_t
s_jsonl_settled (void *state)
{
    s_jsonl_t *self = (s_jsonl_t *) state;
    return self->unsynced ? self->unsynced - 1 : INT64_MAX;
}

static int
s_jsonl_timeout (void *state)
{
    s_jsonl_t *self = (s_jsonl_t *) state;
    if (!self->unsynced)
        return -1;
    int64_t wait = self->sync_at - zclock_mono ();
    return wait < 0 ? 0 : (int) wait;
}

/* A failed fsync may have dropped the pages it could not write, and a second fsync
 * would not say so: the sink is broken for good, and the restart writes again every
 * line above the checkpoint (which never passed an unsynced line). */
static int
s_jsonl_sync (s_jsonl_t *self)
{
    if (!self->unsynced)
        return 0;
    if (fsync (self->fd) != 0) {
        log_error (NULL, NULL, "notifier: cannot fsync %s: %s", self->path, strerror (errno));
        return -1;
    }
    self->unsynced = 0;
    return 0;
}

static int
s_jsonl_service (void *state)
{
    s_jsonl_t *self = (s_jsonl_t *) state;
    if (!self->unsynced || zclock_mono () < self->sync_at)
        return 0;
    return s_jsonl_sync (self);
}

static int
s_jsonl_flush (void *state, int timeout_ms)
{
    (void) timeout_ms;
    return s_jsonl_sync ((s_jsonl_t *) state);
}

static const notifier_sink_ops_t s_jsonl_ops = {
    .name = "jsonl",
    .deliver = s_jsonl_deliver,
    .destroy = s_jsonl_destroy,
    .settled = s_jsonl_settled,
    .timeout = s_jsonl_timeout,
    .service = s_jsonl_service,
    .flush = s_jsonl_flush,
};

notifier_sink_t *
notifier_sink_jsonl_new (const char *path)
{
    if (!path)
        return NULL;
    s_jsonl_t *self = calloc (1, sizeof (s_jsonl_t));
    if (!self)
        return NULL;
    self->path = strdup (path);
    /* read too: the last byte tells whether a crash left a partial line */
    self->fd = open (path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (self->fd < 0 || !self->path) {
        log_error (NULL, NULL, "notifier: cannot open %s: %s", path, strerror (errno));
        void *state = self;
        s_jsonl_destroy (&state);
        return NULL;
    }
    self->torn = s_ends_torn (self->fd);
    if (self->torn)
        log_warn (NULL, NULL, "notifier: %s ends with a partial line (earlier crash); it will be closed", path);
    return notifier_sink_new (&s_jsonl_ops, self);
}
