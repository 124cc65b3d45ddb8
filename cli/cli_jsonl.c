/* cli_jsonl — line splitter (see cli_jsonl.h). The buffer holds at most one partial
 * line plus one fed chunk: once a partial line passes max_line its bytes are dropped
 * and only counted until its newline arrives. */
#include "cli_jsonl.h"

#include <stdlib.h>
#include <string.h>

struct _cli_jsonl_t {
    char *buffer;
    size_t size;                /* bytes held */
    size_t capacity;
    size_t start;               /* first byte not yet returned */
    size_t scanned;             /* bytes from start known to hold no newline */
    size_t max_line;
    long number;                /* lines returned or skipped so far */
    int discarding;             /* inside an over-long line: dropping its bytes */
    size_t discarded;
    int overlong_ready;         /* an over-long line has ended and awaits next() */
    size_t overlong_size;
    int finished;
    int at_start;               /* nothing fed yet: a BOM may follow */
    char bom [3];               /* first bytes, held until we know if they are a BOM */
    size_t bom_size;
};

cli_jsonl_t *
cli_jsonl_new (size_t max_line)
{
    cli_jsonl_t *self = calloc (1, sizeof (cli_jsonl_t));
    if (!self)
        return NULL;
    self->max_line = max_line ? max_line : 1;
    self->at_start = 1;
    return self;
}

void
cli_jsonl_destroy (cli_jsonl_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->buffer);
        free (*self_p);
        *self_p = NULL;
    }
}

static int
s_append (cli_jsonl_t *self, const char *data, size_t size)
{
    if (self->start > 0) {
        memmove (self->buffer, self->buffer + self->start, self->size - self->start);
        self->size -= self->start;
        self->scanned -= self->start;
        self->start = 0;
    }
    if (self->size + size > self->capacity) {
        size_t capacity = self->capacity ? self->capacity : 65536;
        while (capacity < self->size + size)
            capacity *= 2;
        char *buffer = realloc (self->buffer, capacity);
        if (!buffer)
            return -1;
        self->buffer = buffer;
        self->capacity = capacity;
    }
    memcpy (self->buffer + self->size, data, size);
    self->size += size;
    return 0;
}

/* The byte stream after BOM handling. */
static int
s_feed (cli_jsonl_t *self, const char *data, size_t size)
{
    while (size > 0) {
        if (self->discarding) {
            const char *newline = memchr (data, '\n', size);
            if (!newline) {
                self->discarded += size;
                return 0;
            }
            size_t used = (size_t) (newline - data);
            self->discarded += used;
            self->discarding = 0;
            self->overlong_ready = 1;
            self->overlong_size = self->discarded;
            data += used + 1;
            size -= used + 1;
            continue;
        }
        if (s_append (self, data, size) != 0)
            return -1;
        size = 0;
        /* A partial line already over the cap (no newline in it) is dropped now. */
        if (!memchr (self->buffer + self->scanned, '\n', self->size - self->scanned)) {
            self->scanned = self->size;
            /* Not while an earlier over-long line awaits next(): one pending at a time. */
            if (self->size - self->start > self->max_line + 1 && !self->overlong_ready) {   /* +1: a CR may end it */
                self->discarding = 1;
                self->discarded = self->size - self->start;
                self->size = self->start = self->scanned = 0;
            }
        }
    }
    return 0;
}

int
cli_jsonl_feed (cli_jsonl_t *self, const void *data, size_t size)
{
    const char *bytes = (const char *) data;
    if (self->at_start) {
        /* Hold back up to three bytes until we know whether they are a UTF-8 BOM. */
        while (size > 0 && self->bom_size < 3) {
            self->bom [self->bom_size++] = *bytes++;
            size--;
        }
        if (self->bom_size < 3 && memcmp (self->bom, "\xEF\xBB\xBF", self->bom_size) == 0)
            return 0;
        self->at_start = 0;
        if (memcmp (self->bom, "\xEF\xBB\xBF", 3) != 0 && s_feed (self, self->bom, self->bom_size) != 0)
            return -1;
    }
    return s_feed (self, bytes, size);
}

void
cli_jsonl_finish (cli_jsonl_t *self)
{
    if (self->at_start) {
        self->at_start = 0;
        if (self->bom_size && !(self->bom_size == 3 && memcmp (self->bom, "\xEF\xBB\xBF", 3) == 0))
            s_feed (self, self->bom, self->bom_size);
    }
    if (self->discarding) {
        self->discarding = 0;
        self->overlong_ready = 1;
        self->overlong_size = self->discarded;
    }
    self->finished = 1;
}

static int
s_blank (const char *data, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (data [i] != ' ' && data [i] != '\t' && data [i] != '\r')
            return 0;
    return 1;
}

int
cli_jsonl_next (cli_jsonl_t *self, cli_jsonl_line_t *line)
{
    for (;;) {
        if (self->overlong_ready) {
            self->overlong_ready = 0;
            line->data = NULL;
            line->size = self->overlong_size;
            line->number = ++self->number;
            line->too_long = 1;
            return 1;
        }
        const char *begin = self->buffer + self->start;
        const char *newline = self->size > self->scanned
            ? memchr (self->buffer + self->scanned, '\n', self->size - self->scanned) : NULL;
        size_t size;
        if (newline) {
            size = (size_t) (newline - begin);
            self->start = self->scanned = (size_t) (newline - self->buffer) + 1;
        }
        else {
            self->scanned = self->size;
            if (!self->finished || self->start == self->size)
                return 0;
            size = self->size - self->start;        /* last line, no newline */
            self->start = self->scanned = self->size;
        }
        self->number++;
        if (size > 0 && begin [size - 1] == '\r')
            size--;
        if (s_blank (begin, size))
            continue;
        line->number = self->number;
        line->too_long = size > self->max_line;
        line->data = line->too_long ? NULL : begin;
        line->size = size;
        return 1;
    }
}

int
cli_jsonl_done (cli_jsonl_t *self)
{
    return self->finished && !self->overlong_ready && self->start == self->size;
}
