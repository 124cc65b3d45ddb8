/* cli_ctl — DEALER helpers shared by the CLI subcommands (see cli_ctl.h). */
#include "cli_ctl.h"

#include "endpoints.h"
#include "ids.h"

#include <string.h>

zsock_t *
cli_ctl_connect (config_t *config, const char *name, char **endpoint_p, FILE *err)
{
    *endpoint_p = NULL;
    char *endpoint = endpoints_get (config, name);
    if (!endpoint) {
        fprintf (err, "dossier: the %s endpoint path is too long (shorten data_dir)\n", name);
        return NULL;
    }
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock) {
        fprintf (err, "dossier: cannot create a socket\n");
        free (endpoint);
        return NULL;
    }
    /* The window, not the HWM, bounds what we queue. */
    zsock_set_sndhwm (sock, 0);
    zsock_set_rcvhwm (sock, 0);
    if (zsock_connect (sock, "%s", endpoint) == -1) {
        fprintf (err, "dossier: cannot connect to %s: %s\n", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
        free (endpoint);
        return NULL;
    }
    *endpoint_p = endpoint;
    return sock;
}

int
cli_ctl_send (zsock_t *sock, const char *type, const char *body, char *id_out)
{
    char id [IDS_UUID_LEN];
    ids_uuid4 (id);
    envelope_t env;
    envelope_init (&env, type, id);
    envelope_set (env.correlation_id, sizeof env.correlation_id, id);
    env.body = body;
    env.body_size = body ? strlen (body) : 0;
    if (id_out)
        snprintf (id_out, ENVELOPE_ID_MAX, "%s", id);
    return envelope_send (sock, NULL, &env);
}

int
cli_ctl_recv (zsock_t *sock, int timeout_ms, zmsg_t **msg_p, envelope_t *env)
{
    *msg_p = NULL;
    if (!(zsock_events (sock) & ZMQ_POLLIN)) {
        zmq_pollitem_t item = { zsock_resolve (sock), 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, timeout_ms) <= 0)
            return -1;
    }
    return envelope_recv (sock, 0, NULL, msg_p, env);
}
