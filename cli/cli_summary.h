/* cli_summary — what dossier ingest reports: the ingest.result answers classified
 * (new, duplicate, rejected, retry), counted, and printed as the summary text
 * ("accepted N (new M, duplicate D), rejected R" and one line per rejection) or as
 * JSON. Pure: no sockets. */
#ifndef DOSSIER_CLI_SUMMARY_H
#define DOSSIER_CLI_SUMMARY_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    CLI_RESULT_NEW = 0,         /* accepted, a new case */
    CLI_RESULT_DUPLICATE,       /* accepted, the case already existed */
    CLI_RESULT_REJECTED,        /* 4xx: final */
    CLI_RESULT_RETRY            /* 503 / 5xx / garbled: send again */
} cli_result_kind_t;

#define CLI_RESULT_DETAIL_MAX 512

typedef struct {
    cli_result_kind_t kind;
    long line;                  /* from the body, -1 if absent */
    int status;
    char case_id [64];
    char error [64];
    char detail [CLI_RESULT_DETAIL_MAX];
} cli_result_t;

/* Classifies an ingest.result body. Returns 0, or -2 when it is not a result (then
 * out->kind is CLI_RESULT_RETRY, so a garbled answer never loses a line). */
int cli_result_parse (const char *body, size_t size, cli_result_t *out);

typedef struct _cli_summary_t cli_summary_t;

cli_summary_t *cli_summary_new (void);
void cli_summary_destroy (cli_summary_t **self_p);

/* Counts a final result (kind NEW, DUPLICATE or REJECTED) for line; a RETRY is
 * ignored. Returns 0, -1 out of memory. */
int cli_summary_add (cli_summary_t *self, long line, const cli_result_t *result);
/* Counts a line rejected before sending (e.g. 413 too_large). */
int cli_summary_reject (cli_summary_t *self, long line, int status, const char *error, const char *detail);
/* Lines still unanswered when the run ended (deadline or interrupt). */
void cli_summary_set_unanswered (cli_summary_t *self, size_t count);

size_t cli_summary_accepted (cli_summary_t *self);
size_t cli_summary_new_cases (cli_summary_t *self);
size_t cli_summary_duplicates (cli_summary_t *self);
size_t cli_summary_rejected (cli_summary_t *self);
size_t cli_summary_unanswered (cli_summary_t *self);

/* The summary text: one line of counts, then "line N: <status> <error>: <detail>"
 * for each rejection in line order. */
void cli_summary_print (cli_summary_t *self, FILE *out);

/* {"accepted","new","duplicate","rejected","unanswered","errors":[{"line",
 * "status","error","detail"}...]} (rejections in line order; tests/e2e reads
 * "errors"). Caller frees; NULL on allocation failure. */
char *cli_summary_json (cli_summary_t *self);

#endif
