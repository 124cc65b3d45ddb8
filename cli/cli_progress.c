/* cli_progress — progress line formatting (see cli_progress.h). */
#include "cli_progress.h"

#include <stdio.h>
#include <string.h>

void
cli_progress_bar (double fraction, int width, char *buf, size_t size)
{
    if (!(fraction >= 0))       /* also catches NaN */
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    if (width < 1)
        width = 1;
    if (width > 200)
        width = 200;
    char cells [201];
    int filled = (int) (fraction * width);
    for (int i = 0; i < width; i++)
        cells [i] = i < filled ? '#' : '.';
    cells [width] = 0;
    snprintf (buf, size, "[%s] %3d%%", cells, (int) (fraction * 100));
}

void
cli_progress_format (const cli_progress_t *progress, int bar, char *buf, size_t size)
{
    double rate = progress->elapsed_s > 0 ? (double) progress->done / progress->elapsed_s : 0;
    double fraction = progress->bytes_total
                    ? (double) progress->bytes_read / (double) progress->bytes_total : -1;
    char head [256] = "";
    if (bar && fraction >= 0)
        cli_progress_bar (fraction, 30, head, sizeof head);
    else
    if (fraction >= 0)
        snprintf (head, sizeof head, "ingest: %3d%% read,", (int) (fraction * 100));
    else
        snprintf (head, sizeof head, "ingest:");
    snprintf (buf, size, "%s %zu done, %zu rejected, %zu in flight, %zu re-sent, %.0f lines/s",
              head, progress->done, progress->rejected, progress->in_flight, progress->resends, rate);
}
