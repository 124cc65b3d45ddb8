/* cli_jsonl — splits a byte stream into JSON lines: any line length, LF or CRLF,
 * a UTF-8 byte-order mark at the start dropped, blank lines skipped but counted so
 * that line numbers match the file. A line longer than max_line is not kept in
 * memory: it comes out flagged too_long, with its length. */
#ifndef DOSSIER_CLI_JSONL_H
#define DOSSIER_CLI_JSONL_H

#include <stddef.h>

typedef struct _cli_jsonl_t cli_jsonl_t;

typedef struct {
    const char *data;           /* borrowed until the next call; NULL when too_long */
    size_t size;                /* without the line ending */
    long number;                /* 1-based line number in the input */
    int too_long;
} cli_jsonl_line_t;

/* max_line > 0. NULL on allocation failure. */
cli_jsonl_t *cli_jsonl_new (size_t max_line);
void cli_jsonl_destroy (cli_jsonl_t **self_p);

/* Appends input bytes. Returns 0, -1 on allocation failure. */
int cli_jsonl_feed (cli_jsonl_t *self, const void *data, size_t size);

/* End of input: a last line without a line ending still counts. */
void cli_jsonl_finish (cli_jsonl_t *self);

/* The next non-blank line: returns 1 and fills *line; 0 when more input is needed
 * (or, after finish, when the input is exhausted). */
int cli_jsonl_next (cli_jsonl_t *self, cli_jsonl_line_t *line);

/* 1 once finish was called and every line has been returned. */
int cli_jsonl_done (cli_jsonl_t *self);

#endif
