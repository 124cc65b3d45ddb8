/* endpoints — one place that names every socket, so processes cannot disagree. */
#include "endpoints.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *
endpoints_get (config_t *config, const char *name)
{
    char key [64];
    snprintf (key, sizeof key, "endpoint_%s", name);
    const char *explicit = config_get (config, key, NULL);
    if (explicit)
        return strdup (explicit);
    const char *dir = config_get (config, "data_dir", "./data");
    char run [4096];
    snprintf (run, sizeof run, "%s/run", dir);
    mkdir (dir, 0750);
    mkdir (run, 0750);
    char endpoint [4200];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/%s.ipc", run, name);
    /* sun_path holds 107 bytes; longer ipc paths fail at bind time with a vague error. */
    if (strlen (endpoint) - strlen ("ipc://") > 107)
        return NULL;
    return strdup (endpoint);
}

/* True when ZeroMQ can bind host as written: "*", an IP literal (IPv6 bracketed or
 * not) or the name of one of this host's interfaces (tcp://lo:5555). */
static int
s_bindable_host (const char *host, size_t len)
{
    if (len == 1 && host [0] == '*')
        return 1;
    if (host [0] == '[')
        return 1;
    char text [256];
    if (len >= sizeof text)
        return 0;
    memcpy (text, host, len);
    text [len] = 0;
    struct in6_addr ip;             /* big enough for either family */
    if (inet_pton (AF_INET, text, &ip) == 1 || inet_pton (AF_INET6, text, &ip) == 1)
        return 1;
    return len < IF_NAMESIZE && if_nametoindex (text) != 0;
}

char *
endpoints_bind_address (const char *endpoint)
{
    if (!endpoint)
        return NULL;
    static const char tcp [] = "tcp://";
    if (strncmp (endpoint, tcp, sizeof tcp - 1) != 0)
        return strdup (endpoint);       /* ipc, inproc...: bound as configured */
    const char *host = endpoint + sizeof tcp - 1;
    /* "source;address" names a local address for connecting only: a binder drops it. */
    const char *semicolon = strrchr (host, ';');
    if (semicolon)
        host = semicolon + 1;
    const char *colon;
    if (host [0] == '[') {
        const char *bracket = strchr (host, ']');
        colon = bracket && bracket [1] == ':' ? bracket + 1 : NULL;
    }
    else
        colon = strrchr (host, ':');
    if (!colon || colon == host || colon [1] == 0)
        return NULL;
    size_t host_len = (size_t) (colon - host);
    const char *bound = NULL;           /* replacement host, or NULL to keep it */
    if (host_len == 9 && strncmp (host, "localhost", 9) == 0)
        bound = "127.0.0.1";            /* not "*": a loopback endpoint stays private */
    else
    if (!s_bindable_host (host, host_len))
        bound = "*";
    size_t size = sizeof tcp + (bound ? strlen (bound) : host_len) + strlen (colon);
    char *address = malloc (size);
    if (!address)
        return NULL;
    if (bound)
        snprintf (address, size, "%s%s%s", tcp, bound, colon);
    else
        snprintf (address, size, "%s%.*s%s", tcp, (int) host_len, host, colon);
    return address;
}

char *
endpoints_get_bind (config_t *config, const char *name)
{
    char *endpoint = endpoints_get (config, name);
    char *address = endpoints_bind_address (endpoint);
    free (endpoint);
    return address;
}
