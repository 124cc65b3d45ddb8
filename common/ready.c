/* ready — see ready.h. A pipe is used rather than a socket so that readiness works
 * before the child has any ZeroMQ context, and EOF tells the supervisor of a crash. */
#include "ready.h"
#include "health.h"

#include <stdlib.h>
#include <unistd.h>

void
ready_signal (void)
{
    health_started ();
    const char *fd_text = getenv ("DOSSIER_READY_FD");
    if (!fd_text || !*fd_text)
        return;
    int fd = atoi (fd_text);
    if (fd > 2) {
        if (write (fd, "ready\n", 6) < 0) {
            /* the supervisor is gone; nothing to tell */
        }
        close (fd);
    }
    unsetenv ("DOSSIER_READY_FD");
}
