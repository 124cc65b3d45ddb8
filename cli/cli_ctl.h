/* cli_ctl — the CLI's side of the control sockets: connect a DEALER to a named
 * endpoint, send one ctl.* envelope, wait for envelopes with a timeout. */
#ifndef DOSSIER_CLI_CTL_H
#define DOSSIER_CLI_CTL_H

#include "config.h"
#include "envelope.h"

#include <czmq.h>
#include <stdio.h>

/* A DEALER connected to endpoint name (endpoints_get). *endpoint_p gets the endpoint
 * (caller frees). Returns NULL after printing the reason to err. */
zsock_t *cli_ctl_connect (config_t *config, const char *name, char **endpoint_p, FILE *err);

/* Sends an envelope of type with a JSON body (may be NULL) and a fresh id, which is
 * copied to id_out (may be NULL; ENVELOPE_ID_MAX bytes). Returns 0, -1. */
int cli_ctl_send (zsock_t *sock, const char *type, const char *body, char *id_out);

/* Waits up to timeout_ms for one envelope. Returns 0 with *msg_p (caller destroys)
 * and env borrowing from it; -1 on timeout or interrupt; -2 for a malformed message. */
int cli_ctl_recv (zsock_t *sock, int timeout_ms, zmsg_t **msg_p, envelope_t *env);

#endif
