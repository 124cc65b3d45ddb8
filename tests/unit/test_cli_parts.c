/* test_cli_parts — the CLI's pure parts: argument parsing, JSONL splitting (long
 * lines, CRLF, BOM, blank lines, any chunking), the retry/window bookkeeping, the
 * result classification and summary text/JSON, progress and status formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cli/cli_args.h"
#include "../../cli/cli_commands.h"
#include "../../cli/cli_jsonl.h"
#include "../../cli/cli_progress.h"
#include "../../cli/cli_summary.h"
#include "../../cli/cli_window.h"

/* ---------------------------------------------------------------- arguments */

static int
s_parse (cli_args_t *args, char *err, ...)
{
    char *argv [16] = { "dossier" };
    int argc = 1;
    va_list list;
    va_start (list, err);
    char *arg;
    while (argc < 15 && (arg = va_arg (list, char *)))
        argv [argc++] = arg;
    va_end (list);
    argv [argc] = NULL;
    err [0] = 0;
    return cli_args_parse (argc, argv, args, err, 256);
}

static void
test_args_ingest (void **state)
{
    (void) state;
    cli_args_t args;
    char err [256];
    assert_int_equal (s_parse (&args, err, "ingest", "records.jsonl", NULL), 0);
    assert_int_equal (args.command, CLI_CMD_INGEST);
    assert_string_equal (args.file, "records.jsonl");
    assert_null (args.config);
    assert_false (args.json);
    assert_true (args.timeout_s == CLI_INGEST_TIMEOUT_S);
    assert_int_equal (args.window, CLI_INGEST_WINDOW);

    /* global --config before or after; options in any order; = forms */
    assert_int_equal (s_parse (&args, err, "--config", "/etc/d.cfg", "ingest", "-", "--json",
                               "--timeout", "12.5", "--window=50", NULL), 0);
    assert_string_equal (args.config, "/etc/d.cfg");
    assert_string_equal (args.file, "-");
    assert_true (args.json);
    assert_true (args.timeout_s == 12.5);
    assert_int_equal (args.window, 50);
    assert_int_equal (s_parse (&args, err, "ingest", "f", "--config=x.cfg", "-q", NULL), 0);
    assert_string_equal (args.config, "x.cfg");
    assert_true (args.quiet);
    /* after --, a dash-name is a file */
    assert_int_equal (s_parse (&args, err, "ingest", "--", "--odd-name", NULL), 0);
    assert_string_equal (args.file, "--odd-name");
}

static void
test_args_errors (void **state)
{
    (void) state;
    cli_args_t args;
    char err [256];
    assert_int_equal (s_parse (&args, err, "ingest", NULL), -2);
    assert_non_null (strstr (err, "FILE"));
    assert_int_equal (s_parse (&args, err, "ingest", "a", "b", NULL), -2);
    assert_int_equal (s_parse (&args, err, "frobnicate", NULL), -2);
    assert_non_null (strstr (err, "frobnicate"));
    assert_int_equal (s_parse (&args, err, "status", "--bogus", NULL), -2);
    assert_non_null (strstr (err, "--bogus"));
    assert_int_equal (s_parse (&args, err, "status", "--config", NULL), -2);
    assert_non_null (strstr (err, "needs a value"));
    assert_int_equal (s_parse (&args, err, "--config=", "status", NULL), -2);
    assert_int_equal (s_parse (&args, err, "ingest", "f", "--timeout", "0", NULL), -2);
    assert_int_equal (s_parse (&args, err, "ingest", "f", "--timeout", "soon", NULL), -2);
    assert_int_equal (s_parse (&args, err, "ingest", "f", "--timeout", "nan", NULL), -2);
    assert_int_equal (s_parse (&args, err, "ingest", "f", "--window", "0", NULL), -2);
    assert_int_equal (s_parse (&args, err, "ingest", "f", "--window", "10x", NULL), -2);
    assert_int_equal (s_parse (&args, err, "status", "--to", "x", NULL), -2);
    assert_int_equal (s_parse (&args, err, "status", "--window", "3", NULL), -2);
    assert_int_equal (s_parse (&args, err, "status", "extra", NULL), -2);
    assert_int_equal (s_parse (&args, err, "rebuild", "--to", "", NULL), -2);
    /* a NULL/zero-size error buffer is allowed */
    char *argv [] = { "dossier", "nope", NULL };
    assert_int_equal (cli_args_parse (2, argv, &args, NULL, 0), -2);
}

static void
test_args_other_commands_and_help (void **state)
{
    (void) state;
    cli_args_t args;
    char err [256];
    assert_int_equal (s_parse (&args, err, "status", "--json", NULL), 0);
    assert_int_equal (args.command, CLI_CMD_STATUS);
    assert_true (args.timeout_s == CLI_CTL_TIMEOUT_S);
    assert_int_equal (s_parse (&args, err, "rebuild", "--to", "out.db", NULL), 0);
    assert_int_equal (args.command, CLI_CMD_REBUILD);
    assert_string_equal (args.to, "out.db");
    assert_true (args.timeout_s == CLI_REBUILD_TIMEOUT_S);
    assert_int_equal (s_parse (&args, err, "stop", "--timeout", "5", NULL), 0);
    assert_int_equal (args.command, CLI_CMD_STOP);
    assert_true (args.timeout_s == 5);

    assert_int_equal (s_parse (&args, err, NULL), 0);
    assert_int_equal (args.command, CLI_CMD_HELP);
    assert_int_equal (s_parse (&args, err, "--help", NULL), 0);
    assert_int_equal (args.command, CLI_CMD_HELP);
    assert_int_equal (s_parse (&args, err, "ingest", "--help", NULL), 0);
    assert_int_equal (args.command, CLI_CMD_INGEST);
    assert_true (args.help);
    assert_int_equal (s_parse (&args, err, "help", "rebuild", NULL), 0);
    assert_int_equal (args.command, CLI_CMD_REBUILD);
    assert_true (args.help);
    assert_int_equal (s_parse (&args, err, "help", "nope", NULL), -2);

    /* every usage text prints and names its command */
    cli_command_t commands [] = { CLI_CMD_HELP, CLI_CMD_INGEST, CLI_CMD_STATUS, CLI_CMD_REBUILD, CLI_CMD_STOP };
    const char *names [] = { "COMMAND", "ingest", "status", "rebuild", "stop" };
    for (size_t i = 0; i < 5; i++) {
        char *text = NULL;
        size_t size = 0;
        FILE *out = open_memstream (&text, &size);
        cli_args_usage (out, commands [i]);
        fclose (out);
        assert_non_null (strstr (text, names [i]));
        free (text);
    }
}

/* ---------------------------------------------------------------- JSONL */

typedef struct {
    long number;
    char *data;                 /* NULL when too long */
    size_t size;
} s_line_t;

/* Feeds input in chunks of chunk bytes, collecting every line. Returns the count. */
static size_t
s_split (const char *input, size_t size, size_t chunk, size_t max_line, s_line_t *lines, size_t max_lines)
{
    cli_jsonl_t *jsonl = cli_jsonl_new (max_line);
    assert_non_null (jsonl);
    size_t n = 0, off = 0;
    for (;;) {
        cli_jsonl_line_t line;
        while (cli_jsonl_next (jsonl, &line)) {
            assert_true (n < max_lines);
            lines [n].number = line.number;
            lines [n].size = line.size;
            lines [n].data = line.too_long ? NULL : strndup (line.data, line.size);
            assert_true (line.too_long == (line.data == NULL));
            n++;
        }
        if (cli_jsonl_done (jsonl))
            break;
        if (off < size) {
            size_t take = size - off < chunk ? size - off : chunk;
            assert_int_equal (cli_jsonl_feed (jsonl, input + off, take), 0);
            off += take;
        }
        else
            cli_jsonl_finish (jsonl);
    }
    cli_jsonl_destroy (&jsonl);
    assert_null (jsonl);
    return n;
}

static void
s_free_lines (s_line_t *lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free (lines [i].data);
}

static void
test_jsonl_basic_crlf_blank_bom (void **state)
{
    (void) state;
    const char input [] = "\xEF\xBB\xBF{\"a\":1}\r\n\r\n   \n{\"b\":2}\n\t\n{\"c\":3}";
    /* every chunk size, down to one byte, gives the same lines */
    for (size_t chunk = 1; chunk <= sizeof input; chunk++) {
        s_line_t lines [8];
        size_t n = s_split (input, sizeof input - 1, chunk, 1000, lines, 8);
        assert_int_equal (n, 3);
        assert_int_equal (lines [0].number, 1);
        assert_string_equal (lines [0].data, "{\"a\":1}");
        assert_int_equal (lines [1].number, 4);
        assert_string_equal (lines [1].data, "{\"b\":2}");
        assert_int_equal (lines [2].number, 6);      /* no newline at the end */
        assert_string_equal (lines [2].data, "{\"c\":3}");
        s_free_lines (lines, n);
    }
    /* a BOM only at the start; a partial BOM is data */
    s_line_t lines [4];
    size_t n = s_split ("\xEF\xBB{}\n", 5, 1, 100, lines, 4);
    assert_int_equal (n, 1);
    assert_int_equal (lines [0].size, 4);
    s_free_lines (lines, n);
    n = s_split ("\xEF", 1, 1, 100, lines, 4);
    assert_int_equal (n, 1);
    assert_int_equal (lines [0].size, 1);
    s_free_lines (lines, n);
    n = s_split ("\xEF\xBB\xBF", 3, 3, 100, lines, 4);
    assert_int_equal (n, 0);
    n = s_split ("", 0, 1, 100, lines, 4);
    assert_int_equal (n, 0);
    n = s_split ("\n\n\r\n", 4, 2, 100, lines, 4);
    assert_int_equal (n, 0);
}

static void
test_jsonl_very_long_lines (void **state)
{
    (void) state;
    /* a 3 MB line fits under a 4 MB cap, whatever the chunking */
    size_t big = 3 * 1024 * 1024;
    char *input = malloc (big + 64);
    assert_non_null (input);
    size_t len = 0;
    len += (size_t) sprintf (input, "{\"x\":1}\r\n");
    input [len++] = '{';
    memset (input + len, 'a', big - 2);
    len += big - 2;
    input [len++] = '}';
    len += (size_t) sprintf (input + len, "\r\n{\"y\":2}\n");
    size_t chunks [] = { 1000, 65536, 1 << 20, len };
    for (size_t c = 0; c < sizeof chunks / sizeof chunks [0]; c++) {
        s_line_t lines [4];
        size_t n = s_split (input, len, chunks [c], 4 * 1024 * 1024, lines, 4);
        assert_int_equal (n, 3);
        assert_int_equal (lines [1].number, 2);
        assert_int_equal (lines [1].size, big);
        assert_non_null (lines [1].data);
        assert_int_equal (lines [1].data [big - 1], '}');
        assert_string_equal (lines [2].data, "{\"y\":2}");
        s_free_lines (lines, n);
    }
    /* over a 1 KB cap: flagged too long with its length, the lines around it intact */
    for (size_t c = 0; c < sizeof chunks / sizeof chunks [0]; c++) {
        s_line_t lines [4];
        size_t n = s_split (input, len, chunks [c], 1024, lines, 4);
        assert_int_equal (n, 3);
        assert_string_equal (lines [0].data, "{\"x\":1}");
        assert_int_equal (lines [1].number, 2);
        assert_null (lines [1].data);
        assert_true (lines [1].size >= big && lines [1].size <= big + 1);
        assert_int_equal (lines [2].number, 3);
        assert_string_equal (lines [2].data, "{\"y\":2}");
        s_free_lines (lines, n);
    }
    /* an over-long last line without a newline */
    s_line_t lines [4];
    size_t n = s_split (input + 9, big, 4096, 1024, lines, 4);
    assert_int_equal (n, 1);
    assert_null (lines [0].data);
    assert_int_equal (lines [0].size, big);
    /* exactly at the cap is fine; one over is too long */
    n = s_split ("abcd\nabcde\n", 11, 3, 4, lines, 4);
    assert_int_equal (n, 2);
    assert_string_equal (lines [0].data, "abcd");
    assert_null (lines [1].data);
    s_free_lines (lines, 2);
    free (input);
}

/* ---------------------------------------------------------------- window */

static void
test_window_sends_each_line_once_then_times_out (void **state)
{
    (void) state;
    cli_window_t *window = cli_window_new (3, 1000, 200);
    assert_int_equal (cli_window_next_timer (window, 0), -1);
    assert_int_equal (cli_window_add (window, 1, "a", 1, 0), 0);
    assert_int_equal (cli_window_add (window, 2, "bb", 2, 0), 0);
    assert_int_equal (cli_window_add (window, 2, "x", 1, 0), -2);       /* duplicate */
    assert_int_equal (cli_window_add (window, 0, "x", 1, 0), -2);
    assert_int_equal (cli_window_add (window, 3, "", 0, 0), 0);
    assert_false (cli_window_has_room (window));
    assert_int_equal (cli_window_add (window, 4, "d", 1, 0), -1);
    assert_int_equal (cli_window_next_timer (window, 0), 0);

    const char *data;
    size_t size;
    int attempt;
    assert_int_equal (cli_window_next_due (window, 10, &data, &size, &attempt), 1);
    assert_int_equal (attempt, 1);
    assert_memory_equal (data, "a", 1);
    assert_int_equal (cli_window_next_due (window, 20, &data, &size, NULL), 2);
    assert_int_equal (size, 2);
    assert_int_equal (cli_window_next_due (window, 30, &data, &size, NULL), 3);
    assert_int_equal (size, 0);
    assert_int_equal (cli_window_next_due (window, 40, &data, &size, NULL), 0);
    assert_int_equal (cli_window_next_timer (window, 40), 970);

    /* line 2 answered: done, room again */
    assert_int_equal (cli_window_answer (window, 2, 0, 50), CLI_WINDOW_DONE);
    assert_int_equal (cli_window_answer (window, 2, 0, 50), CLI_WINDOW_STALE);
    assert_true (cli_window_has_room (window));
    assert_int_equal (cli_window_size (window), 2);

    /* no answer for line 1 within 1000 ms: re-sent */
    assert_int_equal (cli_window_next_due (window, 1009, &data, &size, NULL), 0);
    assert_int_equal (cli_window_next_due (window, 1010, &data, &size, &attempt), 1);
    assert_int_equal (attempt, 2);
    assert_int_equal (cli_window_resends (window), 1);
    /* line 3 is next to time out; line 1 goes to the back */
    assert_int_equal (cli_window_next_timer (window, 1010), 20);
    assert_int_equal (cli_window_next_due (window, 1030, &data, &size, NULL), 3);
    assert_int_equal (cli_window_next_due (window, 1030, &data, &size, NULL), 0);
    cli_window_destroy (&window);
    assert_null (window);
}

static void
test_window_retries_503_after_delay (void **state)
{
    (void) state;
    cli_window_t *window = cli_window_new (10, 5000, 200);
    const char *data;
    size_t size;
    for (long line = 1; line <= 3; line++)
        assert_int_equal (cli_window_add (window, line, "x", 1, 0), 0);
    for (long line = 1; line <= 3; line++)
        assert_int_equal (cli_window_next_due (window, 0, &data, &size, NULL), line);
    assert_int_equal (cli_window_answer (window, 2, 1, 100), CLI_WINDOW_RETRY);
    assert_int_equal (cli_window_answer (window, 1, 1, 150), CLI_WINDOW_RETRY);
    /* a second 503 for a line already waiting keeps its place */
    assert_int_equal (cli_window_answer (window, 2, 1, 160), CLI_WINDOW_RETRY);
    assert_int_equal (cli_window_next_timer (window, 150), 150);
    assert_int_equal (cli_window_next_due (window, 299, &data, &size, NULL), 0);
    assert_int_equal (cli_window_next_due (window, 300, &data, &size, NULL), 2);
    assert_int_equal (cli_window_next_due (window, 349, &data, &size, NULL), 0);
    assert_int_equal (cli_window_next_due (window, 350, &data, &size, NULL), 1);
    /* an answer while waiting for the retry finishes the line all the same */
    assert_int_equal (cli_window_answer (window, 3, 1, 400), CLI_WINDOW_RETRY);
    assert_int_equal (cli_window_answer (window, 3, 0, 410), CLI_WINDOW_DONE);
    assert_int_equal (cli_window_next_due (window, 10000, &data, &size, NULL), 2);  /* timed out */
    assert_int_equal (cli_window_answer (window, 2, 0, 10001), CLI_WINDOW_DONE);
    assert_int_equal (cli_window_answer (window, 1, 0, 10002), CLI_WINDOW_DONE);
    assert_int_equal (cli_window_size (window), 0);
    assert_int_equal (cli_window_next_timer (window, 10002), -1);
    assert_int_equal (cli_window_answer (window, 99, 1, 0), CLI_WINDOW_STALE);
    cli_window_destroy (&window);
    cli_window_destroy (&window);
}

static void
test_window_resend_all_after_disconnect (void **state)
{
    (void) state;
    cli_window_t *window = cli_window_new (10, 60000, 1000);
    const char *data;
    size_t size;
    for (long line = 1; line <= 4; line++)
        assert_int_equal (cli_window_add (window, line, "x", 1, 0), 0);
    for (long line = 1; line <= 3; line++)
        assert_int_equal (cli_window_next_due (window, 10, &data, &size, NULL), line);
    assert_int_equal (cli_window_answer (window, 2, 1, 20), CLI_WINDOW_RETRY);   /* a 503 */
    /* 1 and 3 were in flight: due again at once; 2 keeps its retry delay; 4 never left */
    assert_int_equal (cli_window_resend_all (window), 2);
    assert_int_equal (cli_window_next_due (window, 30, &data, &size, NULL), 4);
    int attempt;
    assert_int_equal (cli_window_next_due (window, 30, &data, &size, &attempt), 1);
    assert_int_equal (attempt, 2);
    assert_int_equal (cli_window_next_due (window, 30, &data, &size, NULL), 3);
    assert_int_equal (cli_window_next_due (window, 30, &data, &size, NULL), 0);
    assert_int_equal (cli_window_next_due (window, 1020, &data, &size, NULL), 2);
    assert_int_equal (cli_window_resends (window), 3);
    assert_int_equal (cli_window_resend_all (window), 4);
    cli_window_destroy (&window);
}

static void
test_window_many_lines (void **state)
{
    (void) state;
    cli_window_t *window = cli_window_new (1000, 20000, 1000);
    const char *data;
    size_t size;
    long next_line = 1, done = 0;
    /* stream 20,000 lines through a window of 1,000, answering the oldest half */
    while (done < 20000) {
        while (next_line <= 20000 && cli_window_has_room (window))
            assert_int_equal (cli_window_add (window, next_line++, "r", 1, 0), 0);
        long line, first = 0;
        while ((line = cli_window_next_due (window, 0, &data, &size, NULL)) > 0)
            if (!first)
                first = line;
        for (long l = done + 1; l <= done + 500 && l < next_line; l++)
            assert_int_equal (cli_window_answer (window, l, 0, 0), CLI_WINDOW_DONE);
        done = done + 500 < next_line - 1 ? done + 500 : next_line - 1;
        assert_true (cli_window_size (window) <= 1000);
    }
    assert_int_equal (cli_window_size (window), 0);
    cli_window_destroy (&window);
}

/* ---------------------------------------------------------------- results, summary */

static void
test_result_classification (void **state)
{
    (void) state;
    cli_result_t r;
    const char *ok = "{\"line\":3,\"ok\":true,\"case_id\":\"abc\",\"duplicate\":false}";
    assert_int_equal (cli_result_parse (ok, strlen (ok), &r), 0);
    assert_int_equal (r.kind, CLI_RESULT_NEW);
    assert_int_equal (r.line, 3);
    assert_string_equal (r.case_id, "abc");
    const char *dup = "{\"line\":4,\"ok\":true,\"case_id\":\"abc\",\"duplicate\":true}";
    assert_int_equal (cli_result_parse (dup, strlen (dup), &r), 0);
    assert_int_equal (r.kind, CLI_RESULT_DUPLICATE);
    const char *bad = "{\"line\":5,\"ok\":false,\"status\":422,\"error\":\"validation.x\",\"detail\":\"d\"}";
    assert_int_equal (cli_result_parse (bad, strlen (bad), &r), 0);
    assert_int_equal (r.kind, CLI_RESULT_REJECTED);
    assert_int_equal (r.status, 422);
    assert_string_equal (r.error, "validation.x");
    assert_string_equal (r.detail, "d");
    const char *busy = "{\"line\":6,\"ok\":false,\"status\":503,\"error\":\"unavailable\",\"detail\":\"d\"}";
    assert_int_equal (cli_result_parse (busy, strlen (busy), &r), 0);
    assert_int_equal (r.kind, CLI_RESULT_RETRY);
    const char *odd = "{\"ok\":false}";
    assert_int_equal (cli_result_parse (odd, strlen (odd), &r), 0);
    assert_int_equal (r.kind, CLI_RESULT_RETRY);
    assert_int_equal (r.line, -1);
    const char *garbage [] = { "", "nope", "[]", "{\"ok\":1}", "{\"line\":1}" };
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal (cli_result_parse (garbage [i], strlen (garbage [i]), &r), -2);
        assert_int_equal (r.kind, CLI_RESULT_RETRY);
    }
    assert_int_equal (cli_result_parse (NULL, 0, &r), -2);
    /* a long multibyte detail is cut on a character boundary */
    char *big = malloc (4000);
    strcpy (big, "{\"ok\":false,\"status\":422,\"error\":\"e\",\"detail\":\"");
    size_t len = strlen (big);
    for (int i = 0; i < 1000; i++) {
        memcpy (big + len, "\xc3\xa9", 2);
        len += 2;
    }
    strcpy (big + len, "\"}");
    assert_int_equal (cli_result_parse (big, strlen (big), &r), 0);
    assert_true (strlen (r.detail) < CLI_RESULT_DETAIL_MAX);
    assert_int_equal (strlen (r.detail) % 2, 0);
    json_t *check = json_string (r.detail);          /* still valid UTF-8 */
    assert_non_null (check);
    json_decref (check);
    free (big);
}

static void
test_summary_text_and_json (void **state)
{
    (void) state;
    cli_summary_t *summary = cli_summary_new ();
    cli_result_t r = { .kind = CLI_RESULT_NEW };
    cli_summary_add (summary, 1, &r);
    cli_summary_add (summary, 2, &r);
    r.kind = CLI_RESULT_DUPLICATE;
    cli_summary_add (summary, 3, &r);
    r.kind = CLI_RESULT_RETRY;
    cli_summary_add (summary, 4, &r);                 /* not final: not counted */
    r = (cli_result_t) { .kind = CLI_RESULT_REJECTED, .status = 422 };
    strcpy (r.error, "validation.persons");
    strcpy (r.detail, "at least one person");
    cli_summary_add (summary, 9, &r);
    cli_summary_reject (summary, 5, 400, "malformed_json", "'[' or '{' expected");
    assert_int_equal (cli_summary_accepted (summary), 3);
    assert_int_equal (cli_summary_new_cases (summary), 2);
    assert_int_equal (cli_summary_duplicates (summary), 1);
    assert_int_equal (cli_summary_rejected (summary), 2);

    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    cli_summary_print (summary, out);
    fclose (out);
    assert_string_equal (text,
        "accepted 3 (new 2, duplicate 1), rejected 2\n"
        "line 5: 400 malformed_json: '[' or '{' expected\n"
        "line 9: 422 validation.persons: at least one person\n");
    free (text);

    cli_summary_set_unanswered (summary, 7);
    assert_int_equal (cli_summary_unanswered (summary), 7);
    char *json = cli_summary_json (summary);
    json_t *root = json_loads (json, 0, NULL);
    assert_non_null (root);
    assert_int_equal (json_integer_value (json_object_get (root, "accepted")), 3);
    assert_int_equal (json_integer_value (json_object_get (root, "new")), 2);
    assert_int_equal (json_integer_value (json_object_get (root, "duplicate")), 1);
    assert_int_equal (json_integer_value (json_object_get (root, "rejected")), 2);
    assert_int_equal (json_integer_value (json_object_get (root, "unanswered")), 7);
    json_t *errors = json_object_get (root, "errors");
    assert_int_equal (json_array_size (errors), 2);
    assert_int_equal (json_integer_value (json_object_get (json_array_get (errors, 0), "line")), 5);
    assert_int_equal (json_integer_value (json_object_get (json_array_get (errors, 1), "status")), 422);
    assert_string_equal (json_string_value (json_object_get (json_array_get (errors, 1), "detail")),
                         "at least one person");
    json_decref (root);
    free (json);

    out = open_memstream (&text, &size);
    cli_summary_print (summary, out);
    fclose (out);
    assert_non_null (strstr (text, "rejected 2, unanswered 7\n"));
    free (text);
    cli_summary_destroy (&summary);
    assert_null (summary);

    /* empty */
    summary = cli_summary_new ();
    json = cli_summary_json (summary);
    root = json_loads (json, 0, NULL);
    assert_int_equal (json_array_size (json_object_get (root, "errors")), 0);
    json_decref (root);
    free (json);
    cli_summary_destroy (&summary);
}

/* ---------------------------------------------------------------- progress, status */

static void
test_progress_and_durations (void **state)
{
    (void) state;
    char buf [256];
    cli_progress_bar (0.5, 10, buf, sizeof buf);
    assert_string_equal (buf, "[#####.....]  50%");
    cli_progress_bar (2.0, 4, buf, sizeof buf);
    assert_string_equal (buf, "[####] 100%");
    cli_progress_bar (-1, 4, buf, sizeof buf);
    assert_string_equal (buf, "[....]   0%");
    cli_progress_t p = { .bytes_read = 250, .bytes_total = 1000, .done = 100, .rejected = 2,
                         .in_flight = 30, .resends = 1, .elapsed_s = 2.0 };
    cli_progress_format (&p, 1, buf, sizeof buf);
    assert_non_null (strstr (buf, "[#######.......................]  25%"));
    assert_non_null (strstr (buf, "100 done, 2 rejected, 30 in flight, 1 re-sent, 50 lines/s"));
    cli_progress_format (&p, 0, buf, sizeof buf);
    assert_true (strncmp (buf, "ingest:  25% read,", 18) == 0);
    p.bytes_total = 0;
    cli_progress_format (&p, 1, buf, sizeof buf);
    assert_true (strncmp (buf, "ingest: 100 done", 16) == 0);

    cli_format_duration (12.46, buf, sizeof buf);
    assert_string_equal (buf, "12.5s");
    cli_format_duration (184, buf, sizeof buf);
    assert_string_equal (buf, "3m04s");
    cli_format_duration (7500, buf, sizeof buf);
    assert_string_equal (buf, "2h05m");
    cli_format_duration (3 * 86400 + 4 * 3600 + 5, buf, sizeof buf);
    assert_string_equal (buf, "3d04h");
    cli_format_duration (-3, buf, sizeof buf);
    assert_string_equal (buf, "0.0s");
    cli_format_duration (1e300, buf, sizeof buf);
    assert_string_equal (buf, "long");
}

static void
test_status_table (void **state)
{
    (void) state;
    const char *body = "{\"processes\":[{\"name\":\"store\",\"instance\":0,\"pid\":123,\"state\":\"running\","
                       "\"uptime_s\":12.5,\"restarts\":0},{\"name\":\"handler\",\"instance\":1,\"pid\":0,"
                       "\"state\":\"failed\",\"uptime_s\":0,\"restarts\":6}]}";
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert_int_equal (cli_status_print_table (body, strlen (body), out), 0);
    fclose (out);
    assert_string_equal (text,
        "NAME         INSTANCE PID      STATE     UPTIME    RESTARTS\n"
        "store        0        123      running   12.5s     0\n"
        "handler      1        -        failed    -         6\n");
    free (text);
    const char *bad [] = { "", "{}", "{\"processes\":{}}", "[", NULL };
    for (size_t i = 0; bad [i]; i++) {
        out = open_memstream (&text, &size);
        assert_int_equal (cli_status_print_table (bad [i], strlen (bad [i]), out), -2);
        fclose (out);
        free (text);
    }
    /* odd rows print as best they can */
    const char *odd = "{\"processes\":[{\"name\":5},7]}";
    out = open_memstream (&text, &size);
    assert_int_equal (cli_status_print_table (odd, strlen (odd), out), 0);
    fclose (out);
    assert_non_null (strstr (text, "?"));
    free (text);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_args_ingest),
        cmocka_unit_test (test_args_errors),
        cmocka_unit_test (test_args_other_commands_and_help),
        cmocka_unit_test (test_jsonl_basic_crlf_blank_bom),
        cmocka_unit_test (test_jsonl_very_long_lines),
        cmocka_unit_test (test_window_sends_each_line_once_then_times_out),
        cmocka_unit_test (test_window_retries_503_after_delay),
        cmocka_unit_test (test_window_resend_all_after_disconnect),
        cmocka_unit_test (test_window_many_lines),
        cmocka_unit_test (test_result_classification),
        cmocka_unit_test (test_summary_text_and_json),
        cmocka_unit_test (test_progress_and_durations),
        cmocka_unit_test (test_status_table),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
