/* test_supervisor_tree — the supervisor as a real process tree. This binary plays
 * every part: run as "dossier-supervisor" (a symlink in a temp dir) it is the
 * supervisor; as "dossier-good", "dossier-crash", ... it is a fake child; otherwise
 * it runs the tests. Tests wait on the supervisor's readiness pipe and on pidfds,
 * and ask ctl.status for everything else. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "envelope.h"
#include "ready.h"
#include "../../supervisor/supervisor.h"

#define WAIT_MS 20000           /* generous: the fakes run under ASan too */

/* ---------------------------------------------------------------------------
 * The fake children. Each appends "start <name> <instance>" to $DOSSIER_TEST_DIR/order
 * (O_APPEND: one write per line) and its arguments to <name>-<instance>.args. */

static void
s_append (const char *file, const char *fmt, ...)
{
    const char *dir = getenv ("DOSSIER_TEST_DIR");
    if (!dir)
        return;
    char path [PATH_MAX], line [PATH_MAX + 128];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    va_list args;
    va_start (args, fmt);
    int len = vsnprintf (line, sizeof line, fmt, args);
    va_end (args);
    int fd = open (path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        if (write (fd, line, (size_t) len) < 0) {
            /* the test will notice the missing line */
        }
        close (fd);
    }
}

static int
s_count_lines (const char *file, const char *prefix)
{
    const char *dir = getenv ("DOSSIER_TEST_DIR");
    char path [PATH_MAX], line [512];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen (path, "r");
    int n = 0;
    while (f && fgets (line, sizeof line, f))
        if (strncmp (line, prefix, strlen (prefix)) == 0)
            n++;
    if (f)
        fclose (f);
    return n;
}

static int
s_fake_child (const char *name, int argc, char **argv)
{
    const char *instance = getenv ("DOSSIER_INSTANCE");
    instance = instance ? instance : "?";
    char args_file [96];
    snprintf (args_file, sizeof args_file, "%s-%s.args", name, instance);
    s_append (args_file, "argc=%d config=%s instance=%s ready_fd=%s\n", argc, argc > 2 ? argv [2] : "",
              instance, getenv ("DOSSIER_READY_FD") ? "yes" : "no");
    s_append ("order", "start %s %s\n", name, instance);
    if (streq (name, "crash"))
        return 3;
    if (streq (name, "flaky")) {
        /* crashes on its first two starts, then behaves */
        if (s_count_lines ("order", "start flaky") <= 2)
            return 4;
    }
    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGTERM);
    sigaddset (&set, SIGINT);
    if (streq (name, "stubborn"))
        signal (SIGTERM, SIG_IGN);
    else
        sigprocmask (SIG_BLOCK, &set, NULL);
    if (!streq (name, "silent"))
        ready_signal ();
    if (streq (name, "stubborn") || streq (name, "silent"))
        for (;;)
            pause ();
    int sig = 0;
    sigwait (&set, &sig);
    s_append ("order", "stop %s %s\n", name, instance);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Test helpers. */

typedef struct {
    char dir [64];              /* short paths: an ipc path has a 107-byte cap */
    char bin [128];
    char config [256];
    char log [256];
    char endpoint [256];
    pid_t pid;
    int ready_fd;               /* read end of the supervisor's readiness pipe */
    zsock_t *control;
} s_tree_t;

static const char *s_fakes [] = { "supervisor", "good", "second", "crash", "flaky", "stubborn", "silent" };

static void
s_print_log (s_tree_t *tree)
{
    FILE *f = fopen (tree->log, "r");
    char line [2048];
    fprintf (stderr, "---- supervisor log ----\n");
    while (f && fgets (line, sizeof line, f))
        fputs (line, stderr);
    if (f)
        fclose (f);
}

static int
s_log_contains (s_tree_t *tree, const char *text)
{
    /* The supervisor may write a line just after the state a test waited for (its
     * status and its log are two outputs): look again for a while before saying no. */
    int64_t deadline = zclock_mono () + WAIT_MS;
    for (;;) {
        FILE *f = fopen (tree->log, "r");
        char line [2048];
        int found = 0;
        while (f && !found && fgets (line, sizeof line, f))
            found = strstr (line, text) != NULL;
        if (f)
            fclose (f);
        if (found || zclock_mono () >= deadline)
            return found;
        zclock_sleep (20);
    }
}

/* The tree of the running test, for s_cleanup when an assertion cut the test short. */
static s_tree_t *s_current = NULL;

/* Makes the temp dir, the symlinks and the config. processes is the body of the
 * processes section; supervisor the body of the supervisor section. */
static void
s_tree_setup (s_tree_t *tree, const char *processes, const char *supervisor)
{
    memset (tree, 0, sizeof *tree);
    tree->ready_fd = -1;
    s_current = tree;
    snprintf (tree->dir, sizeof tree->dir, "/tmp/dsup-XXXXXX");
    assert_non_null (mkdtemp (tree->dir));
    snprintf (tree->bin, sizeof tree->bin, "%s/bin", tree->dir);
    assert_int_equal (mkdir (tree->bin, 0700), 0);
    char self [PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    assert_true (n > 0);
    self [n] = 0;
    for (size_t i = 0; i < sizeof s_fakes / sizeof s_fakes [0]; i++) {
        char link [PATH_MAX];
        snprintf (link, sizeof link, "%s/dossier-%s", tree->bin, s_fakes [i]);
        assert_int_equal (symlink (self, link), 0);
    }
    snprintf (tree->config, sizeof tree->config, "%s/test.cfg", tree->dir);
    snprintf (tree->log, sizeof tree->log, "%s/supervisor.log", tree->dir);
    snprintf (tree->endpoint, sizeof tree->endpoint, "ipc://%s/data/run/supervisor.ipc", tree->dir);
    FILE *f = fopen (tree->config, "w");
    assert_non_null (f);
    fprintf (f, "dossier\n    data_dir = \"%s/data\"\n    log_level = \"debug\"\n"
                "processes\n%s"
                "supervisor\n%s", tree->dir, processes, supervisor);
    fclose (f);
    setenv ("DOSSIER_TEST_DIR", tree->dir, 1);
}

/* Starts the supervisor with its readiness pipe. */
static void
s_tree_start (s_tree_t *tree)
{
    int fds [2];
    assert_int_equal (pipe2 (fds, O_CLOEXEC), 0);
    char supervisor [PATH_MAX], ready_var [32], bin_var [PATH_MAX + 32];
    snprintf (supervisor, sizeof supervisor, "%s/dossier-supervisor", tree->bin);
    snprintf (ready_var, sizeof ready_var, "DOSSIER_READY_FD=%d", fds [1]);
    snprintf (bin_var, sizeof bin_var, "DOSSIER_BIN_DIR=%s", tree->bin);
    /* Everything is prepared before fork: zmq threads make malloc unsafe after it. */
    extern char **environ;
    size_t n_env = 0;
    while (environ [n_env])
        n_env++;
    char **envp = calloc (n_env + 3, sizeof (char *));
    assert_non_null (envp);
    size_t e = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp (environ [i], "DOSSIER_READY_FD=", 17) && strncmp (environ [i], "DOSSIER_BIN_DIR=", 16)
        &&  strncmp (environ [i], "DOSSIER_CONFIG=", 15))
            envp [e++] = environ [i];
    envp [e++] = ready_var;
    envp [e++] = bin_var;
    char *argv [] = { supervisor, "--config", tree->config, NULL };
    int log = open (tree->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    assert_true (log >= 0);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        /* Its own process group, so a failed test can kill the whole tree at once. */
        setpgid (0, 0);
        dup2 (log, STDERR_FILENO);
        dup2 (log, STDOUT_FILENO);
        fcntl (fds [1], F_SETFD, 0);
        execve (supervisor, argv, envp);
        _exit (127);
    }
    free (envp);
    close (log);
    close (fds [1]);
    tree->pid = pid;
    tree->ready_fd = fds [0];
}

/* Waits for the supervisor's "ready" (every group started). Returns 0, -1. */
static int
s_tree_wait_ready (s_tree_t *tree)
{
    struct pollfd item = { tree->ready_fd, POLLIN, 0 };
    char buffer [16] = "";
    if (poll (&item, 1, WAIT_MS) != 1 || read (tree->ready_fd, buffer, sizeof buffer - 1) <= 0
    ||  strncmp (buffer, "ready", 5) != 0) {
        s_print_log (tree);
        return -1;
    }
    return 0;
}

/* Waits for pid (our child) to exit; returns its wait status, or -1 on timeout. */
static int
s_wait_exit (pid_t pid, int timeout_ms)
{
    int fd = (int) syscall (SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        struct pollfd item = { fd, POLLIN, 0 };
        int rc = poll (&item, 1, timeout_ms);
        close (fd);
        if (rc != 1)
            return -1;
    }
    int status = 0;
    return waitpid (pid, &status, 0) == pid ? status : -1;
}

/* 1 while pid names a live (non-zombie) process. */
static int
s_alive (pid_t pid)
{
    if (kill (pid, 0) != 0)
        return 0;
    char path [64], stat [512] = "";
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return 0;
    size_t n = fread (stat, 1, sizeof stat - 1, f);
    fclose (f);
    stat [n] = 0;
    char *paren = strrchr (stat, ')');
    return paren && paren [1] == ' ' && paren [2] != 'Z';
}

/* Sends a ctl.* request and returns the answer's envelope type and body (caller
 * frees *body_p). Returns 0, -1 on timeout. */
static int
s_ask (s_tree_t *tree, const char *type, const char *body, char *answer_type, char **body_p)
{
    if (!tree->control) {
        tree->control = zsock_new (ZMQ_DEALER);
        assert_non_null (tree->control);
        assert_int_equal (zsock_connect (tree->control, "%s", tree->endpoint), 0);
    }
    envelope_t env;
    envelope_init (&env, type, "req-1");
    env.body = body;
    env.body_size = body ? strlen (body) : 0;
    assert_int_equal (envelope_send (tree->control, NULL, &env), 0);
    zmq_pollitem_t item = { zsock_resolve (tree->control), 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, 5000) != 1)
        return -1;
    zmsg_t *msg = NULL;
    assert_int_equal (envelope_recv (tree->control, 0, NULL, &msg, &env), 0);
    assert_string_equal (env.causation_id, "req-1");
    strcpy (answer_type, env.type);
    *body_p = strndup (env.body ? env.body : "", env.body_size);
    zmsg_destroy (&msg);
    return 0;
}

/* ctl.status as JSON (caller decrefs). */
static json_t *
s_status (s_tree_t *tree)
{
    char type [ENVELOPE_TYPE_MAX], *body = NULL;
    if (s_ask (tree, "ctl.status", NULL, type, &body) != 0) {
        s_print_log (tree);
        fail_msg ("no answer to ctl.status");
    }
    assert_string_equal (type, "ctl.status");
    json_t *root = json_loads (body, 0, NULL);
    free (body);
    assert_non_null (root);
    assert_true (json_is_array (json_object_get (root, "processes")));
    return root;
}

static json_t *
s_row (json_t *status, size_t i)
{
    json_t *row = json_array_get (json_object_get (status, "processes"), i);
    assert_non_null (row);
    return row;
}

static const char *
s_state (json_t *row)
{
    return json_string_value (json_object_get (row, "state"));
}

static json_int_t
s_int (json_t *row, const char *key)
{
    return json_integer_value (json_object_get (row, key));
}

/* Asks ctl.status until row i is in state with at least min_restarts, or times out.
 * This polls a condition by asking, like the e2e harness: no fixed sleep decides. */
static json_t *
s_wait_state (s_tree_t *tree, size_t i, const char *state, int min_restarts)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (zclock_mono () < deadline) {
        json_t *status = s_status (tree);
        json_t *row = s_row (status, i);
        if (streq (s_state (row), state) && s_int (row, "restarts") >= min_restarts)
            return status;
        json_decref (status);
        zclock_sleep (20);
    }
    s_print_log (tree);
    fail_msg ("process %zu never reached %s with %d restarts", i, state, min_restarts);
    return NULL;
}

static void
s_remove_tree (const char *dir)
{
    char command [PATH_MAX + 32];
    if (strncmp (dir, "/tmp/dsup-", 10) == 0) {
        snprintf (command, sizeof command, "rm -rf '%s'", dir);
        if (system (command) != 0)
            fprintf (stderr, "could not remove %s\n", dir);
    }
}

/* Stops (SIGTERM) if still running, checks a clean exit, removes everything. */
static void
s_tree_teardown (s_tree_t *tree, int expect_status)
{
    zsock_destroy (&tree->control);
    if (tree->pid > 0) {
        if (s_alive (tree->pid))
            kill (tree->pid, SIGTERM);
        int status = s_wait_exit (tree->pid, WAIT_MS);
        if (status == -1) {
            kill (tree->pid, SIGKILL);
            s_wait_exit (tree->pid, WAIT_MS);
            s_print_log (tree);
            fail_msg ("supervisor did not stop");
        }
        if (expect_status >= 0 && !(WIFEXITED (status) && WEXITSTATUS (status) == expect_status)) {
            s_print_log (tree);
            fail_msg ("supervisor wait status 0x%x, expected exit %d", status, expect_status);
        }
    }
    if (tree->ready_fd >= 0)
        close (tree->ready_fd);
    s_remove_tree (tree->dir);
    unsetenv ("DOSSIER_TEST_DIR");
    s_current = NULL;
}

/* Per-test teardown: runs even when an assertion ended the test early. Kills the
 * supervisor's whole process group (it and every fake child) and removes the dir. */
static int
s_cleanup (void **state)
{
    (void) state;
    s_tree_t *tree = s_current;
    s_current = NULL;
    if (!tree)
        return 0;
    zsock_destroy (&tree->control);
    if (tree->pid > 0) {
        killpg (tree->pid, SIGKILL);
        s_wait_exit (tree->pid, WAIT_MS);
        tree->pid = 0;
    }
    if (tree->ready_fd >= 0)
        close (tree->ready_fd);
    s_remove_tree (tree->dir);
    unsetenv ("DOSSIER_TEST_DIR");
    unsetenv ("DOSSIER_PROCESSES_GOOD");
    return 0;
}

static const char *s_fast_policy =
    "    backoff_ms = \"10\"\n    backoff_max_ms = \"80\"\n    intensity = \"3\"\n"
    "    period_s = \"30\"\n    grace_ms = \"5000\"\n";

/* ---------------------------------------------------------------------------
 * The tests. */

static void
test_starts_in_order_stops_in_reverse (void **state)
{
    (void) state;
    static s_tree_t tree;       /* static: s_cleanup may need it after a failed assertion */
    s_tree_setup (&tree, "    good = 2\n    second = 1\n", s_fast_policy);
    s_tree_start (&tree);
    assert_int_equal (s_tree_wait_ready (&tree), 0);

    json_t *status = s_status (&tree);
    assert_int_equal (json_array_size (json_object_get (status, "processes")), 3);
    pid_t pids [3];
    for (size_t i = 0; i < 3; i++) {
        json_t *row = s_row (status, i);
        assert_string_equal (s_state (row), "running");
        assert_int_equal (s_int (row, "restarts"), 0);
        assert_int_equal (s_int (row, "instance"), i < 2 ? (json_int_t) i : 0);
        pids [i] = (pid_t) s_int (row, "pid");
        assert_true (pids [i] > 0);
        assert_true (json_is_number (json_object_get (row, "uptime_s")));
    }
    assert_string_equal (json_string_value (json_object_get (s_row (status, 2), "name")), "second");
    json_decref (status);

    /* the handshake: "second" was forked only after both "good" said ready */
    char path [PATH_MAX], text [1024] = "";
    snprintf (path, sizeof path, "%s/order", tree.dir);
    FILE *f = fopen (path, "r");
    assert_non_null (f);
    size_t n = fread (text, 1, sizeof text - 1, f);
    fclose (f);
    text [n] = 0;
    char *second = strstr (text, "start second 0");
    assert_non_null (second);
    assert_true (strstr (text, "start good 0") < second && strstr (text, "start good 1") < second);

    /* what each child was given */
    snprintf (path, sizeof path, "%s/good-1.args", tree.dir);
    f = fopen (path, "r");
    assert_non_null (f);
    n = fread (text, 1, sizeof text - 1, f);
    fclose (f);
    text [n] = 0;
    char expected [PATH_MAX + 64];
    snprintf (expected, sizeof expected, "argc=3 config=%s instance=1 ready_fd=yes", tree.config);
    assert_non_null (strstr (text, expected));

    /* SIGTERM: everything stops, the later group first, and the supervisor exits 0 */
    kill (tree.pid, SIGTERM);
    int wait_status = s_wait_exit (tree.pid, WAIT_MS);
    tree.pid = 0;
    assert_true (WIFEXITED (wait_status) && WEXITSTATUS (wait_status) == 0);
    for (size_t i = 0; i < 3; i++)
        assert_false (s_alive (pids [i]));
    snprintf (path, sizeof path, "%s/order", tree.dir);
    f = fopen (path, "r");
    n = fread (text, 1, sizeof text - 1, f);
    fclose (f);
    text [n] = 0;
    char *stop_second = strstr (text, "stop second 0");
    assert_non_null (stop_second);
    assert_non_null (strstr (text, "stop good 0"));
    assert_true (stop_second < strstr (text, "stop good 0"));
    assert_true (stop_second < strstr (text, "stop good 1"));
    assert_true (s_log_contains (&tree, "\"level\":\"info\",\"process\":\"supervisor\""));
    assert_true (s_log_contains (&tree, "started good#1 pid"));
    assert_true (s_log_contains (&tree, "exited with status 0"));
    s_tree_teardown (&tree, 0);
}

static void
test_gives_up_on_a_crashing_child (void **state)
{
    (void) state;
    static s_tree_t tree;       /* static: s_cleanup may need it after a failed assertion */
    s_tree_setup (&tree, "    crash = 1\n    good = 1\n", s_fast_policy);
    s_tree_start (&tree);
    /* start-up goes on once the crashing group has been given up on */
    assert_int_equal (s_tree_wait_ready (&tree), 0);
    json_t *status = s_status (&tree);
    json_t *crash = s_row (status, 0);
    assert_string_equal (s_state (crash), "failed");
    assert_int_equal (s_int (crash, "restarts"), 3);
    assert_int_equal (s_int (crash, "pid"), 0);
    assert_string_equal (s_state (s_row (status, 1)), "running");
    json_decref (status);
    assert_true (s_log_contains (&tree, "\"level\":\"error\""));
    assert_true (s_log_contains (&tree, "giving up on crash#0: 4 restarts in 30 s"));
    assert_true (s_log_contains (&tree, "crash#0 pid"));
    assert_true (s_log_contains (&tree, "exited with status 3"));
    assert_true (s_log_contains (&tree, "restarting crash#0 in 20 ms"));

    /* ctl.stop: answered, then a graceful stop */
    char type [ENVELOPE_TYPE_MAX], *body = NULL;
    assert_int_equal (s_ask (&tree, "ctl.stop", NULL, type, &body), 0);
    assert_string_equal (type, "ctl.stopping");
    free (body);
    int wait_status = s_wait_exit (tree.pid, WAIT_MS);
    tree.pid = 0;
    assert_true (WIFEXITED (wait_status) && WEXITSTATUS (wait_status) == 0);
    s_tree_teardown (&tree, 0);
}

static void
test_restarts_a_killed_child (void **state)
{
    (void) state;
    static s_tree_t tree;       /* static: s_cleanup may need it after a failed assertion */
    s_tree_setup (&tree, "    good = 1\n", s_fast_policy);
    s_tree_start (&tree);
    assert_int_equal (s_tree_wait_ready (&tree), 0);
    json_t *status = s_status (&tree);
    pid_t first = (pid_t) s_int (s_row (status, 0), "pid");
    json_decref (status);
    assert_int_equal (kill (first, SIGKILL), 0);
    status = s_wait_state (&tree, 0, "running", 1);
    pid_t second = (pid_t) s_int (s_row (status, 0), "pid");
    assert_true (second > 0 && second != first);
    assert_int_equal (s_int (s_row (status, 0), "restarts"), 1);
    json_decref (status);
    assert_true (s_log_contains (&tree, "signal 9"));
    s_tree_teardown (&tree, 0);
}

static void
test_a_flaky_child_recovers (void **state)
{
    (void) state;
    static s_tree_t tree;       /* static: s_cleanup may need it after a failed assertion */
    s_tree_setup (&tree, "    flaky = 1\n", s_fast_policy);
    s_tree_start (&tree);
    assert_int_equal (s_tree_wait_ready (&tree), 0);
    json_t *status = s_status (&tree);
    assert_string_equal (s_state (s_row (status, 0)), "running");
    assert_int_equal (s_int (s_row (status, 0), "restarts"), 2);
    json_decref (status);
    s_tree_teardown (&tree, 0);
}

static void
test_exit_zero_is_restarted_too (void **state)
{
    (void) state;
    static s_tree_t tree;       /* static: s_cleanup may need it after a failed assertion */
    s_tree_setup (&tree, "    good = 1\n", s_fast_policy);
    s_tree_start (&tree);
    assert_int_equal (s_tree_wait_ready (&tree), 0);
    json_t *status = s_status (&tree);
    pid_t first = (pid_t) s_int (s_row (status, 0), "pid");
    json_decref (status);
    kill (first, SIGTERM);          /* the fake exits 0 on SIGTERM */
    status = s_wait_state (&tree, 0, "running", 1);
    json_decref (status);
    assert_true (s_log_contains (&tree, "exited with status 0 while not stopping"));
    s_tree_teardown (&tree, 0);
}

static void
test_stubborn_child_is_killed_after_grace (void **state)
{
    (void) state;
    static s_tree_t tree;       /* static: s_cleanup may need it after a failed assertion */
    s_tree_setup (&tree, "    good = 1\n    stubborn = 1\n",
                  "    backoff_ms = \"10\"\n    intensity = \"3\"\n    grace_ms = \"300\"\n");
    s_tree_start (&tree);
    assert_int_equal (s_tree_wait_ready (&tree), 0);
    json_t *status = s_status (&tree);
    pid_t good = (pid_t) s_int (s_row (status, 0), "pid");
    pid_t stubborn = (pid_t) s_int (s_row (status, 1), "pid");
    json_decref (status);
    int64_t started = zclock_mono ();
    kill (tree.pid, SIGTERM);
    int wait_status = s_wait_exit (tree.pid, WAIT_MS);
    tree.pid = 0;
    assert_true (WIFEXITED (wait_status) && WEXITSTATUS (wait_status) == 0);
    assert_true (zclock_mono () - started >= 300);
    assert_false (s_alive (stubborn));
    assert_false (s_alive (good));
    assert_true (s_log_contains (&tree, "still running 300 ms after the stop began; killing"));
    assert_true (s_log_contains (&tree, "stubborn#0"));
    s_tree_teardown (&tree, 0);
}

static void
test_second_sigint_exits_hard (void **state)
{
    (void) state;
    static s_tree_t tree;       /* static: s_cleanup may need it after a failed assertion */
    s_tree_setup (&tree, "    stubborn = 2\n", "    grace_ms = \"60000\"\n");
    s_tree_start (&tree);
    assert_int_equal (s_tree_wait_ready (&tree), 0);
    json_t *status = s_status (&tree);
    pid_t a = (pid_t) s_int (s_row (status, 0), "pid");
    pid_t b = (pid_t) s_int (s_row (status, 1), "pid");
    json_decref (status);
    kill (tree.pid, SIGINT);
    /* the first SIGINT is being honoured: the status still answers, stopping */
    char type [ENVELOPE_TYPE_MAX], *body = NULL;
    assert_int_equal (s_ask (&tree, "ctl.status", NULL, type, &body), 0);
    free (body);
    kill (tree.pid, SIGINT);
    int wait_status = s_wait_exit (tree.pid, 10000);
    tree.pid = 0;
    assert_true (wait_status != -1);
    assert_true (WIFEXITED (wait_status) && WEXITSTATUS (wait_status) == 1);
    assert_false (s_alive (a));
    assert_false (s_alive (b));
    assert_true (s_log_contains (&tree, "second interrupt"));
    s_tree_teardown (&tree, -1);
}

static void
test_silent_child_is_killed_and_given_up (void **state)
{
    (void) state;
    static s_tree_t tree;       /* static: s_cleanup may need it after a failed assertion */
    s_tree_setup (&tree, "    silent = 1\n    good = 1\n",
                  "    backoff_ms = \"10\"\n    intensity = \"1\"\n    ready_timeout_ms = \"200\"\n");
    s_tree_start (&tree);
    assert_int_equal (s_tree_wait_ready (&tree), 0);
    /* start-up moved on after 200 ms; the silent one is given up on a bit later */
    json_t *status = s_wait_state (&tree, 0, "failed", 1);
    assert_string_equal (s_state (s_row (status, 1)), "running");
    json_decref (status);
    assert_true (s_log_contains (&tree, "not ready after 200 ms; killing it"));
    assert_true (s_log_contains (&tree, "silent not ready after 200 ms; starting the next group anyway"));
    assert_true (s_log_contains (&tree, "giving up on silent#0: 2 restarts in 30 s"));
    s_tree_teardown (&tree, 0);
}

static void
test_missing_binary_env_override_and_bad_requests (void **state)
{
    (void) state;
    static s_tree_t tree;       /* static: s_cleanup may need it after a failed assertion */
    s_tree_setup (&tree, "    nothere = 1\n    good = 1\n", s_fast_policy);
    setenv ("DOSSIER_PROCESSES_GOOD", "3", 1);
    s_tree_start (&tree);
    unsetenv ("DOSSIER_PROCESSES_GOOD");
    assert_int_equal (s_tree_wait_ready (&tree), 0);
    json_t *status = s_status (&tree);
    assert_int_equal (json_array_size (json_object_get (status, "processes")), 4);
    assert_string_equal (s_state (s_row (status, 0)), "failed");
    assert_int_equal (s_int (s_row (status, 3), "instance"), 2);
    json_decref (status);
    assert_true (s_log_contains (&tree, "no executable at"));

    /* an unknown request gets ctl.error; garbage and odd frames are dropped */
    char type [ENVELOPE_TYPE_MAX], *body = NULL;
    assert_int_equal (s_ask (&tree, "ctl.dance", "{}", type, &body), 0);
    assert_string_equal (type, "ctl.error");
    assert_non_null (strstr (body, "unknown_type"));
    free (body);
    zstr_send (tree.control, "not msgpack");
    zstr_sendx (tree.control, "two", "frames", NULL);
    status = s_status (&tree);
    json_decref (status);

    /* a second supervisor on the same data directory refuses to start */
    s_tree_t twin = tree;
    snprintf (twin.log, sizeof twin.log, "%s/twin.log", tree.dir);
    twin.control = NULL;
    s_tree_start (&twin);
    int wait_status = s_wait_exit (twin.pid, WAIT_MS);
    close (twin.ready_fd);
    assert_true (WIFEXITED (wait_status) && WEXITSTATUS (wait_status) == 1);
    assert_true (s_log_contains (&twin, "another supervisor is already running"));
    status = s_status (&tree);      /* the first one is unharmed */
    json_decref (status);
    s_tree_teardown (&tree, 0);
}

static void
test_bad_arguments (void **state)
{
    (void) state;
    static s_tree_t tree;       /* static: s_cleanup may need it after a failed assertion */
    s_tree_setup (&tree, "    good = 1\n", s_fast_policy);
    /* a --config that does not exist is an error, not a silent default */
    snprintf (tree.config, sizeof tree.config, "%s/missing.cfg", tree.dir);
    s_tree_start (&tree);
    int wait_status = s_wait_exit (tree.pid, WAIT_MS);
    tree.pid = 0;
    assert_true (WIFEXITED (wait_status) && WEXITSTATUS (wait_status) == 1);
    s_tree_teardown (&tree, -1);
}

int
main (int argc, char **argv)
{
    const char *base = strrchr (argv [0], '/');
    base = base ? base + 1 : argv [0];
    if (streq (base, "dossier-supervisor"))
        return supervisor_run (argc, argv);
    if (strncmp (base, "dossier-", 8) == 0)
        return s_fake_child (base + 8, argc, argv);

    const struct CMUnitTest tests [] = {
        cmocka_unit_test_teardown (test_starts_in_order_stops_in_reverse, s_cleanup),
        cmocka_unit_test_teardown (test_gives_up_on_a_crashing_child, s_cleanup),
        cmocka_unit_test_teardown (test_restarts_a_killed_child, s_cleanup),
        cmocka_unit_test_teardown (test_a_flaky_child_recovers, s_cleanup),
        cmocka_unit_test_teardown (test_exit_zero_is_restarted_too, s_cleanup),
        cmocka_unit_test_teardown (test_stubborn_child_is_killed_after_grace, s_cleanup),
        cmocka_unit_test_teardown (test_second_sigint_exits_hard, s_cleanup),
        cmocka_unit_test_teardown (test_silent_child_is_killed_and_given_up, s_cleanup),
        cmocka_unit_test_teardown (test_missing_binary_env_override_and_bad_requests, s_cleanup),
        cmocka_unit_test_teardown (test_bad_arguments, s_cleanup),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
