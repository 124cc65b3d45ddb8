/* document_state — the life cycle of a document requirement (schemas/events.md):
 * AWAITING_UPLOAD → UPLOADED → VERIFIED | REJECTED, and REJECTED → AWAITING_UPLOAD,
 * which the domain emits right after a rejection. Anything else is refused. */
#ifndef DOSSIER_DOCUMENT_STATE_H
#define DOSSIER_DOCUMENT_STATE_H

typedef enum {
    DOCUMENT_STATE_AWAITING_UPLOAD = 0,
    DOCUMENT_STATE_UPLOADED,
    DOCUMENT_STATE_VERIFIED,
    DOCUMENT_STATE_REJECTED,
    DOCUMENT_STATE_COUNT
} document_state_t;

#define DOCUMENT_STATE_INVALID (-1)

/* The state named name (exact, upper case), or DOCUMENT_STATE_INVALID. */
int document_state_from_string (const char *name);

/* The name of state ("UPLOADED"), or NULL for an out-of-range value. */
const char *document_state_name (int state);

/* 1 if a document may move from `from` to `to`, else 0. */
int document_state_can_transition (int from, int to);

#endif
