/* case_state — the life cycle of a case (schemas/events.md) as a transition table:
 * OPEN → AWAITING_DOCUMENTS → IN_REVIEW → APPROVED | REJECTED → CLOSED, plus the
 * side roads the schema names. Pure: names, parsing and the legality of a move. */
#ifndef DOSSIER_CASE_STATE_H
#define DOSSIER_CASE_STATE_H

typedef enum {
    CASE_STATE_OPEN = 0,
    CASE_STATE_AWAITING_DOCUMENTS,
    CASE_STATE_IN_REVIEW,
    CASE_STATE_APPROVED,
    CASE_STATE_REJECTED,
    CASE_STATE_CLOSED,
    CASE_STATE_COUNT
} case_state_t;

#define CASE_STATE_INVALID (-1)

/* The state named name (exact, upper case), or CASE_STATE_INVALID. NULL is invalid. */
int case_state_from_string (const char *name);

/* The name of state ("IN_REVIEW"), or NULL for an out-of-range value. */
const char *case_state_name (int state);

/* 1 if the schema allows a case to move from `from` to `to`, else 0
 * (out-of-range values and staying put are never allowed). */
int case_state_can_transition (int from, int to);

#endif
