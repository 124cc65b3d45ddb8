/* command_bridge — commands out, replies back, without ever blocking the HTTP loop.
 * The loop writes [command id][envelope] to the actor pipe with ZMQ_DONTWAIT; the
 * actor forwards envelopes to the broker and posts each reply to the loop's queue.
 * The DEALER uses ZMQ_IMMEDIATE so that, with no broker connected, a command fails
 * at once with 503 instead of waiting in a queue past its HTTP timeout. */
#include "command_bridge.h"
#include "envelope.h"
#include "log.h"

#include <czmq.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define S_PING_MS       1000
#define S_ALIVE_MS      3000
#define S_PIPE_HWM      100000      /* commands the loop may queue ahead of the actor */
#define S_DRAIN_MAX     1000        /* messages handled per wake-up, per socket */

static const char s_unreachable [] =
    "{\"status\":503,\"error\":\"unavailable\",\"detail\":\"broker unreachable\"}";

struct _gw_bridge_t {
    char *endpoint;
    zactor_t *actor;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    int registered;
    gw_bridge_reply_fn *reply_fn;
    void *reply_arg;
    atomic_llong last_pong;         /* zclock_mono of the last ctl.pong, 0 = never */
    int start_rc;                   /* written by the actor before its first signal */
};

/* A reply travelling from the actor thread to the loop thread. */
typedef struct {
    h2o_multithread_message_t super;
    char cause [ENVELOPE_ID_MAX];
    char type [ENVELOPE_TYPE_MAX];
    size_t body_size;
    char body [];
} s_reply_t;

/* Actor thread: posts one reply to the loop. */
static void
s_post (gw_bridge_t *self, const char *cause, const char *type, const char *body, size_t body_size)
{
    s_reply_t *reply = calloc (1, sizeof (s_reply_t) + body_size + 1);
    if (!reply) {
        log_error (cause, NULL, "bridge: out of memory, reply dropped");
        return;
    }
    envelope_set (reply->cause, sizeof reply->cause, cause);
    envelope_set (reply->type, sizeof reply->type, type);
    if (body_size)
        memcpy (reply->body, body, body_size);
    reply->body_size = body_size;
    h2o_multithread_send_message (&self->receiver, &reply->super);
}

static void
s_send_ping (zsock_t *dealer, uint64_t *counter)
{
    char id [32];
    snprintf (id, sizeof id, "ping:%llu", (unsigned long long) ++*counter);
    envelope_t env;
    envelope_init (&env, "ctl.ping", id);
    zframe_t *frame = envelope_encode (&env);
    if (frame) {
        /* EAGAIN with ZMQ_IMMEDIATE just means no broker: no pong, not ready. */
        zmq_send (zsock_resolve (dealer), zframe_data (frame), zframe_size (frame), ZMQ_DONTWAIT);
        zframe_destroy (&frame);
    }
}

/* Commands from the loop. Returns 1 on $TERM. */
static int
s_handle_pipe (gw_bridge_t *self, zsock_t *pipe, zsock_t *dealer)
{
    for (int i = 0; i < S_DRAIN_MAX && (zsock_events (pipe) & ZMQ_POLLIN); i++) {
        zmsg_t *msg = zmsg_recv (pipe);
        if (!msg)
            return 1;
        if (zmsg_size (msg) == 1) {
            char *command = zmsg_popstr (msg);
            int term = command && streq (command, "$TERM");
            free (command);
            zmsg_destroy (&msg);
            if (term)
                return 1;
            continue;
        }
        zframe_t *id = zmsg_first (msg);
        zframe_t *body = zmsg_next (msg);
        if (zmsg_size (msg) == 2
        &&  zmq_send (zsock_resolve (dealer), zframe_data (body), zframe_size (body), ZMQ_DONTWAIT) == -1) {
            char cause [ENVELOPE_ID_MAX];
            size_t len = zframe_size (id) < sizeof cause - 1 ? zframe_size (id) : sizeof cause - 1;
            memcpy (cause, zframe_data (id), len);
            cause [len] = 0;
            s_post (self, cause, "reply.error", s_unreachable, sizeof s_unreachable - 1);
        }
        zmsg_destroy (&msg);
    }
    return 0;
}

/* Replies and pongs from the broker. */
static void
s_handle_dealer (gw_bridge_t *self, zsock_t *dealer)
{
    for (int i = 0; i < S_DRAIN_MAX && (zsock_events (dealer) & ZMQ_POLLIN); i++) {
        zmsg_t *msg = NULL;
        envelope_t env;
        int rc = envelope_recv (dealer, 0, NULL, &msg, &env);
        if (rc == -1)
            return;
        if (rc == -2) {
            log_warn (NULL, NULL, "bridge: malformed message from broker dropped");
            continue;
        }
        if (streq (env.type, "ctl.pong"))
            atomic_store (&self->last_pong, (long long) zclock_mono ());
        else
        if (strncmp (env.type, "reply.", 6) == 0)
            s_post (self, env.causation_id, env.type, env.body, env.body_size);
        else
            log_debug (env.correlation_id, env.key, "bridge: unexpected %s from broker ignored", env.type);
        zmsg_destroy (&msg);
    }
}

static void
s_actor (zsock_t *pipe, void *args)
{
    gw_bridge_t *self = (gw_bridge_t *) args;
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    if (!dealer) {
        self->start_rc = -1;
        zsock_signal (pipe, 0);
        return;
    }
    zsock_set_immediate (dealer, 1);
    zsock_set_linger (dealer, 0);
    zsock_set_sndhwm (dealer, S_PIPE_HWM);
    zsock_set_rcvhwm (dealer, S_PIPE_HWM);
    if (zsock_connect (dealer, "%s", self->endpoint) != 0) {
        log_error (NULL, NULL, "bridge: cannot connect to %s", self->endpoint);
        zsock_destroy (&dealer);
        self->start_rc = -1;
        zsock_signal (pipe, 0);
        return;
    }
    self->start_rc = 0;
    zsock_signal (pipe, 0);

    uint64_t pings = 0;
    int64_t next_ping = zclock_mono ();
    int terminated = 0;
    while (!terminated) {
        int64_t now = zclock_mono ();
        if (now >= next_ping) {
            s_send_ping (dealer, &pings);
            next_ping = now + S_PING_MS;
        }
        zmq_pollitem_t items [] = {
            { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
            { zsock_resolve (dealer), 0, ZMQ_POLLIN, 0 }
        };
        if (zmq_poll (items, 2, (long) (next_ping - now)) == -1) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (items [0].revents & ZMQ_POLLIN)
            terminated = s_handle_pipe (self, pipe, dealer);
        if (!terminated && (items [1].revents & ZMQ_POLLIN))
            s_handle_dealer (self, dealer);
    }
    zsock_destroy (&dealer);
}

/* Loop thread: delivers the replies the actor posted. */
static void
s_on_replies (h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    gw_bridge_t *self = H2O_STRUCT_FROM_MEMBER (gw_bridge_t, receiver, receiver);
    while (!h2o_linklist_is_empty (messages)) {
        s_reply_t *reply = H2O_STRUCT_FROM_MEMBER (s_reply_t, super.link, messages->next);
        h2o_linklist_unlink (&reply->super.link);
        self->reply_fn (self->reply_arg, reply->cause, reply->type, reply->body, reply->body_size);
        free (reply);
    }
}

gw_bridge_t *
gw_bridge_new (const char *endpoint, h2o_multithread_queue_t *queue,
               gw_bridge_reply_fn *reply_fn, void *reply_arg)
{
    if (!endpoint || !queue || !reply_fn)
        return NULL;
    gw_bridge_t *self = calloc (1, sizeof (gw_bridge_t));
    if (!self)
        return NULL;
    self->endpoint = strdup (endpoint);
    if (!self->endpoint)
        goto fail;
    self->queue = queue;
    self->reply_fn = reply_fn;
    self->reply_arg = reply_arg;
    atomic_init (&self->last_pong, 0);
    h2o_multithread_register_receiver (queue, &self->receiver, s_on_replies);
    self->registered = 1;

    /* The actor thread must not take SIGINT/SIGTERM: they belong to the loop thread,
     * whose epoll_wait they interrupt so that shutdown is prompt. The new thread
     * inherits this mask; ours is restored right after. The pipe HWM is raised for
     * this one actor so bursts of commands queue instead of failing. */
    sigset_t block, saved;
    sigemptyset (&block);
    sigaddset (&block, SIGINT);
    sigaddset (&block, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &block, &saved);
    size_t hwm = zsys_pipehwm ();
    zsys_set_pipehwm (S_PIPE_HWM);
    self->actor = zactor_new (s_actor, self);
    zsys_set_pipehwm (hwm);
    pthread_sigmask (SIG_SETMASK, &saved, NULL);
    if (!self->actor || self->start_rc != 0)
        goto fail;
    return self;
fail:
    gw_bridge_destroy (&self);
    return NULL;
}

void
gw_bridge_destroy (gw_bridge_t **self_p)
{
    if (self_p && *self_p) {
        gw_bridge_t *self = *self_p;
        zactor_destroy (&self->actor);
        if (self->registered) {
            /* The actor has stopped: nobody else touches the receiver now. Replies it
             * posted that the loop never ran are freed here, undelivered. */
            while (!h2o_linklist_is_empty (&self->receiver._messages)) {
                s_reply_t *reply = H2O_STRUCT_FROM_MEMBER (s_reply_t, super.link,
                                                           self->receiver._messages.next);
                h2o_linklist_unlink (&reply->super.link);
                free (reply);
            }
            h2o_multithread_unregister_receiver (self->queue, &self->receiver);
        }
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

int
gw_bridge_send (gw_bridge_t *self, const char *type, const char *command_id,
                const char *key, const char *correlation_id, const char *traceparent,
                const char *body, size_t body_size)
{
    envelope_t env;
    envelope_init (&env, type, command_id);
    envelope_set (env.key, sizeof env.key, key);
    envelope_set (env.traceparent, sizeof env.traceparent, traceparent ? traceparent : "");
    envelope_set (env.correlation_id, sizeof env.correlation_id, correlation_id);
    env.body = body;
    env.body_size = body_size;
    zframe_t *frame = envelope_encode (&env);
    if (!frame)
        return -1;
    void *sock = zactor_resolve (self->actor);
    int rc = -1;
    /* Once the first part of a multipart message is accepted, ZeroMQ accepts the
     * rest, so a DONTWAIT failure can only happen on the first part. */
    if (zmq_send (sock, command_id, strlen (command_id), ZMQ_SNDMORE | ZMQ_DONTWAIT) != -1
    &&  zmq_send (sock, zframe_data (frame), zframe_size (frame), 0) != -1)
        rc = 0;
    zframe_destroy (&frame);
    return rc;
}

int
gw_bridge_broker_alive (gw_bridge_t *self)
{
    long long last = atomic_load (&self->last_pong);
    return last != 0 && zclock_mono () - last < S_ALIVE_MS;
}
