/* cli_summary — counts and rejections of one dossier ingest run (see cli_summary.h).
 * Rejections are kept in arrival order and sorted by line only when printed. */
#include "cli_summary.h"
#include "json_scan.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    long line;
    int status;
    char *error;
    char *detail;
} s_rejection_t;

struct _cli_summary_t {
    size_t new_cases;
    size_t duplicates;
    size_t unanswered;
    s_rejection_t *rejections;
    size_t n_rejections;
    size_t capacity;
};

/* Copies src, truncating at a UTF-8 character boundary so that the copy stays
 * valid UTF-8 (json_pack refuses anything else). */
static void
s_copy (char *dst, size_t dst_size, const char *src)
{
    src = src ? src : "";
    size_t len = strlen (src);
    if (len >= dst_size) {
        len = dst_size - 1;
        /* Back off continuation bytes, then the lead byte of the cut character. */
        while (len > 0 && ((unsigned char) src [len] & 0xC0) == 0x80)
            len--;
    }
    memcpy (dst, src, len);
    dst [len] = 0;
}

int
cli_result_parse (const char *body, size_t size, cli_result_t *out)
{
    memset (out, 0, sizeof *out);
    out->kind = CLI_RESULT_RETRY;
    out->line = -1;
    json_t *root = body && size ? json_scan_loadb (body, size, 0, NULL) : NULL;
    json_t *ok = root ? json_object_get (root, "ok") : NULL;
    if (!json_is_object (root) || !json_is_boolean (ok)) {
        json_decref (root);
        s_copy (out->error, sizeof out->error, "malformed_result");
        return -2;
    }
    json_t *line = json_object_get (root, "line");
    if (json_is_integer (line))
        out->line = (long) json_integer_value (line);
    if (json_is_true (ok)) {
        out->status = 200;
        out->kind = json_is_true (json_object_get (root, "duplicate")) ? CLI_RESULT_DUPLICATE : CLI_RESULT_NEW;
        s_copy (out->case_id, sizeof out->case_id, json_string_value (json_object_get (root, "case_id")));
    }
    else {
        json_t *status = json_object_get (root, "status");
        out->status = json_is_integer (status) ? (int) json_integer_value (status) : 0;
        /* Only a 4xx is the record's fault; anything else may pass on another try. */
        out->kind = out->status >= 400 && out->status < 500 ? CLI_RESULT_REJECTED : CLI_RESULT_RETRY;
        s_copy (out->error, sizeof out->error, json_string_value (json_object_get (root, "error")));
        s_copy (out->detail, sizeof out->detail, json_string_value (json_object_get (root, "detail")));
    }
    json_decref (root);
    return 0;
}

cli_summary_t *
cli_summary_new (void)
{
    return calloc (1, sizeof (cli_summary_t));
}

void
cli_summary_destroy (cli_summary_t **self_p)
{
    if (self_p && *self_p) {
        cli_summary_t *self = *self_p;
        for (size_t i = 0; i < self->n_rejections; i++) {
            free (self->rejections [i].error);
            free (self->rejections [i].detail);
        }
        free (self->rejections);
        free (self);
        *self_p = NULL;
    }
}

int
cli_summary_reject (cli_summary_t *self, long line, int status, const char *error, const char *detail)
{
    if (self->n_rejections == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 64;
        s_rejection_t *rejections = realloc (self->rejections, capacity * sizeof (s_rejection_t));
        if (!rejections)
            return -1;
        self->rejections = rejections;
        self->capacity = capacity;
    }
    s_rejection_t *r = &self->rejections [self->n_rejections];
    r->line = line;
    r->status = status;
    r->error = strdup (error ? error : "");
    r->detail = strdup (detail ? detail : "");
    if (!r->error || !r->detail) {
        free (r->error);
        free (r->detail);
        return -1;
    }
    self->n_rejections++;
    return 0;
}

int
cli_summary_add (cli_summary_t *self, long line, const cli_result_t *result)
{
    switch (result->kind) {
        case CLI_RESULT_NEW:
            self->new_cases++;
            return 0;
        case CLI_RESULT_DUPLICATE:
            self->duplicates++;
            return 0;
        case CLI_RESULT_REJECTED:
            return cli_summary_reject (self, line, result->status, result->error, result->detail);
        default:
            return 0;
    }
}

void
cli_summary_set_unanswered (cli_summary_t *self, size_t count)
{
    self->unanswered = count;
}

size_t cli_summary_accepted (cli_summary_t *self) { return self->new_cases + self->duplicates; }
size_t cli_summary_new_cases (cli_summary_t *self) { return self->new_cases; }
size_t cli_summary_duplicates (cli_summary_t *self) { return self->duplicates; }
size_t cli_summary_rejected (cli_summary_t *self) { return self->n_rejections; }
size_t cli_summary_unanswered (cli_summary_t *self) { return self->unanswered; }

static int
s_by_line (const void *a, const void *b)
{
    long la = ((const s_rejection_t *) a)->line, lb = ((const s_rejection_t *) b)->line;
    return la < lb ? -1 : la > lb;
}

/* qsort wants a non-NULL base even for zero elements. */
static void
s_sort (cli_summary_t *self)
{
    if (self->n_rejections > 1)
        qsort (self->rejections, self->n_rejections, sizeof (s_rejection_t), s_by_line);
}

void
cli_summary_print (cli_summary_t *self, FILE *out)
{
    fprintf (out, "accepted %zu (new %zu, duplicate %zu), rejected %zu",
             cli_summary_accepted (self), self->new_cases, self->duplicates, self->n_rejections);
    if (self->unanswered)
        fprintf (out, ", unanswered %zu", self->unanswered);
    fprintf (out, "\n");
    s_sort (self);
    for (size_t i = 0; i < self->n_rejections; i++) {
        const s_rejection_t *r = &self->rejections [i];
        fprintf (out, "line %ld: %d %s: %s\n", r->line, r->status, r->error, r->detail);
    }
}

char *
cli_summary_json (cli_summary_t *self)
{
    json_t *list = json_array ();
    if (!list)
        return NULL;
    s_sort (self);
    for (size_t i = 0; i < self->n_rejections; i++) {
        const s_rejection_t *r = &self->rejections [i];
        json_t *item = json_pack ("{s:I, s:i, s:s, s:s}", "line", (json_int_t) r->line,
                                  "status", r->status, "error", r->error, "detail", r->detail);
        if (!item)      /* not UTF-8 after all (a local rejection's text): keep the line */
            item = json_pack ("{s:I, s:i, s:s, s:s}", "line", (json_int_t) r->line,
                              "status", r->status, "error", "invalid_text", "detail", "");
        if (!item || json_array_append_new (list, item) != 0) {
            json_decref (list);
            return NULL;
        }
    }
    json_t *root = json_pack ("{s:I, s:I, s:I, s:I, s:I, s:o}",
        "accepted", (json_int_t) cli_summary_accepted (self),
        "new", (json_int_t) self->new_cases,
        "duplicate", (json_int_t) self->duplicates,
        "rejected", (json_int_t) self->n_rejections,
        "unanswered", (json_int_t) self->unanswered,
        "errors", list);
    if (!root)
        return NULL;
    char *text = json_dumps (root, JSON_COMPACT);
    json_decref (root);
    return text;
}
