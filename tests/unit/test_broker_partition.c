/* test_broker_partition — the handler registry and the partitioning rule without
 * sockets: sorted identities, liveness, and a key-to-handler choice that is
 * stable, balanced, independent of arrival order and moves few keys on change. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../broker/broker_workers.h"

#include <stdio.h>
#include <string.h>

static broker_id_t
s_id (const char *text)
{
    broker_id_t id;
    assert_int_equal (broker_id_set (&id, text, strlen (text)), 0);
    return id;
}

static void
test_ids (void **state)
{
    (void) state;
    broker_id_t a = s_id ("abc"), b = s_id ("abd"), c = s_id ("ab");
    assert_true (broker_id_cmp (&a, &b) < 0);
    assert_true (broker_id_cmp (&c, &a) < 0);
    assert_true (broker_id_cmp (&a, &a) == 0);
    assert_true (broker_id_eq (&a, &a));
    assert_false (broker_id_eq (&a, &c));
    char hex [8];
    broker_id_hex (&a, hex, sizeof hex);
    assert_string_equal (hex, "616263");
    char small [5];
    broker_id_hex (&a, small, sizeof small);
    assert_string_equal (small, "6162");
    broker_id_t bad;
    assert_int_equal (broker_id_set (&bad, "", 0), -2);
    char big [300];
    memset (big, 'x', sizeof big);
    assert_int_equal (broker_id_set (&bad, big, sizeof big), -2);
    assert_int_equal (broker_id_from_frame (&bad, NULL), -2);
}

static void
test_registry (void **state)
{
    (void) state;
    broker_workers_t *workers = broker_workers_new ();
    assert_non_null (workers);
    broker_id_t h2 = s_id ("handler-2"), h1 = s_id ("handler-1"), h3 = s_id ("handler-3");
    broker_id_t out;
    assert_int_equal (broker_workers_choose (workers, "case", &out), -1);
    assert_int_equal (broker_workers_touch (workers, &h2, 0), 1);
    assert_int_equal (broker_workers_touch (workers, &h3, 0), 1);
    assert_int_equal (broker_workers_touch (workers, &h1, 0), 1);
    assert_int_equal (broker_workers_touch (workers, &h1, 5), 0);
    assert_int_equal (broker_workers_size (workers), 3);
    assert_true (broker_id_eq (broker_workers_at (workers, 0), &h1));
    assert_true (broker_id_eq (broker_workers_at (workers, 1), &h2));
    assert_true (broker_id_eq (broker_workers_at (workers, 2), &h3));
    assert_null (broker_workers_at (workers, 3));

    /* liveness: h1 was seen at 5, the others at 0 */
    assert_int_equal (broker_workers_find_silent (workers, 3000, 3000, &out), 0);
    assert_int_equal (broker_workers_find_silent (workers, 3001, 3000, &out), 1);
    assert_true (broker_id_eq (&out, &h2));
    assert_int_equal (broker_workers_remove (workers, &out), 0);
    assert_int_equal (broker_workers_find_silent (workers, 3001, 3000, &out), 1);
    assert_true (broker_id_eq (&out, &h3));
    assert_int_equal (broker_workers_remove (workers, &out), 0);
    assert_int_equal (broker_workers_find_silent (workers, 3001, 3000, &out), 0);
    assert_int_equal (broker_workers_remove (workers, &h3), -1);
    assert_true (broker_workers_contains (workers, &h1));
    assert_false (broker_workers_contains (workers, &h2));

    /* the registry is bounded */
    for (int i = 0; i < BROKER_WORKERS_MAX + 10; i++) {
        char name [32];
        snprintf (name, sizeof name, "w%05d", i);
        broker_id_t id = s_id (name);
        int rc = broker_workers_touch (workers, &id, 0);
        assert_int_equal (rc, i < BROKER_WORKERS_MAX - 1 ? 1 : -1);
    }
    assert_int_equal (broker_workers_size (workers), BROKER_WORKERS_MAX);
    broker_workers_destroy (&workers);
    assert_null (workers);
    broker_workers_destroy (NULL);
}

/* Chooses for every key; counts[i] = keys won by the i-th handler (identity order). */
static void
s_assign (broker_workers_t *workers, int n_keys, broker_id_t *choice)
{
    for (int k = 0; k < n_keys; k++) {
        char key [48];
        snprintf (key, sizeof key, "%08x-0000-4000-8000-%012d", (unsigned) k * 2654435761u, k);
        assert_int_equal (broker_workers_choose (workers, key, &choice [k]), 0);
    }
}

#define N_KEYS 20000

static void
test_stable_and_balanced (void **state)
{
    (void) state;
    static broker_id_t first [N_KEYS], second [N_KEYS];
    const char *names [] = { "handler-0", "handler-1", "handler-2", "handler-3" };
    broker_workers_t *a = broker_workers_new ();
    broker_workers_t *b = broker_workers_new ();
    for (int i = 0; i < 4; i++) {
        broker_id_t id = s_id (names [i]);
        broker_workers_touch (a, &id, 0);
        broker_id_t id2 = s_id (names [3 - i]);          /* registered in the other order */
        broker_workers_touch (b, &id2, 0);
    }
    s_assign (a, N_KEYS, first);
    s_assign (b, N_KEYS, second);
    int counts [4] = { 0 };
    for (int k = 0; k < N_KEYS; k++) {
        assert_true (broker_id_eq (&first [k], &second [k]));
        for (int i = 0; i < 4; i++)
            if (broker_id_eq (&first [k], broker_workers_at (a, (size_t) i)))
                counts [i]++;
    }
    /* each of 4 handlers gets a quarter, within 10% */
    for (int i = 0; i < 4; i++) {
        assert_in_range (counts [i], N_KEYS / 4 * 9 / 10, N_KEYS / 4 * 11 / 10);
    }
    /* the score is a fixed function: pin one value so a change is noticed */
    broker_id_t h0 = s_id ("handler-0");
    assert_int_equal (broker_workers_score ("case-1", &h0), 0xe215dc22b9784734ULL);
    assert_true (broker_workers_score ("case-1", &h0) != broker_workers_score ("case-2", &h0));

    /* a new handler takes about a fifth of the keys, all of them from the others */
    broker_id_t h4 = s_id ("handler-4");
    broker_workers_touch (a, &h4, 0);
    s_assign (a, N_KEYS, second);
    int moved = 0;
    for (int k = 0; k < N_KEYS; k++)
        if (!broker_id_eq (&first [k], &second [k])) {
            assert_true (broker_id_eq (&second [k], &h4));
            moved++;
        }
    assert_in_range (moved, N_KEYS / 5 * 9 / 10, N_KEYS / 5 * 11 / 10);

    /* removing a handler moves only its own keys */
    broker_id_t h1 = s_id ("handler-1");
    broker_workers_remove (a, &h1);
    static broker_id_t third [N_KEYS];
    s_assign (a, N_KEYS, third);
    for (int k = 0; k < N_KEYS; k++) {
        if (broker_id_eq (&second [k], &h1))
            assert_false (broker_id_eq (&third [k], &h1));
        else
            assert_true (broker_id_eq (&third [k], &second [k]));
    }
    broker_workers_destroy (&a);
    broker_workers_destroy (&b);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_ids),
        cmocka_unit_test (test_registry),
        cmocka_unit_test (test_stable_and_balanced),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
