/* cli_progress — one-line progress text for the CLI's long commands: a bar on a
 * terminal (redrawn with \r), a plain line once a second otherwise. Formatting only. */
#ifndef DOSSIER_CLI_PROGRESS_H
#define DOSSIER_CLI_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t bytes_read;
    uint64_t bytes_total;       /* 0 when unknown (a pipe) */
    size_t done;                /* lines answered for good */
    size_t rejected;
    size_t in_flight;
    size_t resends;
    double elapsed_s;
} cli_progress_t;

/* Writes "[#####.....]  50%" (width cells inside the brackets) for fraction 0..1. */
void cli_progress_bar (double fraction, int width, char *buf, size_t size);

/* The ingest progress line, without a line ending. bar != 0 draws a bar when the
 * total size is known. */
void cli_progress_format (const cli_progress_t *progress, int bar, char *buf, size_t size);

#endif
