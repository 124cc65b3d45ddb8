/* notifier_sink_jsonl — notifications as JSON lines appended to a file, fsynced per
 * batch. The file is the notifier's durable record: each line carries the event id,
 * so a consumer that sees a batch twice (after a crash) drops the duplicates. */
#include "notifier_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

typedef struct {
    int fd;
    char *path;
    int torn;                   /* the last write may have stopped mid-line */
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
    if (rc == 0 && fsync (self->fd) != 0)
        rc = -1;
    if (rc != 0) {
        log_error (NULL, NULL, "notifier: cannot append to %s: %s", self->path, strerror (errno));
        self->torn = s_ends_torn (self->fd);
        return -1;
    }
    self->torn = 0;
    return 0;
}

static const notifier_sink_ops_t s_jsonl_ops = {
    .name = "jsonl",
    .deliver = s_jsonl_deliver,
    .destroy = s_jsonl_destroy,
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
