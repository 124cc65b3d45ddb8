/* cli_window — the bookkeeping of dossier ingest's sliding window: which lines are
 * in flight, which must be (re)sent now (new, unanswered past the answer timeout,
 * or answered 503 and past the retry delay), and when the next of those is due.
 * Pure: time is passed in; nothing is sent from here. */
#ifndef DOSSIER_CLI_WINDOW_H
#define DOSSIER_CLI_WINDOW_H

#include <stddef.h>
#include <stdint.h>

enum {
    CLI_WINDOW_DONE = 0,        /* the line is finished and left the window */
    CLI_WINDOW_RETRY = 1,       /* the line will be re-sent after the retry delay */
    CLI_WINDOW_STALE = -1       /* no such line in the window (late or repeated answer) */
};

typedef struct _cli_window_t cli_window_t;

/* capacity >= 1 lines. NULL on allocation failure. */
cli_window_t *cli_window_new (size_t capacity, int64_t answer_timeout_ms, int64_t retry_delay_ms);
void cli_window_destroy (cli_window_t **self_p);

/* 1 while fewer than capacity lines are held. */
int cli_window_has_room (cli_window_t *self);
/* Lines held (waiting to be sent, in flight, or waiting to be retried). */
size_t cli_window_size (cli_window_t *self);
/* Re-sends so far (timeouts and 503s). */
size_t cli_window_resends (cli_window_t *self);

/* Adds line (> 0, not already held) with a copy of its bytes; it is due at once.
 * Returns 0, -1 when full or out of memory, -2 for a bad or duplicate line number. */
int cli_window_add (cli_window_t *self, long line, const char *data, size_t size, int64_t now_ms);

/* The next line to send at now_ms, which is marked sent at now_ms. Returns its number
 * and sets *data and *size (borrowed until the line leaves the window); 0 when none
 * is due. attempt_p (may be NULL) gets 1 for a first send, 2+ for re-sends. */
long cli_window_next_due (cli_window_t *self, int64_t now_ms, const char **data, size_t *size, int *attempt_p);

/* An answer for line: retry = 0 (accepted, or rejected with 4xx) finishes it;
 * retry = 1 (503) schedules a re-send. Returns CLI_WINDOW_DONE, CLI_WINDOW_RETRY
 * or CLI_WINDOW_STALE. */
int cli_window_answer (cli_window_t *self, long line, int retry, int64_t now_ms);

/* The connection dropped: every line in flight (sent, unanswered) is due again now;
 * lines waiting out a 503 keep their delay. Returns how many became due. */
size_t cli_window_resend_all (cli_window_t *self);

/* Milliseconds until cli_window_next_due will return a line (0: now), -1 if none held. */
int64_t cli_window_next_timer (cli_window_t *self, int64_t now_ms);

#endif
