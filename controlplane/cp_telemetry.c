/* controlplane/cp_telemetry.c - Telemetry service: dedupe, apply, persist, acknowledge. */
#define SY_LOG_MODULE "telemetry"

#include "cp_telemetry.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_spend.h"
#include "cp_stats.h"
#include "sy_grpc.h"
#include "sy_log.h"
#include "sy_util.h"

/* One open stream. */
struct session {
    struct sy_grpc_call *call; /* our reference */
    char *node;                /* NULL until the first report */
    char *boot_id;
    uint64_t applied; /* highest seq applied or found already applied */
    uint64_t acked;   /* highest seq acknowledged */
    struct session *next;
};

struct cp_telemetry {
    struct cp_stats *stats;
    struct cp_spend *spend;
    cp_feedback_fn feedback_fn;
    void *feedback_arg;

    pthread_mutex_t lock; /* sessions */
    struct session *sessions;

    pthread_t flusher;
    pthread_mutex_t flush_lock;
    pthread_cond_t flush_cond;
    bool stopping;
};

static int64_t wall_ms(void)
{
    return (int64_t)(sy_wall_us() / 1000);
}

static void send_ack(struct session *s, uint64_t seq)
{
    Switchyard__V1__TelemetryAck ack = SWITCHYARD__V1__TELEMETRY_ACK__INIT;
    uint8_t buf[128];
    size_t len;

    ack.boot_id = s->boot_id;
    ack.acked_seq = seq;
    len = switchyard__v1__telemetry_ack__get_packed_size(&ack);
    if (len > sizeof(buf))
        return; /* a boot id longer than any proxy sends */
    switchyard__v1__telemetry_ack__pack(&ack, buf);
    if (sy_grpc_call_send(s->call, buf, len) == 0)
        s->acked = seq;
}

static bool node_has_other_session(struct cp_telemetry *t, const struct session *self)
{
    for (struct session *s = t->sessions; s; s = s->next) {
        if (s != self && s->node && strcmp(s->node, self->node) == 0)
            return true;
    }
    return false;
}

static void on_open(struct sy_grpc_call *call, void *arg)
{
    struct cp_telemetry *t = arg;
    struct session *s = sy_xcalloc(1, sizeof(*s));

    s->call = sy_grpc_call_ref(call);
    pthread_mutex_lock(&t->lock);
    s->next = t->sessions;
    t->sessions = s;
    sy_grpc_call_set_user(call, s);
    pthread_mutex_unlock(&t->lock);
}

static void on_message(struct sy_grpc_call *call, const uint8_t *data, size_t len, void *arg)
{
    struct cp_telemetry *t = arg;
    Switchyard__V1__TelemetryReport *rep =
        switchyard__v1__telemetry_report__unpack(NULL, len, data);
    struct session *s = sy_grpc_call_get_user(call);
    int rc;

    if (!rep || !rep->node || !rep->node->id || !rep->node->id[0] || !rep->boot_id[0] ||
        rep->seq == 0) {
        sy_warn("%s: a TelemetryReport that does not unpack or lacks node.id, boot_id or seq; "
                "closing the stream",
                sy_grpc_call_peer(call));
        sy_grpc_call_close(call, SY_GRPC_INVALID_ARGUMENT,
                           "malformed TelemetryReport (node.id, boot_id and seq are required)");
        if (rep)
            switchyard__v1__telemetry_report__free_unpacked(rep, NULL);
        return;
    }
    pthread_mutex_lock(&t->lock);
    if (s && !s->node) {
        s->node = sy_xstrdup(rep->node->id);
        s->boot_id = sy_xstrdup(rep->boot_id);
        sy_info("proxy %s streams telemetry from %s (boot %s, from seq %" PRIu64 ")", s->node,
                sy_grpc_call_peer(call), s->boot_id, rep->seq);
        cp_stats_node_connected(t->stats, s->node, true);
    } else if (s &&
               (strcmp(s->node, rep->node->id) != 0 || strcmp(s->boot_id, rep->boot_id) != 0)) {
        pthread_mutex_unlock(&t->lock);
        sy_grpc_call_close(call, SY_GRPC_INVALID_ARGUMENT,
                           "node.id and boot_id must not change within a stream");
        switchyard__v1__telemetry_report__free_unpacked(rep, NULL);
        return;
    }
    pthread_mutex_unlock(&t->lock);

    rc = cp_spend_apply(t->spend, rep);
    if (rc < 0) {
        sy_warn("cannot place telemetry from %s in the spend ledgers (%s): closing the stream "
                "so that it is sent again",
                rep->node->id, strerror(-rc));
        sy_grpc_call_close(call, SY_GRPC_UNAVAILABLE, "the control plane's store is unavailable");
        switchyard__v1__telemetry_report__free_unpacked(rep, NULL);
        return;
    }
    if (rc == 0) {
        cp_stats_count_duplicate(t->stats);
    } else {
        cp_stats_apply(t->stats, rep, wall_ms());
        for (size_t i = 0; t->feedback_fn && i < rep->n_feedback; i++)
            t->feedback_fn(t->feedback_arg, rep->feedback[i], rep->node->id);
    }
    pthread_mutex_lock(&t->lock);
    if (s && rep->seq > s->applied)
        s->applied = rep->seq;
    pthread_mutex_unlock(&t->lock);
    switchyard__v1__telemetry_report__free_unpacked(rep, NULL);
}

static void on_close(struct sy_grpc_call *call, int status, const char *detail, void *arg)
{
    struct cp_telemetry *t = arg;
    struct session *s = sy_grpc_call_get_user(call), **pp;

    (void)status;
    (void)detail;
    if (!s)
        return;
    pthread_mutex_lock(&t->lock);
    for (pp = &t->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    if (s->node && !node_has_other_session(t, s)) {
        cp_stats_node_connected(t->stats, s->node, false);
        sy_info("proxy %s stopped streaming telemetry", s->node);
    }
    pthread_mutex_unlock(&t->lock);
    sy_grpc_call_set_user(call, NULL);
    sy_grpc_call_unref(s->call);
    free(s->node);
    free(s->boot_id);
    free(s);
}

static const struct sy_grpc_stream_ops telemetry_ops = {
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
};

/* Flush, then acknowledge what was applied before it. */
static void flush_and_ack(struct cp_telemetry *t)
{
    struct pending {
        struct session *s;
        uint64_t seq;
    } *todo = NULL;
    size_t n = 0, cap = 0;
    int rc;

    pthread_mutex_lock(&t->lock);
    for (struct session *s = t->sessions; s; s = s->next) {
        if (s->applied > s->acked) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                todo = sy_xrealloc(todo, cap * sizeof(*todo));
            }
            todo[n].s = s;
            todo[n++].seq = s->applied;
        }
    }
    pthread_mutex_unlock(&t->lock);
    rc = cp_spend_flush(t->spend);
    if (rc < 0) {
        sy_warn("cannot write spend ledgers (%s): acknowledgements wait", strerror(-rc));
        free(todo);
        return;
    }
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < n; i++) {
        /* The session may have closed meanwhile: only ack those still listed. */
        for (struct session *s = t->sessions; s; s = s->next) {
            if (s == todo[i].s && todo[i].seq > s->acked) {
                send_ack(s, todo[i].seq);
                break;
            }
        }
    }
    pthread_mutex_unlock(&t->lock);
    free(todo);
}

static void *flusher_main(void *arg)
{
    struct cp_telemetry *t = arg;
    uint64_t last_trim = sy_now_us();
    struct timespec ts;

    pthread_mutex_lock(&t->flush_lock);
    while (!t->stopping) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += CP_TELEMETRY_FLUSH_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&t->flush_cond, &t->flush_lock, &ts);
        if (t->stopping)
            break;
        pthread_mutex_unlock(&t->flush_lock);
        flush_and_ack(t);
        if (sy_now_us() - last_trim > 3600ull * 1000000) {
            cp_spend_trim(t->spend, wall_ms());
            last_trim = sy_now_us();
        }
        pthread_mutex_lock(&t->flush_lock);
    }
    pthread_mutex_unlock(&t->flush_lock);
    return NULL;
}

struct cp_telemetry *cp_telemetry_new(struct cp_stats *stats, struct cp_spend *spend)
{
    struct cp_telemetry *t = sy_xcalloc(1, sizeof(*t));
    pthread_condattr_t ca;

    t->stats = stats;
    t->spend = spend;
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->flush_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->flush_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t->flusher, NULL, flusher_main, t) != 0) {
        sy_error("cannot start the telemetry flusher");
        pthread_cond_destroy(&t->flush_cond);
        pthread_mutex_destroy(&t->flush_lock);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
    }
    return t;
}

void cp_telemetry_set_feedback(struct cp_telemetry *t, cp_feedback_fn fn, void *arg)
{
    t->feedback_fn = fn;
    t->feedback_arg = arg;
}

int cp_telemetry_register(struct cp_telemetry *t, struct sy_grpc_server *srv)
{
    return sy_grpc_server_add_stream(srv, CP_TELEMETRY_METHOD, &telemetry_ops, t);
}

void cp_telemetry_free(struct cp_telemetry *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->flush_lock);
    t->stopping = true;
    pthread_cond_signal(&t->flush_cond);
    pthread_mutex_unlock(&t->flush_lock);
    pthread_join(t->flusher, NULL);
    if (cp_spend_flush(t->spend) < 0)
        sy_warn("spend not written at shutdown: the proxies will send it again");
    while (t->sessions) { /* none after the server is freed; defensive */
        struct session *s = t->sessions;
        t->sessions = s->next;
        sy_grpc_call_unref(s->call);
        free(s->node);
        free(s->boot_id);
        free(s);
    }
    pthread_cond_destroy(&t->flush_cond);
    pthread_mutex_destroy(&t->flush_lock);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
