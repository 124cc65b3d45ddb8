/* test_broker_inflight — in-flight bookkeeping and the waiting queue without
 * sockets: pins per case, replies matched by (client, command id), client
 * retries, the re-dispatch set of a dead handler in dispatch order, expiry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../broker/broker_inflight.h"
#include "../../broker/broker_pending.h"
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

/* A command from client with id and key, meant for worker. Caller owns. */
static broker_command_t *
s_command (const char *client, const char *id, const char *key, const char *worker)
{
    envelope_t env;
    envelope_init (&env, "cmd.test", id);
    envelope_set (env.key, sizeof env.key, key);
    envelope_set (env.correlation_id, sizeof env.correlation_id, "corr");
    zframe_t *frame = zframe_new (id, strlen (id));
    broker_id_t client_id = s_id (client);
    broker_command_t *command = broker_command_new (&client_id, &env, &frame);
    assert_non_null (command);
    assert_null (frame);
    if (worker)
        command->worker = s_id (worker);
    return command;
}

static void
test_command_fields (void **state)
{
    (void) state;
    broker_command_t *command = s_command ("client", "cmd-1", "case-1", NULL);
    assert_string_equal (command->id, "cmd-1");
    assert_string_equal (command->key, "case-1");
    assert_string_equal (command->partition, "case-1");
    assert_string_equal (command->correlation_id, "corr");
    assert_int_equal (zframe_size (command->frame), 5);
    broker_command_destroy (&command);
    assert_null (command);
    /* no key: partitioned by command id */
    command = s_command ("client", "cmd-2", "", NULL);
    assert_string_equal (command->partition, "cmd-2");
    broker_command_destroy (&command);
    broker_command_destroy (NULL);
}

static void
test_pins_and_replies (void **state)
{
    (void) state;
    broker_inflight_t *inflight = broker_inflight_new ();
    assert_non_null (inflight);
    broker_id_t w1 = s_id ("w1");
    broker_id_t client = s_id ("client");
    assert_null (broker_inflight_pinned (inflight, "case-1"));

    broker_command_t *command = s_command ("client", "cmd-1", "case-1", "w1");
    broker_command_t *sent = broker_inflight_add (inflight, &command, 100);
    assert_null (command);
    assert_non_null (sent);
    assert_int_equal (sent->since_ms, 100);
    assert_true (broker_id_eq (broker_inflight_pinned (inflight, "case-1"), &w1));

    command = s_command ("client", "cmd-2", "case-1", "w1");
    assert_non_null (broker_inflight_add (inflight, &command, 101));
    assert_int_equal (broker_inflight_size (inflight), 2);

    /* the case stays pinned until its last command is answered */
    assert_int_equal (broker_inflight_complete (inflight, &client, "cmd-1"), 0);
    assert_non_null (broker_inflight_pinned (inflight, "case-1"));
    assert_int_equal (broker_inflight_complete (inflight, &client, "cmd-1"), -1);
    assert_int_equal (broker_inflight_complete (inflight, &client, "cmd-2"), 0);
    assert_null (broker_inflight_pinned (inflight, "case-1"));
    assert_int_equal (broker_inflight_size (inflight), 0);

    /* a client retry while in flight keeps the first copy; another client's
     * command with the same id is its own entry */
    command = s_command ("client", "cmd-3", "case-3", "w1");
    broker_command_t *first = broker_inflight_add (inflight, &command, 200);
    command = s_command ("client", "cmd-3", "case-3", "w1");
    assert_ptr_equal (broker_inflight_add (inflight, &command, 201), first);
    assert_null (command);
    assert_int_equal (broker_inflight_size (inflight), 1);
    command = s_command ("other", "cmd-3", "case-3", "w1");
    assert_ptr_not_equal (broker_inflight_add (inflight, &command, 202), first);
    assert_int_equal (broker_inflight_size (inflight), 2);
    assert_int_equal (broker_inflight_complete (inflight, &client, "cmd-3"), 0);
    assert_non_null (broker_inflight_pinned (inflight, "case-3"));
    broker_id_t other = s_id ("other");
    assert_int_equal (broker_inflight_complete (inflight, &other, "cmd-3"), 0);
    assert_null (broker_inflight_pinned (inflight, "case-3"));

    /* destroy frees what is still in flight */
    command = s_command ("client", "cmd-4", "case-4", "w1");
    broker_inflight_add (inflight, &command, 300);
    broker_inflight_destroy (&inflight);
    assert_null (inflight);
}

static void
test_take_worker_in_dispatch_order (void **state)
{
    (void) state;
    broker_inflight_t *inflight = broker_inflight_new ();
    const char *plan [][3] = {
        { "a", "case-1", "w1" }, { "b", "case-2", "w2" }, { "c", "case-3", "w1" },
        { "d", "case-1", "w1" }, { "e", "case-4", "w2" },
    };
    for (int i = 0; i < 5; i++) {
        broker_command_t *command = s_command ("client", plan [i][0], plan [i][1], plan [i][2]);
        assert_non_null (broker_inflight_add (inflight, &command, i));
    }
    broker_id_t w1 = s_id ("w1"), w2 = s_id ("w2"), w3 = s_id ("w3");
    broker_command_t **commands = NULL;
    assert_int_equal (broker_inflight_take_worker (inflight, &w3, &commands), 0);
    assert_null (commands);
    assert_int_equal (broker_inflight_take_worker (inflight, &w1, &commands), 3);
    assert_string_equal (commands [0]->id, "a");
    assert_string_equal (commands [1]->id, "c");
    assert_string_equal (commands [2]->id, "d");
    assert_int_equal (broker_inflight_size (inflight), 2);
    assert_null (broker_inflight_pinned (inflight, "case-1"));
    assert_null (broker_inflight_pinned (inflight, "case-3"));
    assert_true (broker_id_eq (broker_inflight_pinned (inflight, "case-2"), &w2));

    /* re-dispatch selection: w1 is dead, so its commands go where the
     * partitioning says among the live handlers, and a case's commands stay
     * together (the first pins, the next follow the pin) */
    broker_workers_t *workers = broker_workers_new ();
    broker_workers_touch (workers, &w2, 0);
    broker_workers_touch (workers, &w3, 0);
    broker_id_t targets [3];
    for (int i = 0; i < 3; i++) {
        broker_command_t *command = commands [i];
        const broker_id_t *pinned = broker_inflight_pinned (inflight, command->partition);
        broker_id_t target;
        if (pinned)
            target = *pinned;
        else
            assert_int_equal (broker_workers_choose (workers, command->partition, &target), 0);
        assert_false (broker_id_eq (&target, &w1));
        targets [i] = target;
        command->worker = target;
        assert_non_null (broker_inflight_add (inflight, &commands [i], 10 + i));
    }
    free (commands);
    /* a and d are both case-1: same handler */
    assert_true (broker_id_eq (&targets [0], &targets [2]));
    broker_id_t chosen;
    assert_int_equal (broker_workers_choose (workers, "case-1", &chosen), 0);
    assert_true (broker_id_eq (&targets [0], &chosen));
    long total = 0;
    for (int w = 0; w < 2; w++) {
        long n = broker_inflight_take_worker (inflight, w ? &w3 : &w2, &commands);
        assert_true (n >= 0);
        for (long i = 0; i < n; i++)
            broker_command_destroy (&commands [i]);
        free (commands);
        total += n;
    }
    assert_int_equal (total, 5);
    assert_int_equal (broker_inflight_size (inflight), 0);
    broker_workers_destroy (&workers);
    broker_inflight_destroy (&inflight);
}

static void
test_expiry (void **state)
{
    (void) state;
    broker_inflight_t *inflight = broker_inflight_new ();
    broker_command_t *command = s_command ("client", "old", "case-1", "w1");
    broker_inflight_add (inflight, &command, 0);
    command = s_command ("client", "new", "case-2", "w1");
    broker_inflight_add (inflight, &command, 100);
    assert_null (broker_inflight_take_expired (inflight, 60, 60));
    command = broker_inflight_take_expired (inflight, 61, 60);
    assert_non_null (command);
    assert_string_equal (command->id, "old");
    broker_command_destroy (&command);
    assert_null (broker_inflight_pinned (inflight, "case-1"));
    assert_null (broker_inflight_take_expired (inflight, 61, 60));
    assert_int_equal (broker_inflight_size (inflight), 1);
    broker_inflight_destroy (&inflight);
}

static void
test_pending_queue (void **state)
{
    (void) state;
    broker_pending_t *pending = broker_pending_new (2);
    assert_non_null (pending);
    broker_command_t *a = s_command ("client", "a", "case-1", NULL);
    broker_command_t *b = s_command ("client", "b", "case-2", NULL);
    broker_command_t *c = s_command ("client", "c", "case-3", NULL);
    assert_int_equal (broker_pending_push (pending, &a, 0), 0);
    assert_null (a);
    assert_int_equal (broker_pending_push (pending, &b, 5), 0);
    assert_int_equal (broker_pending_push (pending, &c, 6), -1);    /* full: caller keeps it */
    assert_non_null (c);
    broker_command_destroy (&c);
    assert_int_equal (broker_pending_size (pending), 2);

    assert_null (broker_pending_take_expired (pending, 10, 10));
    broker_command_t *taken = broker_pending_take_expired (pending, 11, 10);
    assert_non_null (taken);
    assert_string_equal (taken->id, "a");
    broker_command_destroy (&taken);
    taken = broker_pending_pop (pending);
    assert_string_equal (taken->id, "b");
    broker_command_destroy (&taken);
    assert_null (broker_pending_pop (pending));

    /* destroy frees what still waits */
    c = s_command ("client", "c", "case-3", NULL);
    broker_pending_push (pending, &c, 0);
    broker_pending_destroy (&pending);
    assert_null (pending);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_command_fields),
        cmocka_unit_test (test_pins_and_replies),
        cmocka_unit_test (test_take_worker_in_dispatch_order),
        cmocka_unit_test (test_expiry),
        cmocka_unit_test (test_pending_queue),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
