/* supervisor — forks every configured process group by group, waiting for each
 * group's readiness handshake; reaps and restarts the dead with backoff; gives up on
 * a process past the intensity limit; stops the tree in reverse order on SIGINT,
 * SIGTERM or ctl.stop. Signal handlers only count and wake the loop (self-pipe). */
#include "supervisor.h"
#include "health.h"
#include "process_table.h"
#include "restart_policy.h"

#include "config.h"
#include "endpoints.h"
#include "envelope.h"
#include "ids.h"
#include "log.h"
#include "metrics_export.h"
#include "ready.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define SUPERVISOR_READY_TIMEOUT_MS 10000
#define SUPERVISOR_TICK_MS          1000

typedef enum { PHASE_STARTING, PHASE_RUNNING, PHASE_STOPPING, PHASE_DONE } phase_t;

typedef struct {
    config_t *config;               /* borrowed */
    process_table_t *table;
    restart_policy_t policy;
    int64_t grace_ms;
    int64_t ready_timeout_ms;
    char bin_dir [PATH_MAX];
    zsock_t *control;               /* ROUTER for ctl.status / ctl.stop */
    zmq_pollitem_t *items;          /* control, wake pipe, then readiness pipes */
    process_t **item_procs;         /* row of each readiness item */
    phase_t phase;
    int group;                      /* group being started, or being stopped */
    int group_begun;                /* spawned / SIGTERMed the current group yet */
    int64_t group_deadline_ms;      /* starting: readiness wait of the current group */
    int64_t stop_deadline_ms;       /* stopping: end of the one grace period */
    int killed_all;                 /* stopping: grace over, SIGKILL sent to the rest */
} self_t;

/* Written only by signal handlers, read by the loop. */
static volatile sig_atomic_t s_sigint_count = 0;
static volatile sig_atomic_t s_sigterm = 0;
static int s_wake [2] = { -1, -1 };

static void
s_on_signal (int sig)
{
    int saved_errno = errno;
    if (sig == SIGINT) {
        if (s_sigint_count < 100)
            s_sigint_count++;
    }
    else
    if (sig == SIGTERM)
        s_sigterm = 1;
    if (s_wake [1] >= 0) {
        char byte = 0;
        if (write (s_wake [1], &byte, 1) < 0) {
            /* pipe full: the loop is already due to wake */
        }
    }
    errno = saved_errno;
}

static int
s_install_signals (void)
{
    if (pipe2 (s_wake, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset (&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (sigaction (SIGINT, &action, NULL) || sigaction (SIGTERM, &action, NULL))
        return -1;
    action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    return sigaction (SIGCHLD, &action, NULL) ? -1 : 0;
}

/* Setting "supervisor/<key>": DOSSIER_SUPERVISOR_<KEY> wins, then the file, then dflt. */
static int64_t
s_setting (self_t *self, const char *key, int64_t dflt)
{
    char env_name [96] = "DOSSIER_SUPERVISOR_";
    size_t len = strlen (env_name);
    for (const char *p = key; *p && len < sizeof env_name - 1; p++)
        env_name [len++] = (char) toupper ((unsigned char) *p);
    env_name [len] = 0;
    const char *value = getenv (env_name);
    if ((!value || !*value) && config_tree (self->config)) {
        char path [96];
        snprintf (path, sizeof path, "supervisor/%s", key);
        value = zconfig_get (config_tree (self->config), path, NULL);
    }
    if (!value || !*value)
        return dflt;
    char *end;
    errno = 0;
    long long n = strtoll (value, &end, 10);
    if (errno || end == value || *end || n < 0) {
        log_warn (NULL, NULL, "supervisor/%s: '%.20s' is not a non-negative integer; using %lld",
                  key, value, (long long) dflt);
        return dflt;
    }
    return (int64_t) n;
}

/* The directory holding dossier-<name>: $DOSSIER_BIN_DIR, else our own directory. */
static int
s_find_bin_dir (self_t *self)
{
    const char *env = getenv ("DOSSIER_BIN_DIR");
    if (env && *env) {
        snprintf (self->bin_dir, sizeof self->bin_dir, "%s", env);
        return 0;
    }
    char exe [PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe [n] = 0;
    char *slash = strrchr (exe, '/');
    if (!slash)
        return -1;
    *slash = 0;
    snprintf (self->bin_dir, sizeof self->bin_dir, "%s", exe [0] ? exe : "/");
    return 0;
}

/* Refuses to steal the control socket of a live supervisor on the same data
 * directory: binding an ipc endpoint silently unlinks the other one's file. */
static int
s_endpoint_in_use (const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) != 0)
        return 0;
    struct sockaddr_un addr;
    memset (&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen (endpoint + 6) >= sizeof addr.sun_path)
        return 0;
    strcpy (addr.sun_path, endpoint + 6);
    int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int in_use = connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0;
    close (fd);
    return in_use;
}

static void
s_self_destroy (self_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    self_t *self = *self_p;
    if (self->table) {
        for (size_t i = 0; i < process_table_size (self->table); i++) {
            process_t *proc = process_table_at (self->table, i);
            if (proc->ready_fd >= 0)
                close (proc->ready_fd);
        }
    }
    process_table_destroy (&self->table);
    zsock_destroy (&self->control);
    free (self->items);
    free (self->item_procs);
    free (self);
    *self_p = NULL;
}

static self_t *
s_self_new (config_t *config)
{
    self_t *self = calloc (1, sizeof (self_t));
    if (!self)
        return NULL;
    char *endpoint = NULL, *bind = NULL;
    self->config = config;
    self->table = process_table_new ();
    if (!self->table)
        goto fail;
    process_table_load (self->table, config_tree (config));
    restart_policy_defaults (&self->policy);
    self->policy.backoff_ms = s_setting (self, "backoff_ms", self->policy.backoff_ms);
    self->policy.backoff_max_ms = s_setting (self, "backoff_max_ms", self->policy.backoff_max_ms);
    self->policy.intensity = (int) s_setting (self, "intensity", self->policy.intensity);
    self->policy.period_ms = s_setting (self, "period_s", self->policy.period_ms / 1000) * 1000;
    if (restart_policy_normalise (&self->policy) != 0)
        log_warn (NULL, NULL, "supervisor: restart policy out of range, clamped");
    self->grace_ms = s_setting (self, "grace_ms", 5000);
    self->ready_timeout_ms = s_setting (self, "ready_timeout_ms", SUPERVISOR_READY_TIMEOUT_MS);
    if (s_find_bin_dir (self) != 0) {
        log_error (NULL, NULL, "cannot find the directory of the process binaries; set DOSSIER_BIN_DIR");
        goto fail;
    }
    size_t rows = process_table_size (self->table);
    self->items = calloc (rows + 2, sizeof (zmq_pollitem_t));
    self->item_procs = calloc (rows + 2, sizeof (process_t *));
    if (!self->items || !self->item_procs)
        goto fail;

    endpoint = endpoints_get (config, "supervisor");
    if (!endpoint) {
        log_error (NULL, NULL, "supervisor endpoint path too long; shorten data_dir or set endpoint_supervisor");
        goto fail;
    }
    if (s_endpoint_in_use (endpoint)) {
        log_error (NULL, NULL, "another supervisor is already running at %s", endpoint);
        goto fail;
    }
    /* In use: probed at the name clients connect to; bound where ZeroMQ can bind. */
    bind = endpoints_bind_address (endpoint);
    self->control = zsock_new (ZMQ_ROUTER);
    if (!bind || !self->control || zsock_bind (self->control, "%s", bind) == -1) {
        log_error (NULL, NULL, "cannot bind control socket %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        goto fail;
    }
    log_info (NULL, NULL, "supervisor control at %s, binaries in %s, %zu processes",
              endpoint, self->bin_dir, rows);
    free (endpoint);
    free (bind);
    return self;
fail:
    free (endpoint);
    free (bind);
    s_self_destroy (&self);
    return NULL;
}

/* A child is gone (or never started): restart it after a backoff, or give up. */
static void
s_schedule_restart (self_t *self, process_t *proc)
{
    int64_t now = zclock_mono ();
    int64_t delay = 0;
    int count = 0;
    int period_s = (int) (self->policy.period_ms / 1000);
    if (restart_policy_decide (&self->policy, &proc->history, now, &delay, &count)
        == RESTART_POLICY_GIVE_UP) {
        proc->state = PROCESS_FAILED;
        log_error (NULL, NULL, "giving up on %s#%d: %d restarts in %d s",
                   proc->name, proc->instance, count, period_s);
        return;
    }
    proc->state = PROCESS_BACKOFF;
    proc->restart_at_ms = now + delay;
    log_warn (NULL, NULL, "restarting %s#%d in %lld ms (restart %d in %d s)",
              proc->name, proc->instance, (long long) delay, count, period_s);
}

/* The child's metrics port: metrics_port is the supervisor's own and a base, and
 * the child in row n of the table (start order, as `dossier status` lists them,
 * counted from 1) gets its port + n, the same one across restarts. Always written:
 * "0" (none) when the base is off or out of range, so that a child never takes the
 * base from the environment or the file and collides with the supervisor. */
static void
s_metrics_port_var (self_t *self, process_t *proc, char *var, size_t size)
{
    int row = 0;
    for (size_t i = 0; i < process_table_size (self->table); i++)
        if (process_table_at (self->table, i) == proc)
            row = (int) i + 1;
    char port [128];
    const char *base = config_get (self->config, "metrics_port", "0");
    if (row == 0 || metrics_export_port (base, row, port, sizeof port) <= 0)
        snprintf (port, sizeof port, "0");
    snprintf (var, size, "DOSSIER_METRICS_PORT=%s", port);
}

/* Fork/exec one instance. Everything the child needs is prepared before fork: after
 * it, only async-signal-safe calls until execve. */
static void
s_spawn (self_t *self, process_t *proc)
{
    char path [PATH_MAX];
    char **envp = NULL;
    int fds [2] = { -1, -1 };
    if ((size_t) snprintf (path, sizeof path, "%s/dossier-%s", self->bin_dir, proc->name) >= sizeof path
    ||  access (path, X_OK) != 0) {
        log_error (NULL, NULL, "cannot start %s#%d: no executable at %s", proc->name, proc->instance, path);
        goto failed;
    }
    if (pipe2 (fds, O_CLOEXEC) != 0) {
        log_error (NULL, NULL, "cannot start %s#%d: pipe: %s", proc->name, proc->instance, strerror (errno));
        goto failed;
    }
    char ready_var [48], instance_var [48], instances_var [48], metrics_var [160];
    snprintf (ready_var, sizeof ready_var, "DOSSIER_READY_FD=%d", fds [1]);
    snprintf (instance_var, sizeof instance_var, "DOSSIER_INSTANCE=%d", proc->instance);
    /* how many of this process run: a projector's default number of partitions */
    snprintf (instances_var, sizeof instances_var, "DOSSIER_INSTANCES=%d", proc->instances);
    s_metrics_port_var (self, proc, metrics_var, sizeof metrics_var);
    size_t n_env = 0;
    while (environ && environ [n_env])
        n_env++;
    envp = calloc (n_env + 6, sizeof (char *));
    if (!envp)
        goto failed;
    size_t e = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp (environ [i], "DOSSIER_READY_FD=", 17) != 0
        &&  strncmp (environ [i], "DOSSIER_INSTANCE=", 17) != 0
        &&  strncmp (environ [i], "DOSSIER_INSTANCES=", 18) != 0
        &&  strncmp (environ [i], "DOSSIER_METRICS_PORT=", 21) != 0)
            envp [e++] = environ [i];
    envp [e++] = ready_var;
    envp [e++] = instance_var;
    envp [e++] = instances_var;
    envp [e++] = metrics_var;
    /* libmongoc initialises itself before main and keeps per-process counters in
     * /dev/shm/mongoc-<pid>; a child killed with -9 leaves its file behind, and a later
     * child given the same pid prints a plain-text warning that no JSON log handler
     * can catch yet. Nobody reads those counters: keep them in memory. */
    if (!getenv ("MONGOC_DISABLE_SHM"))
        envp [e++] = "MONGOC_DISABLE_SHM=1";
    const char *config_file = config_path (self->config);
    char *argv [] = { path, config_file ? "--config" : NULL, (char *) config_file, NULL };
    sigset_t no_signals;
    sigemptyset (&no_signals);
    pid_t parent = getpid ();

    pid_t pid = fork ();
    if (pid == 0) {
        /* The children stay in our process group, so whoever started us can clean up
         * the whole tree with one killpg; PDEATHSIG covers a supervisor killed with -9. */
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        if (getppid () != parent)
            _exit (1);
        fcntl (fds [1], F_SETFD, 0);
        sigprocmask (SIG_SETMASK, &no_signals, NULL);
        execve (path, argv, envp);
        _exit (127);
    }
    free (envp);
    envp = NULL;
    close (fds [1]);
    fds [1] = -1;
    if (pid < 0) {
        log_error (NULL, NULL, "cannot start %s#%d: fork: %s", proc->name, proc->instance, strerror (errno));
        goto failed;
    }
    fcntl (fds [0], F_SETFL, O_NONBLOCK);
    proc->pid = pid;
    proc->ready_fd = fds [0];
    proc->state = PROCESS_STARTING;
    proc->started_ms = zclock_mono ();
    proc->term_sent = 0;
    log_info (NULL, NULL, "started %s#%d pid %d", proc->name, proc->instance, (int) pid);
    return;
failed:
    free (envp);
    if (fds [0] >= 0)
        close (fds [0]);
    if (fds [1] >= 0)
        close (fds [1]);
    proc->pid = 0;
    if (self->phase == PHASE_STOPPING || self->phase == PHASE_DONE)
        proc->state = PROCESS_STOPPED;
    else
        s_schedule_restart (self, proc);
}

static void
s_close_ready_fd (process_t *proc)
{
    if (proc->ready_fd >= 0) {
        close (proc->ready_fd);
        proc->ready_fd = -1;
    }
}

static void
s_reaped (self_t *self, process_t *proc, int status)
{
    char how [64];
    int clean = 0;
    if (WIFEXITED (status)) {
        snprintf (how, sizeof how, "status %d", WEXITSTATUS (status));
        clean = WEXITSTATUS (status) == 0;
    }
    else
    if (WIFSIGNALED (status))
        snprintf (how, sizeof how, "signal %d (%s)", WTERMSIG (status), strsignal (WTERMSIG (status)));
    else
        snprintf (how, sizeof how, "wait status 0x%x", (unsigned) status);
    int pid = (int) proc->pid;
    proc->pid = 0;
    s_close_ready_fd (proc);
    if (self->phase == PHASE_STOPPING || self->phase == PHASE_DONE) {
        log_info (NULL, NULL, "%s#%d pid %d exited with %s", proc->name, proc->instance, pid, how);
        proc->state = PROCESS_STOPPED;
        return;
    }
    /* Exiting while we are not stopping is a failure even with status 0. */
    log_emit (clean ? LOG_LEVEL_WARN : LOG_LEVEL_ERROR, NULL, NULL, "%s#%d pid %d exited with %s%s",
              proc->name, proc->instance, pid, how, clean ? " while not stopping" : "");
    s_schedule_restart (self, proc);
}

static void
s_reap (self_t *self)
{
    for (;;) {
        int status = 0;
        pid_t pid = waitpid (-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        process_t *proc = process_table_find_pid (self->table, pid);
        if (proc)
            s_reaped (self, proc, status);
    }
}

static void
s_begin_stop (self_t *self, const char *why)
{
    if (self->phase == PHASE_STOPPING || self->phase == PHASE_DONE)
        return;
    log_info (NULL, NULL, "stopping all processes (%s)", why);
    self->phase = PHASE_STOPPING;
    for (size_t i = 0; i < process_table_size (self->table); i++) {
        process_t *proc = process_table_at (self->table, i);
        if (proc->pid == 0 && proc->state != PROCESS_FAILED)
            proc->state = PROCESS_STOPPED;      /* cancels pending restarts */
    }
    self->group = process_table_groups (self->table) - 1;
    self->group_begun = 0;
    self->stop_deadline_ms = zclock_mono () + self->grace_ms;
}

/* Second SIGINT: no grace. */
static void
s_hard_stop (self_t *self)
{
    log_warn (NULL, NULL, "second interrupt: killing all processes");
    for (size_t i = 0; i < process_table_size (self->table); i++) {
        process_t *proc = process_table_at (self->table, i);
        if (proc->pid > 0)
            kill (proc->pid, SIGKILL);
    }
    for (size_t i = 0; i < process_table_size (self->table); i++) {
        process_t *proc = process_table_at (self->table, i);
        if (proc->pid > 0) {
            int status;
            waitpid (proc->pid, &status, 0);
            proc->pid = 0;
            proc->state = PROCESS_STOPPED;
        }
    }
    self->phase = PHASE_DONE;
}

static int
s_group_all (self_t *self, int group, int (*test) (const process_t *))
{
    for (size_t i = 0; i < process_table_size (self->table); i++) {
        process_t *proc = process_table_at (self->table, i);
        if (proc->group == group && !test (proc))
            return 0;
    }
    return 1;
}

static int
s_is_up_or_failed (const process_t *proc)
{
    return proc->state == PROCESS_RUNNING || proc->state == PROCESS_FAILED;
}

static int
s_is_gone (const process_t *proc)
{
    return proc->pid == 0;
}

static void
s_advance_start (self_t *self, int64_t now)
{
    int groups = process_table_groups (self->table);
    while (self->phase == PHASE_STARTING && self->group < groups) {
        if (!self->group_begun) {
            self->group_begun = 1;
            self->group_deadline_ms = now + self->ready_timeout_ms;
            for (size_t i = 0; i < process_table_size (self->table); i++) {
                process_t *proc = process_table_at (self->table, i);
                if (proc->group == self->group && proc->state == PROCESS_STOPPED)
                    s_spawn (self, proc);
            }
        }
        if (!s_group_all (self, self->group, s_is_up_or_failed)) {
            if (now < self->group_deadline_ms)
                return;
            log_error (NULL, NULL, "%s not ready after %lld ms; starting the next group anyway",
                       process_table_group_name (self->table, self->group),
                       (long long) self->ready_timeout_ms);
        }
        self->group++;
        self->group_begun = 0;
    }
    if (self->phase == PHASE_STARTING) {
        self->phase = PHASE_RUNNING;
        log_info (NULL, NULL, "all process groups started");
        ready_signal ();
    }
}

/* Reverse start order, one group at a time, all within one grace period: a group
 * is SIGTERMed once the later groups are gone; when grace_ms has passed since the
 * stop began, whatever is still alive in any group gets SIGKILL. */
static void
s_advance_stop (self_t *self, int64_t now)
{
    if (now >= self->stop_deadline_ms && !self->killed_all) {
        self->killed_all = 1;
        for (size_t i = process_table_size (self->table); i-- > 0;) {
            process_t *proc = process_table_at (self->table, i);
            if (proc->pid > 0 && proc->term_sent < 2) {
                log_warn (NULL, NULL, "%s#%d pid %d still running %lld ms after the stop began; killing",
                          proc->name, proc->instance, (int) proc->pid, (long long) self->grace_ms);
                kill (proc->pid, SIGKILL);
                proc->term_sent = 2;
            }
        }
    }
    while (self->group >= 0) {
        if (!self->group_begun) {
            self->group_begun = 1;
            for (size_t i = 0; i < process_table_size (self->table); i++) {
                process_t *proc = process_table_at (self->table, i);
                if (proc->group == self->group && proc->pid > 0 && proc->term_sent == 0) {
                    log_info (NULL, NULL, "stopping %s#%d pid %d", proc->name, proc->instance, (int) proc->pid);
                    kill (proc->pid, SIGTERM);
                    proc->term_sent = 1;
                }
            }
        }
        if (!s_group_all (self, self->group, s_is_gone))
            return;     /* the reaper moves us on; SIGKILL is not instant either */
        self->group--;
        self->group_begun = 0;
    }
    /* Never exit with a live child (one outside the walked groups cannot exist). */
    for (size_t i = 0; i < process_table_size (self->table); i++)
        if (process_table_at (self->table, i)->pid > 0)
            return;
    self->phase = PHASE_DONE;
}

/* The series of one supervised process in family name (labels child, child_instance). */
static metric_t *
s_child_metric (process_t *proc, const char *name, const char *help, bool counter)
{
    char labels [160], child [96];
    metrics_label_value (child, sizeof child, proc->name);
    snprintf (labels, sizeof labels, "child=\"%s\",child_instance=\"%d\"", child, proc->instance);
    return counter ? metrics_counter (metrics_process (), name, help, labels)
                   : metrics_gauge (metrics_process (), name, help, labels);
}

/* Timers: restarts due, readiness deadlines, and the start / stop walk. */
static void
s_tick (self_t *self)
{
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < process_table_size (self->table); i++) {
        process_t *proc = process_table_at (self->table, i);
        metric_set (s_child_metric (proc, "dossier_supervisor_child_up",
                                    "1 when the supervised process is running and ready, else 0.", false),
                    proc->state == PROCESS_RUNNING ? 1 : 0);
        if (proc->state == PROCESS_BACKOFF && now >= proc->restart_at_ms
        &&  self->phase != PHASE_STOPPING && self->phase != PHASE_DONE) {
            proc->restarts++;
            metric_add (s_child_metric (proc, "dossier_supervisor_restarts_total",
                                        "Restarts of a supervised process after it exited.", true), 1);
            s_spawn (self, proc);
        }
        else
        if (proc->state == PROCESS_STARTING && proc->pid > 0 && proc->term_sent == 0
        &&  now - proc->started_ms >= self->ready_timeout_ms) {
            log_error (NULL, NULL, "%s#%d pid %d not ready after %lld ms; killing it",
                       proc->name, proc->instance, (int) proc->pid, (long long) self->ready_timeout_ms);
            kill (proc->pid, SIGKILL);
            proc->term_sent = 2;
        }
    }
    if (self->phase == PHASE_STARTING)
        s_advance_start (self, now);
    if (self->phase == PHASE_STOPPING)
        s_advance_stop (self, now);
}

/* Milliseconds until the next timer, capped at one tick. */
static long
s_next_timeout (self_t *self)
{
    int64_t now = zclock_mono ();
    int64_t next = now + SUPERVISOR_TICK_MS;
    for (size_t i = 0; i < process_table_size (self->table); i++) {
        process_t *proc = process_table_at (self->table, i);
        if (proc->state == PROCESS_BACKOFF && proc->restart_at_ms < next)
            next = proc->restart_at_ms;
        if (proc->state == PROCESS_STARTING && proc->term_sent == 0
        &&  proc->started_ms + self->ready_timeout_ms < next)
            next = proc->started_ms + self->ready_timeout_ms;
    }
    if (self->phase == PHASE_STARTING && self->group_begun && self->group_deadline_ms < next)
        next = self->group_deadline_ms;
    if (self->phase == PHASE_STOPPING && !self->killed_all && self->stop_deadline_ms < next)
        next = self->stop_deadline_ms;
    return next <= now ? 0 : (long) (next - now);
}

static void
s_handle_ready (process_t *proc)
{
    char buffer [64];
    ssize_t n = read (proc->ready_fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0 && memmem (buffer, (size_t) n, "ready", 5)) {
        if (proc->state == PROCESS_STARTING)
            proc->state = PROCESS_RUNNING;
        log_info (NULL, NULL, "%s#%d pid %d ready after %lld ms", proc->name, proc->instance,
                  (int) proc->pid, (long long) (zclock_mono () - proc->started_ms));
    }
    /* Ready, EOF (the child died or closed it: the reaper or the readiness timeout
     * decides) or garbage: either way this pipe has said all it will. */
    s_close_ready_fd (proc);
}

static void
s_reply (self_t *self, zframe_t *route, const envelope_t *request, const char *type, const char *body)
{
    envelope_t reply;
    char id [IDS_UUID_LEN];
    ids_uuid4 (id);
    envelope_init (&reply, type, id);
    envelope_set (reply.causation_id, sizeof reply.causation_id, request->id);
    envelope_set (reply.correlation_id, sizeof reply.correlation_id,
                  request->correlation_id [0] ? request->correlation_id : request->id);
    reply.body = body;
    reply.body_size = body ? strlen (body) : 0;
    if (envelope_send (self->control, route, &reply) != 0)
        log_warn (NULL, NULL, "control: cannot send %s", type);
}

static void
s_handle_control (self_t *self)
{
    zframe_t *routes [1];
    zmsg_t *msg = NULL;
    envelope_t request;
    int rc = envelope_recv (self->control, 1, routes, &msg, &request);
    if (rc == -2)
        log_warn (NULL, NULL, "control: dropped a malformed message");
    if (rc != 0)
        return;
    if (streq (request.type, "ctl.status")) {
        char *body = process_table_status_json (self->table, zclock_mono ());
        if (body)
            s_reply (self, routes [0], &request, "ctl.status", body);
        else
            s_reply (self, routes [0], &request, "ctl.error", "{\"error\":\"internal\",\"detail\":\"out of memory\"}");
        free (body);
    }
    else
    if (streq (request.type, "ctl.stop")) {
        s_reply (self, routes [0], &request, "ctl.stopping", "{}");
        s_begin_stop (self, "ctl.stop");
    }
    else {
        log_warn (request.correlation_id, NULL, "control: unknown message type '%s'", request.type);
        s_reply (self, routes [0], &request, "ctl.error",
                 "{\"error\":\"unknown_type\",\"detail\":\"the supervisor answers ctl.status and ctl.stop\"}");
    }
    zmsg_destroy (&msg);
}

static void
s_drain_wake (void)
{
    char buffer [64];
    while (read (s_wake [0], buffer, sizeof buffer) > 0)
        ;
}

static int
s_self_run (self_t *self)
{
    self->phase = PHASE_STARTING;
    self->group = 0;
    self->group_begun = 0;
    int hard = 0;
    while (self->phase != PHASE_DONE) {
        if (s_sigint_count >= 2) {
            s_hard_stop (self);
            hard = 1;
            break;
        }
        if (s_sigint_count || s_sigterm)
            s_begin_stop (self, s_sigterm ? "SIGTERM" : "SIGINT");
        s_reap (self);
        health_beat ();
        s_tick (self);
        if (self->phase == PHASE_DONE)
            break;

        size_t n = 0;
        self->items [n++] = (zmq_pollitem_t) { zsock_resolve (self->control), 0, ZMQ_POLLIN, 0 };
        self->items [n++] = (zmq_pollitem_t) { NULL, s_wake [0], ZMQ_POLLIN, 0 };
        for (size_t i = 0; i < process_table_size (self->table); i++) {
            process_t *proc = process_table_at (self->table, i);
            if (proc->ready_fd >= 0) {
                self->item_procs [n] = proc;
                self->items [n++] = (zmq_pollitem_t) { NULL, proc->ready_fd, ZMQ_POLLIN, 0 };
            }
        }
        int rc = zmq_poll (self->items, (int) n, s_next_timeout (self));
        if (rc < 0) {
            if (zmq_errno () == EINTR)
                continue;
            log_error (NULL, NULL, "poll failed: %s", zmq_strerror (zmq_errno ()));
            s_begin_stop (self, "poll failure");
            continue;
        }
        if (self->items [1].revents)
            s_drain_wake ();
        for (size_t i = 2; i < n; i++)
            if (self->items [i].revents && self->item_procs [i]->ready_fd == self->items [i].fd)
                s_handle_ready (self->item_procs [i]);
        /* Drain the control socket: ZMQ_POLLIN is edge-ish for several queued messages. */
        while (zsock_events (self->control) & ZMQ_POLLIN)
            s_handle_control (self);
    }
    log_info (NULL, NULL, hard ? "supervisor killed all processes" : "supervisor stopped");
    return hard ? 1 : 0;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: dossier-supervisor [--config PATH]\n"
        "Starts, watches and restarts the Dossier processes listed in the config's\n"
        "'processes' section. SIGINT/SIGTERM stop them in reverse order; a second\n"
        "SIGINT kills them at once. Binaries come from $DOSSIER_BIN_DIR or this\n"
        "program's directory.\n");
}

int
supervisor_run (int argc, char **argv)
{
    const char *config_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "--help") || streq (argv [i], "-h")) {
            s_usage (stdout);
            return 0;
        }
        else
        if (streq (argv [i], "--config") && i + 1 < argc)
            config_file = argv [++i];
        else
        if (strncmp (argv [i], "--config=", 9) == 0)
            config_file = argv [i] + 9;
        else {
            fprintf (stderr, "dossier-supervisor: unknown argument '%s'\n", argv [i]);
            s_usage (stderr);
            return 1;
        }
    }
    if (config_file && access (config_file, R_OK) != 0) {
        fprintf (stderr, "dossier-supervisor: cannot read config %s: %s\n", config_file, strerror (errno));
        return 1;
    }
    /* Our own handlers, not czmq's: we need to tell a second SIGINT from the first,
     * and SIGCHLD must wake the poll loop. Disable czmq's before it installs them. */
    zsys_handler_set (NULL);
    if (s_install_signals () != 0) {
        fprintf (stderr, "dossier-supervisor: cannot install signal handlers: %s\n", strerror (errno));
        return 1;
    }
    /* Our own readiness pipe must not leak into the children we fork. */
    const char *ready_fd = getenv ("DOSSIER_READY_FD");
    if (ready_fd && atoi (ready_fd) > 2)
        fcntl (atoi (ready_fd), F_SETFD, FD_CLOEXEC);

    config_t *config = config_load (config_file);
    if (!config) {
        fprintf (stderr, "dossier-supervisor: cannot load config %s\n",
                 config_file ? config_file : getenv ("DOSSIER_CONFIG"));
        return 1;
    }
    log_init ("supervisor", config_get (config, "log_level", "info"));
    /* Started before any child: they exec at once, so the writer thread stays ours. */
    metrics_export_start (config, "supervisor");
    self_t *self = s_self_new (config);
    int rc = 1;
    if (self) {
        rc = s_self_run (self);
        s_self_destroy (&self);
    }
    metrics_export_stop ();
    config_destroy (&config);
    return rc;
}
