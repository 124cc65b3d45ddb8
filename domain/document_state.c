/* document_state — the document requirement state machine as a table. VERIFIED is
 * final: a verified document cannot be rejected afterwards. */
#include "document_state.h"

#include <string.h>

static const char *s_names [DOCUMENT_STATE_COUNT] = {
    "AWAITING_UPLOAD", "UPLOADED", "VERIFIED", "REJECTED"
};

/* s_allowed [from][to] */
static const unsigned char s_allowed [DOCUMENT_STATE_COUNT][DOCUMENT_STATE_COUNT] = {
    /*                  AWAIT UPL  VER  REJ */
    /* AWAITING_UPLOAD */ { 0,  1,   0,   0 },
    /* UPLOADED        */ { 0,  0,   1,   1 },
    /* VERIFIED        */ { 0,  0,   0,   0 },
    /* REJECTED        */ { 1,  0,   0,   0 },
};

int
document_state_from_string (const char *name)
{
    if (!name)
        return DOCUMENT_STATE_INVALID;
    for (int i = 0; i < DOCUMENT_STATE_COUNT; i++)
        if (strcmp (name, s_names [i]) == 0)
            return i;
    return DOCUMENT_STATE_INVALID;
}

const char *
document_state_name (int state)
{
    return state >= 0 && state < DOCUMENT_STATE_COUNT ? s_names [state] : NULL;
}

int
document_state_can_transition (int from, int to)
{
    if (from < 0 || from >= DOCUMENT_STATE_COUNT || to < 0 || to >= DOCUMENT_STATE_COUNT)
        return 0;
    return s_allowed [from][to];
}
