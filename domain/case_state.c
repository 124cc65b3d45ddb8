/* case_state — the case state machine as a table, so the rules of schemas/events.md
 * are data that can be read at a glance and tested exhaustively. */
#include "case_state.h"

#include <string.h>

static const char *s_names [CASE_STATE_COUNT] = {
    "OPEN", "AWAITING_DOCUMENTS", "IN_REVIEW", "APPROVED", "REJECTED", "CLOSED"
};

/* s_allowed [from][to]: 1 where schemas/events.md allows the move. */
static const unsigned char s_allowed [CASE_STATE_COUNT][CASE_STATE_COUNT] = {
    /*                     OPEN AWAIT REVIEW APPR  REJ  CLOSED */
    /* OPEN            */ { 0,   1,    1,    0,    1,   0 },
    /* AWAITING_DOCS   */ { 0,   0,    1,    0,    1,   0 },
    /* IN_REVIEW       */ { 0,   1,    0,    1,    1,   0 },
    /* APPROVED        */ { 0,   0,    0,    0,    0,   1 },
    /* REJECTED        */ { 0,   0,    0,    0,    0,   1 },
    /* CLOSED          */ { 0,   0,    0,    0,    0,   0 },
};

int
case_state_from_string (const char *name)
{
    if (!name)
        return CASE_STATE_INVALID;
    for (int i = 0; i < CASE_STATE_COUNT; i++)
        if (strcmp (name, s_names [i]) == 0)
            return i;
    return CASE_STATE_INVALID;
}

const char *
case_state_name (int state)
{
    return state >= 0 && state < CASE_STATE_COUNT ? s_names [state] : NULL;
}

int
case_state_can_transition (int from, int to)
{
    if (from < 0 || from >= CASE_STATE_COUNT || to < 0 || to >= CASE_STATE_COUNT)
        return 0;
    return s_allowed [from][to];
}
