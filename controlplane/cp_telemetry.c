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
    uint64_t id;      /* unique per session: an address may be reused after a close */
    bool failed;      /* a report could not be placed: nothing after it may count */
    struct session *next;
};

struct cp_telemetry {
    struct cp_stats *stats;
    struct cp_spend *spend;
    cp_feedback_fn feedback_fn;
    void *feedback_arg;

    pthread_mutex_t lock; /* sessions */
    struct session *sessions;
    uint64_t next_session_id;

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
    s->id = ++t->next_session_id;
    s->next = t->sessions;
    t->sessions = s;
    sy_grpc_call_set_user(call, s);
    pthread_mutex_unlock(&t->lock);
}

/* Names longer than any proxy sends (they cut at 127 bytes) are a peer's bug: refused
 * rather than carried into every view. */
static bool names_too_long(const Switchyard__V1__TelemetryReport *rep)
{
    if (strlen(rep->node->id) > CP_TELEMETRY_NAME_MAX || strlen(rep->boot_id) > 64)
        return true;
    for (size_t i = 0; i < rep->n_series; i++) {
        const Switchyard__V1__SeriesDelta *d = rep->series[i];
        const char *names[] = {d->tenant, d->route, d->provider, d->model, d->arm};
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            if (strlen(names[k]) > CP_TELEMETRY_NAME_MAX)
                return true;
    }
    for (size_t i = 0; i < rep->n_upstream_errors; i++)
        if (strlen(rep->upstream_errors[i]->provider) > CP_TELEMETRY_NAME_MAX ||
            strlen(rep->upstream_errors[i]->code) > CP_TELEMETRY_NAME_MAX)
            return true;
    for (size_t i = 0; i < rep->n_tags; i++)
        if (strlen(rep->tags[i]->tenant) > CP_TELEMETRY_NAME_MAX ||
            strlen(rep->tags[i]->tag) > CP_TELEMETRY_NAME_MAX)
            return true;
    for (size_t i = 0; i < rep->n_targets; i++)
        if (strlen(rep->targets[i]->provider) > CP_TELEMETRY_NAME_MAX ||
            strlen(rep->targets[i]->model) > CP_TELEMETRY_NAME_MAX)
            return true;
    return false;
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
    if (!s || names_too_long(rep)) {
        sy_grpc_call_close(call, SY_GRPC_INVALID_ARGUMENT,
                           "a name in the TelemetryReport is longer than 256 bytes");
        switchyard__v1__telemetry_report__free_unpacked(rep, NULL);
        return;
    }
    pthread_mutex_lock(&t->lock);
    if (s->failed) {
        /* The stream is closing: a report after one that failed must not overtake it. */
        pthread_mutex_unlock(&t->lock);
        switchyard__v1__telemetry_report__free_unpacked(rep, NULL);
        return;
    }
    if (!s->node) {
        s->node = sy_xstrdup(rep->node->id);
        s->boot_id = sy_xstrdup(rep->boot_id);
        sy_info("proxy %s streams telemetry from %s (boot %s, from seq %" PRIu64 ")", s->node,
                sy_grpc_call_peer(call), s->boot_id, rep->seq);
        cp_stats_node_connected(t->stats, s->node, true);
        /* Another replica may have counted this node's reports since we last did. */
        cp_spend_forget(t->spend, s->node);
    } else if (strcmp(s->node, rep->node->id) != 0 || strcmp(s->boot_id, rep->boot_id) != 0) {
        s->failed = true;
        pthread_mutex_unlock(&t->lock);
        sy_grpc_call_close(call, SY_GRPC_INVALID_ARGUMENT,
                           "node.id and boot_id must not change within a stream");
        switchyard__v1__telemetry_report__free_unpacked(rep, NULL);
        return;
    }
    pthread_mutex_unlock(&t->lock);

    /* Check, then the feedback (it must be stored before the report counts: a counted report
     * is never taken again), then count. */
    rc = cp_spend_check(t->spend, rep);
    if (rc > 0) {
        for (size_t i = 0; t->feedback_fn && i < rep->n_feedback && rc > 0; i++)
            if (t->feedback_fn(t->feedback_arg, rep->feedback[i], rep->node->id) < 0)
                rc = -EAGAIN;
        if (rc > 0)
            rc = cp_spend_apply(t->spend, rep);
    }
    if (rc < 0) {
        sy_warn("cannot place telemetry from %s (%s): closing the stream so that it is sent "
                "again",
                rep->node->id, rc == -EAGAIN ? "feedback not stored" : strerror(-rc));
        pthread_mutex_lock(&t->lock);
        s->failed = true;
        pthread_mutex_unlock(&t->lock);
        sy_grpc_call_close(call, SY_GRPC_UNAVAILABLE, "the control plane's store is unavailable");
        switchyard__v1__telemetry_report__free_unpacked(rep, NULL);
        return;
    }
    if (rc == 0)
        cp_stats_count_duplicate(t->stats);
    else
        cp_stats_apply(t->stats, rep, wall_ms());
    pthread_mutex_lock(&t->lock);
    if (rep->seq > s->applied)
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

/* Nodes whose ledgers could not be written in one flush. */
struct failures {
    char **nodes;
    bool *conflict;
    size_t n;
};

static void on_failed(void *arg, const char *node, int rc)
{
    struct failures *f = arg;

    f->nodes = sy_xrealloc(f->nodes, (f->n + 1) * sizeof(*f->nodes));
    f->conflict = sy_xrealloc(f->conflict, (f->n + 1) * sizeof(*f->conflict));
    f->nodes[f->n] = sy_xstrdup(node);
    f->conflict[f->n++] = rc == -EEXIST;
}

/* -1: written; 0: failed, retried; 1: another replica wrote it (the stream must restart). */
static int failure_of(const struct failures *f, const char *node)
{
    int r = -1;
    for (size_t i = 0; node && i < f->n; i++)
        if (strcmp(f->nodes[i], node) == 0)
            r = r == 1 || f->conflict[i] ? 1 : 0;
    return r;
}

/* Flush, then acknowledge what was applied before it, on each stream whose node's ledgers
 * were written. A node whose ledger another replica wrote in between has its streams
 * closed: its unacknowledged reports come again and count on the stored copy. */
static void flush_and_ack(struct cp_telemetry *t)
{
    struct pending {
        uint64_t id;
        uint64_t seq;
    } *todo = NULL;
    struct failures f = {0};
    struct sy_grpc_call **closing = NULL;
    size_t n = 0, cap = 0, n_closing = 0;
    int rc;

    pthread_mutex_lock(&t->lock);
    for (struct session *s = t->sessions; s; s = s->next) {
        if (s->applied > s->acked && !s->failed) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                todo = sy_xrealloc(todo, cap * sizeof(*todo));
            }
            todo[n].id = s->id;
            todo[n++].seq = s->applied;
        }
    }
    pthread_mutex_unlock(&t->lock);
    rc = cp_spend_flush(t->spend, on_failed, &f);
    if (rc < 0)
        sy_warn("cannot write the spend ledgers of %zu node(s) (%s): their acknowledgements wait",
                f.n, strerror(-rc));
    pthread_mutex_lock(&t->lock);
    for (struct session *s = t->sessions; s; s = s->next) {
        int fail = failure_of(&f, s->node);

        if (fail == 1 && !s->failed) {
            s->failed = true;
            closing = sy_xrealloc(closing, (n_closing + 1) * sizeof(*closing));
            closing[n_closing++] = sy_grpc_call_ref(s->call);
            continue;
        }
        if (fail == 0 || s->failed)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (todo[i].id == s->id && todo[i].seq > s->acked) {
                send_ack(s, todo[i].seq);
                break;
            }
        }
    }
    pthread_mutex_unlock(&t->lock);
    /* Outside the lock: closing may run on_close, which takes it. */
    for (size_t i = 0; i < n_closing; i++) {
        sy_grpc_call_close(closing[i], SY_GRPC_UNAVAILABLE,
                           "another control plane counted this node meanwhile; reconnect");
        sy_grpc_call_unref(closing[i]);
    }
    free(closing);
    for (size_t i = 0; i < f.n; i++)
        free(f.nodes[i]);
    free(f.nodes);
    free(f.conflict);
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
    if (cp_spend_flush(t->spend, NULL, NULL) < 0)
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
