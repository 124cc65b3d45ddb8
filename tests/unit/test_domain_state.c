/* test_domain_state — both state machines of schemas/events.md, exhaustively: every
 * (from, to) pair is checked against the list of legal moves written out here by hand
 * from the schema, so a change to either table shows up as a failing pair. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "case_state.h"
#include "document_state.h"

typedef struct { const char *from, *to; } s_move_t;

static const s_move_t s_case_moves [] = {
    { "OPEN", "AWAITING_DOCUMENTS" },
    { "OPEN", "IN_REVIEW" },
    { "OPEN", "REJECTED" },
    { "AWAITING_DOCUMENTS", "IN_REVIEW" },
    { "AWAITING_DOCUMENTS", "REJECTED" },
    { "IN_REVIEW", "AWAITING_DOCUMENTS" },
    { "IN_REVIEW", "APPROVED" },
    { "IN_REVIEW", "REJECTED" },
    { "APPROVED", "CLOSED" },
    { "REJECTED", "CLOSED" },
};

static const s_move_t s_document_moves [] = {
    { "AWAITING_UPLOAD", "UPLOADED" },
    { "UPLOADED", "VERIFIED" },
    { "UPLOADED", "REJECTED" },
    { "REJECTED", "AWAITING_UPLOAD" },
};

static int
s_listed (const s_move_t *moves, size_t count, const char *from, const char *to)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp (moves [i].from, from) == 0 && strcmp (moves [i].to, to) == 0)
            return 1;
    return 0;
}

static void
test_case_names (void **state)
{
    (void) state;
    const char *names [] = { "OPEN", "AWAITING_DOCUMENTS", "IN_REVIEW", "APPROVED", "REJECTED", "CLOSED" };
    assert_int_equal (CASE_STATE_COUNT, 6);
    for (int i = 0; i < CASE_STATE_COUNT; i++) {
        assert_string_equal (case_state_name (i), names [i]);
        assert_int_equal (case_state_from_string (names [i]), i);
    }
    assert_null (case_state_name (-1));
    assert_null (case_state_name (CASE_STATE_COUNT));
    const char *bad [] = { "open", "", "PENDING", "OPEN ", "CLOSED2" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        assert_int_equal (case_state_from_string (bad [i]), CASE_STATE_INVALID);
    assert_int_equal (case_state_from_string (NULL), CASE_STATE_INVALID);
}

static void
test_case_transitions (void **state)
{
    (void) state;
    size_t legal = 0;
    for (int from = 0; from < CASE_STATE_COUNT; from++)
        for (int to = 0; to < CASE_STATE_COUNT; to++) {
            int expected = s_listed (s_case_moves, sizeof s_case_moves / sizeof s_case_moves [0],
                                     case_state_name (from), case_state_name (to));
            if (case_state_can_transition (from, to) != expected)
                fail_msg ("case %s -> %s: expected %d", case_state_name (from), case_state_name (to), expected);
            legal += (size_t) expected;
        }
    assert_int_equal (legal, sizeof s_case_moves / sizeof s_case_moves [0]);
    /* some illegal moves, spelled out */
    assert_false (case_state_can_transition (CASE_STATE_OPEN, CASE_STATE_APPROVED));
    assert_false (case_state_can_transition (CASE_STATE_AWAITING_DOCUMENTS, CASE_STATE_APPROVED));
    assert_false (case_state_can_transition (CASE_STATE_CLOSED, CASE_STATE_OPEN));
    assert_false (case_state_can_transition (CASE_STATE_APPROVED, CASE_STATE_REJECTED));
    assert_false (case_state_can_transition (CASE_STATE_REJECTED, CASE_STATE_IN_REVIEW));
    assert_false (case_state_can_transition (CASE_STATE_IN_REVIEW, CASE_STATE_IN_REVIEW));
    assert_false (case_state_can_transition (CASE_STATE_OPEN, CASE_STATE_CLOSED));
    assert_false (case_state_can_transition (-1, CASE_STATE_OPEN));
    assert_false (case_state_can_transition (CASE_STATE_OPEN, 99));
}

static void
test_document_names (void **state)
{
    (void) state;
    const char *names [] = { "AWAITING_UPLOAD", "UPLOADED", "VERIFIED", "REJECTED" };
    assert_int_equal (DOCUMENT_STATE_COUNT, 4);
    for (int i = 0; i < DOCUMENT_STATE_COUNT; i++) {
        assert_string_equal (document_state_name (i), names [i]);
        assert_int_equal (document_state_from_string (names [i]), i);
    }
    assert_null (document_state_name (-1));
    assert_null (document_state_name (DOCUMENT_STATE_COUNT));
    assert_int_equal (document_state_from_string ("uploaded"), DOCUMENT_STATE_INVALID);
    assert_int_equal (document_state_from_string ("LOST"), DOCUMENT_STATE_INVALID);
    assert_int_equal (document_state_from_string (NULL), DOCUMENT_STATE_INVALID);
}

static void
test_document_transitions (void **state)
{
    (void) state;
    size_t legal = 0;
    for (int from = 0; from < DOCUMENT_STATE_COUNT; from++)
        for (int to = 0; to < DOCUMENT_STATE_COUNT; to++) {
            int expected = s_listed (s_document_moves, sizeof s_document_moves / sizeof s_document_moves [0],
                                     document_state_name (from), document_state_name (to));
            if (document_state_can_transition (from, to) != expected)
                fail_msg ("document %s -> %s: expected %d", document_state_name (from),
                          document_state_name (to), expected);
            legal += (size_t) expected;
        }
    assert_int_equal (legal, 4);
    assert_false (document_state_can_transition (DOCUMENT_STATE_AWAITING_UPLOAD, DOCUMENT_STATE_VERIFIED));
    assert_false (document_state_can_transition (DOCUMENT_STATE_AWAITING_UPLOAD, DOCUMENT_STATE_REJECTED));
    assert_false (document_state_can_transition (DOCUMENT_STATE_VERIFIED, DOCUMENT_STATE_REJECTED));
    assert_false (document_state_can_transition (DOCUMENT_STATE_UPLOADED, DOCUMENT_STATE_UPLOADED));
    assert_false (document_state_can_transition (DOCUMENT_STATE_REJECTED, DOCUMENT_STATE_UPLOADED));
    assert_false (document_state_can_transition (7, DOCUMENT_STATE_UPLOADED));
    assert_false (document_state_can_transition (DOCUMENT_STATE_UPLOADED, -1));
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_case_names),
        cmocka_unit_test (test_case_transitions),
        cmocka_unit_test (test_document_names),
        cmocka_unit_test (test_document_transitions),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
