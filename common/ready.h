/* ready — the start-up handshake with the supervisor: a process is up when it says
 * so (after binding its sockets and opening its files), never when it was forked. */
#ifndef DOSSIER_READY_H
#define DOSSIER_READY_H

/* Tells the supervisor this process is ready: writes "ready\n" to the file
 * descriptor named by $DOSSIER_READY_FD and closes it. A no-op when the process
 * was started by hand. Safe to call twice. */
void ready_signal (void);

#endif
