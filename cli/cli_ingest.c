/* cli_ingest — `dossier ingest FILE|-`: streams JSON lines to the ingest process
 * with a window of many in flight, re-sends unanswered and 503-answered lines (same
 * line, same command id: safe) until the deadline, then prints the summary. One poll
 * loop over the socket and the input; cli_jsonl, cli_window and cli_summary do the
 * bookkeeping. */
#include "cli_commands.h"
#include "cli_ctl.h"
#include "cli_jsonl.h"
#include "cli_progress.h"
#include "cli_summary.h"
#include "cli_window.h"

#include "ids.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLI_READ_CHUNK (64 * 1024)

typedef struct {
    const cli_args_t *args;
    FILE *out, *err;
    int fd;
    uint64_t bytes_total;       /* 0 when unknown */
    uint64_t bytes_read;
    int eof;
    int read_failed;
    char *endpoint;
    zsock_t *sock;
    zsock_t *monitor;           /* PAIR receiving the DEALER's disconnect events */
    char run_id [IDS_UUID_LEN];
    size_t max_line;
    int64_t answer_timeout_ms;
    cli_jsonl_t *lines;
    cli_window_t *window;
    cli_summary_t *summary;
    char *chunk;
    size_t done;
    size_t answers;
    int warned_silence;
    int tty;
    int progress_shown;
    int64_t started_ms;
    int64_t next_progress_ms;
} s_run_t;

static void
s_run_destroy (s_run_t *run)
{
    if (run->fd >= 0)
        close (run->fd);
    if (run->monitor) {
        zmq_socket_monitor (zsock_resolve (run->sock), NULL, 0);
        zsock_destroy (&run->monitor);
    }
    zsock_destroy (&run->sock);
    free (run->endpoint);
    cli_jsonl_destroy (&run->lines);
    cli_window_destroy (&run->window);
    cli_summary_destroy (&run->summary);
    free (run->chunk);
}

/* Moves lines from the splitter into the window while it has room. Returns 1 when
 * the splitter needs more input. */
static int
s_fill (s_run_t *run, int64_t now)
{
    while (cli_window_has_room (run->window)) {
        cli_jsonl_line_t line;
        if (!cli_jsonl_next (run->lines, &line))
            return !run->eof;
        if (line.too_long) {
            char detail [128];
            snprintf (detail, sizeof detail, "line is %zu bytes; the limit (body_limit) is %zu",
                      line.size, run->max_line);
            cli_summary_reject (run->summary, line.number, 413, "too_large", detail);
            run->done++;
        }
        else
        if (cli_window_add (run->window, line.number, line.data, line.size, now) != 0) {
            fprintf (run->err, "dossier: out of memory holding line %ld\n", line.number);
            run->read_failed = 1;
            return 0;
        }
    }
    return 0;
}

static void
s_send_due (s_run_t *run, int64_t now)
{
    const char *data;
    size_t size;
    long line;
    while ((line = cli_window_next_due (run->window, now, &data, &size, NULL)) > 0) {
        char id [ENVELOPE_ID_MAX];
        snprintf (id, sizeof id, "line:%ld", line);
        envelope_t env;
        envelope_init (&env, "ingest.record", id);
        envelope_set (env.correlation_id, sizeof env.correlation_id, run->run_id);
        env.body = data;
        env.body_size = size;
        if (envelope_send (run->sock, NULL, &env) != 0) {
            /* Left as sent: the answer timeout will bring it round again. */
            fprintf (run->err, "dossier: cannot send line %ld\n", line);
            break;
        }
    }
}

static void
s_read_input (s_run_t *run)
{
    ssize_t n = read (run->fd, run->chunk, CLI_READ_CHUNK);
    if (n > 0) {
        run->bytes_read += (uint64_t) n;
        if (cli_jsonl_feed (run->lines, run->chunk, (size_t) n) != 0) {
            fprintf (run->err, "dossier: out of memory reading %s\n", run->args->file);
            run->read_failed = 1;
        }
    }
    else
    if (n == 0) {
        run->eof = 1;
        cli_jsonl_finish (run->lines);
    }
    else
    if (errno != EINTR && errno != EAGAIN) {
        fprintf (run->err, "dossier: cannot read %s: %s\n", run->args->file, strerror (errno));
        run->read_failed = 1;
    }
}

static void
s_receive (s_run_t *run, int64_t now)
{
    zmsg_t *msg = NULL;
    envelope_t env;
    if (envelope_recv (run->sock, 0, NULL, &msg, &env) != 0)
        return;
    if (!streq (env.type, "ingest.result")) {
        zmsg_destroy (&msg);
        return;
    }
    cli_result_t result;
    cli_result_parse (env.body, env.body_size, &result);
    long line = result.line;
    if (strncmp (env.causation_id, "line:", 5) == 0)
        line = strtol (env.causation_id + 5, NULL, 10);
    run->answers++;
    if (line > 0 && cli_window_answer (run->window, line, result.kind == CLI_RESULT_RETRY, now)
                    == CLI_WINDOW_DONE) {
        cli_summary_add (run->summary, line, &result);
        run->done++;
    }
    zmsg_destroy (&msg);
}

/* Watches the DEALER for dropped connections. Without this, lines handed to an
 * ingest process that then died are only re-sent after the answer timeout, and a
 * full window stalls the whole run for that long. Best effort: NULL if unavailable. */
static zsock_t *
s_monitor_new (zsock_t *sock)
{
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://dossier-ingest-monitor-%p", (void *) sock);
    if (zmq_socket_monitor (zsock_resolve (sock), endpoint, ZMQ_EVENT_DISCONNECTED) != 0)
        return NULL;
    zsock_t *monitor = zsock_new (ZMQ_PAIR);
    if (monitor && zsock_connect (monitor, "%s", endpoint) == 0)
        return monitor;
    zsock_destroy (&monitor);
    zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
    return NULL;
}

/* A monitor event: [uint16 event, uint32 value][address]. On a disconnect, whatever
 * the dead peer had not answered is sent again (the pipe keeps it until reconnect). */
static void
s_handle_monitor (s_run_t *run)
{
    zmsg_t *msg = zmsg_recv (run->monitor);
    zframe_t *frame = msg ? zmsg_first (msg) : NULL;
    if (frame && zframe_size (frame) >= 2) {
        uint16_t event;
        memcpy (&event, zframe_data (frame), sizeof event);
        if (event == ZMQ_EVENT_DISCONNECTED) {
            size_t count = cli_window_resend_all (run->window);
            if (!run->args->quiet && count)
                fprintf (run->err, "%sdossier: lost the connection to ingest; re-sending %zu lines\n",
                         run->tty && run->progress_shown ? "\r\033[K" : "", count);
        }
    }
    zmsg_destroy (&msg);
}

static void
s_progress (s_run_t *run, int64_t now, int final)
{
    if (run->args->quiet)
        return;
    if (final) {
        if (run->progress_shown && run->tty)
            fprintf (run->err, "\r\033[K");
        fflush (run->err);
        return;
    }
    if (now < run->next_progress_ms)
        return;
    cli_progress_t progress = {
        .bytes_read = run->bytes_read, .bytes_total = run->bytes_total, .done = run->done,
        .rejected = cli_summary_rejected (run->summary), .in_flight = cli_window_size (run->window),
        .resends = cli_window_resends (run->window), .elapsed_s = (double) (now - run->started_ms) / 1000.0
    };
    char line [256];
    cli_progress_format (&progress, run->tty, line, sizeof line);
    if (run->tty)
        fprintf (run->err, "\r%s\033[K", line);
    else
        fprintf (run->err, "%s\n", line);
    fflush (run->err);
    run->progress_shown = 1;
    run->next_progress_ms = now + (run->tty ? 100 : 1000);
}

int
cli_ingest_run (config_t *config, const cli_args_t *args, FILE *out, FILE *err)
{
    s_run_t run_data = { .args = args, .out = out, .err = err, .fd = -1 };
    s_run_t *run = &run_data;
    int rc = 1;
    if (streq (args->file, "-"))
        run->fd = dup (STDIN_FILENO);
    else
        run->fd = open (args->file, O_RDONLY | O_CLOEXEC);
    if (run->fd < 0) {
        fprintf (err, "dossier: cannot open %s: %s\n", args->file, strerror (errno));
        return 1;
    }
    struct stat st;
    if (fstat (run->fd, &st) == 0 && S_ISREG (st.st_mode))
        run->bytes_total = (uint64_t) st.st_size;
    long body_limit = config_get_long (config, "body_limit", 1048576);
    run->max_line = body_limit > 0 ? (size_t) body_limit : 1048576;
    if (run->max_line > ENVELOPE_BODY_MAX - 4096)
        run->max_line = ENVELOPE_BODY_MAX - 4096;
    run->answer_timeout_ms = config_get_long (config, "cli_answer_timeout_ms", 20000);
    int64_t retry_delay_ms = config_get_long (config, "cli_retry_delay_ms", 1000);
    if (run->answer_timeout_ms <= 0)
        run->answer_timeout_ms = 20000;
    if (retry_delay_ms < 0)
        retry_delay_ms = 1000;
    run->lines = cli_jsonl_new (run->max_line);
    run->window = cli_window_new ((size_t) args->window, run->answer_timeout_ms, retry_delay_ms);
    run->summary = cli_summary_new ();
    run->chunk = malloc (CLI_READ_CHUNK);
    if (!run->lines || !run->window || !run->summary || !run->chunk) {
        fprintf (err, "dossier: out of memory\n");
        goto done;
    }
    run->sock = cli_ctl_connect (config, "ingest", &run->endpoint, err);
    if (!run->sock)
        goto done;
    run->monitor = s_monitor_new (run->sock);
    ids_uuid4 (run->run_id);
    run->tty = isatty (fileno (err));
    run->started_ms = zclock_mono ();
    int64_t deadline = run->started_ms + (int64_t) (args->timeout_s * 1000);
    int deadline_hit = 0, interrupted = 0;

    for (;;) {
        if (zsys_interrupted) {
            interrupted = 1;
            break;
        }
        int64_t now = zclock_mono ();
        int need_input = s_fill (run, now);
        if (run->read_failed)
            break;
        s_send_due (run, now);
        if (run->eof && cli_jsonl_done (run->lines) && cli_window_size (run->window) == 0)
            break;
        if (now >= deadline) {
            deadline_hit = 1;
            break;
        }
        if (!run->warned_silence && run->answers == 0 && now - run->started_ms >= run->answer_timeout_ms) {
            fprintf (err, "dossier: no answer from ingest at %s yet; re-sending until the deadline\n",
                     run->endpoint);
            run->warned_silence = 1;
        }
        s_progress (run, now, 0);

        int64_t wait = cli_window_next_timer (run->window, now);
        if (wait < 0 || wait > deadline - now)
            wait = deadline - now;
        if (!args->quiet && run->next_progress_ms - now < wait)
            wait = run->next_progress_ms - now;
        if (wait < 0)
            wait = 0;
        zmq_pollitem_t items [3] = {
            { zsock_resolve (run->sock), 0, ZMQ_POLLIN, 0 },
            { run->monitor ? zsock_resolve (run->monitor) : NULL, -1, ZMQ_POLLIN, 0 },
            { NULL, run->fd, ZMQ_POLLIN, 0 }
        };
        /* The input is polled last and only when we want more of it. */
        int n_items = need_input ? 3 : 2;
        if (!run->monitor)
            items [1] = items [2], n_items--;
        if (!(zsock_events (run->sock) & ZMQ_POLLIN)
        &&  zmq_poll (items, n_items, (long) wait) < 0 && zmq_errno () != EINTR) {
            fprintf (err, "dossier: poll failed: %s\n", zmq_strerror (zmq_errno ()));
            break;
        }
        if (need_input && (items [n_items - 1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
            s_read_input (run);
        if (run->monitor && (zsock_events (run->monitor) & ZMQ_POLLIN))
            s_handle_monitor (run);
        now = zclock_mono ();
        while (zsock_events (run->sock) & ZMQ_POLLIN)
            s_receive (run, now);
    }
    s_progress (run, 0, 1);
    cli_summary_set_unanswered (run->summary, cli_window_size (run->window));
    if (args->json) {
        char *json = cli_summary_json (run->summary);
        if (json)
            fprintf (out, "%s\n", json);
        free (json);
    }
    else
        cli_summary_print (run->summary, out);
    fflush (out);
    int finished = run->eof && cli_jsonl_done (run->lines) && cli_window_size (run->window) == 0;
    if (deadline_hit)
        fprintf (err, "dossier: deadline of %.0f s reached with %zu lines unanswered%s\n", args->timeout_s,
                 cli_window_size (run->window), finished || run->eof ? "" : " and input left unread");
    else
    if (interrupted)
        fprintf (err, "dossier: interrupted\n");
    if (!finished || run->read_failed)
        rc = 1;
    else
        rc = cli_summary_rejected (run->summary) > 0 ? 2 : 0;
done:
    s_run_destroy (run);
    return rc;
}
