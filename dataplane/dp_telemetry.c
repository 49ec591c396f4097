/* dataplane/dp_telemetry.c - per-interval reports to the control plane, with a backlog that
 * survives outages. See dp_telemetry.h for the contract. */
#define SY_LOG_MODULE "telemetry"

#include "dp_telemetry.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "dp_health.h"
#include "dp_metrics.h"
#include "dp_proxy.h"
#include "dp_snapshot.h"
#include "dp_stats.h"
#include "switchyard/v1/telemetry.pb-c.h"
#include "sy_grpc.h"
#include "sy_log.h"
#include "sy_util.h"

#define DP_TELEMETRY_METHOD "/switchyard.v1.Telemetry/StreamTelemetry"
#define DP_BACKOFF_BASE_MS 200
#define DP_BACKOFF_MAX_MS 5000
#define DP_BUILD_VERSION "switchyard-proxy/0.1.0"

struct report {
    uint64_t seq;
    uint8_t *buf;
    size_t len;
};

struct dp_telemetry {
    struct dp_proxy *px;
    struct sy_grpc_client *client;
    pthread_t thread;
    uint32_t interval_ms;
    char boot_id[33];

    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;             /* guarded by lock */
    struct sy_grpc_call *call; /* guarded by lock: the open stream, or NULL */
    bool stream_closed;        /* guarded by lock */
    struct report *backlog;    /* guarded by lock: a ring of unacknowledged reports */
    size_t cap, head, count;
    uint64_t acked;     /* guarded by lock: highest acknowledged seq */
    uint64_t sent_upto; /* guarded by lock: highest seq queued on the current stream */

    /* Telemetry thread only. */
    struct dp_stats_view *prev; /* the last cut, NULL before the first */
    int64_t prev_ms;            /* when it was cut (the next report's start) */
    uint64_t next_seq;
    uint64_t coalesced;

    pthread_mutex_t fb_lock; /* the feedback waiting for the next report */
    Switchyard__V1__Feedback **fb;
    size_t n_fb;
};

/* ---- building a report ---------------------------------------------------------------- */

struct build {
    Switchyard__V1__SeriesDelta **series;
    size_t n_series, cap_series;
    Switchyard__V1__UpstreamErrorDelta **errs;
    size_t n_errs, cap_errs;
    Switchyard__V1__TagDelta **tags;
    size_t n_tags, cap_tags;
};

static void *grow(void *arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : 16;
    return sy_xrealloc(arr, *cap * size);
}

static Switchyard__V1__Histogram *hist_msg(const struct sy_hist *h)
{
    Switchyard__V1__Histogram *m;
    size_t n = sy_hist_to_sparse(h, NULL, NULL, 0);

    if (n == 0)
        return NULL;
    m = sy_xmalloc(sizeof(*m));
    switchyard__v1__histogram__init(m);
    m->index = sy_xmalloc(n * sizeof(*m->index));
    m->count = sy_xmalloc(n * sizeof(*m->count));
    m->n_index = m->n_count = sy_hist_to_sparse(h, m->index, m->count, n);
    m->sum = sy_hist_sum(h);
    m->min = sy_hist_min(h);
    m->max = sy_hist_max(h);
    return m;
}

static void hist_msg_free(Switchyard__V1__Histogram *m)
{
    if (!m)
        return;
    free(m->index);
    free(m->count);
    free(m);
}

static void on_row(const struct dp_stats_row *d, void *arg)
{
    struct build *b = arg;
    Switchyard__V1__SeriesDelta *s = sy_xmalloc(sizeof(*s));

    switchyard__v1__series_delta__init(s);
    s->tenant = sy_xstrdup(d->key.tenant);
    s->route = sy_xstrdup(d->key.route);
    s->provider = sy_xstrdup(d->key.provider);
    s->model = sy_xstrdup(d->key.model);
    s->arm = sy_xstrdup(d->key.arm);
    s->status_class = (char *)dp_status_class_name(d->key.status_class);
    s->stream = d->key.stream;
    s->requests = d->requests;
    s->prompt_tokens = d->prompt_tokens;
    s->completion_tokens = d->completion_tokens;
    s->cached_tokens = d->cached_tokens;
    s->cost_nusd = d->cost_nusd;
    s->latency_us = hist_msg(&d->latency);
    s->ttft_us = hist_msg(&d->ttft);
    b->series = grow(b->series, &b->cap_series, b->n_series, sizeof(*b->series));
    b->series[b->n_series++] = s;
}

static void on_err(const struct dp_stats_err_row *d, void *arg)
{
    struct build *b = arg;
    Switchyard__V1__UpstreamErrorDelta *e = sy_xmalloc(sizeof(*e));

    switchyard__v1__upstream_error_delta__init(e);
    e->provider = sy_xstrdup(d->provider);
    e->code = sy_xstrdup(d->code);
    e->count = d->count;
    b->errs = grow(b->errs, &b->cap_errs, b->n_errs, sizeof(*b->errs));
    b->errs[b->n_errs++] = e;
}

static void on_tag(const struct dp_stats_tag_row *d, void *arg)
{
    struct build *b = arg;
    Switchyard__V1__TagDelta *t = sy_xmalloc(sizeof(*t));

    switchyard__v1__tag_delta__init(t);
    t->tenant = sy_xstrdup(d->tenant);
    t->tag = sy_xstrdup(d->tag);
    t->requests = d->requests;
    t->prompt_tokens = d->prompt_tokens;
    t->completion_tokens = d->completion_tokens;
    t->cost_nusd = d->cost_nusd;
    b->tags = grow(b->tags, &b->cap_tags, b->n_tags, sizeof(*b->tags));
    b->tags[b->n_tags++] = t;
}

static void build_free(struct build *b)
{
    for (size_t i = 0; i < b->n_series; i++) {
        Switchyard__V1__SeriesDelta *s = b->series[i];
        free(s->tenant);
        free(s->route);
        free(s->provider);
        free(s->model);
        free(s->arm);
        hist_msg_free(s->latency_us);
        hist_msg_free(s->ttft_us);
        free(s);
    }
    free(b->series);
    for (size_t i = 0; i < b->n_errs; i++) {
        free(b->errs[i]->provider);
        free(b->errs[i]->code);
        free(b->errs[i]);
    }
    free(b->errs);
    for (size_t i = 0; i < b->n_tags; i++) {
        free(b->tags[i]->tenant);
        free(b->tags[i]->tag);
        free(b->tags[i]);
    }
    free(b->tags);
}

static const char *breaker_name(int state)
{
    switch (state) {
    case DP_BREAKER_OPEN:
        return "open";
    case DP_BREAKER_HALF_OPEN:
        return "half_open";
    default:
        return "closed";
    }
}

/* Each model of the policy being served, with the health of its target (the breaker is per
 * provider and upstream model, shared by the policy models that map to it). */
static Switchyard__V1__TargetState **targets_msg(const struct dp_snapshot *snap, size_t *n)
{
    const struct sy_policy *pol = snap ? snap->policy : NULL;
    Switchyard__V1__TargetState **out;

    *n = 0;
    if (!pol || !snap->health)
        return NULL;
    out = sy_xcalloc(pol->n_models ? pol->n_models : 1, sizeof(*out));
    for (size_t i = 0; i < pol->n_models; i++) {
        const struct dp_target_health *h = snap->health[i];
        Switchyard__V1__TargetState *m;

        if (!h)
            continue;
        m = sy_xmalloc(sizeof(*m));
        switchyard__v1__target_state__init(m);
        m->provider = sy_xstrdup(pol->providers[pol->models[i].provider].name);
        m->model = sy_xstrdup(pol->models[i].name);
        m->state = (char *)breaker_name(atomic_load_explicit(&h->state, memory_order_relaxed));
        m->latency_ewma_us = atomic_load_explicit(&h->latency_ewma_us, memory_order_relaxed);
        m->ttft_ewma_us = atomic_load_explicit(&h->ttft_ewma_us, memory_order_relaxed);
        m->in_flight = atomic_load_explicit(&h->in_flight, memory_order_relaxed);
        out[(*n)++] = m;
    }
    return out;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void feedback_free(Switchyard__V1__Feedback *f)
{
    free(f->request_id);
    free(f->thumbs);
    free(f->score);
    free(f->metric);
    free(f->comment);
    free(f);
}

/* Cuts the interval since the last cut into a report and appends it to the backlog. Returns
 * false when the workers' stats could not be merged (out of memory): nothing is cut then. */
static bool cut(struct dp_telemetry *t)
{
    Switchyard__V1__TelemetryReport rep = SWITCHYARD__V1__TELEMETRY_REPORT__INIT;
    Switchyard__V1__Node node = SWITCHYARD__V1__NODE__INIT;
    struct dp_proxy *px = t->px;
    struct build b = {0};
    struct dp_stats_view *cur = dp_metrics_collect(px);
    struct dp_snapshot *snap;
    Switchyard__V1__TargetState **targets;
    size_t n_targets;
    char version[24] = "";
    struct report r;
    int64_t end = now_ms();

    if (!cur || dp_stats_view_diff(cur, t->prev, on_row, on_err, &b) < 0) {
        sy_warn("out of memory while cutting a telemetry interval");
        dp_stats_view_free(cur);
        build_free(&b);
        return false;
    }
    dp_stats_view_diff_tags(cur, t->prev, on_tag, &b);
    snap = dp_snapshot_get(&px->holder);
    if (snap && snap->policy->version > 0)
        snprintf(version, sizeof(version), "%" PRId64, snap->policy->version);
    targets = targets_msg(snap, &n_targets);
    dp_snapshot_unref(snap);

    node.id = (char *)px->opt.node_id;
    node.zone = (char *)(px->opt.zone ? px->opt.zone : "");
    node.build_version = (char *)DP_BUILD_VERSION;
    node.listen_address = px->bound;
    rep.node = &node;
    rep.boot_id = t->boot_id;
    rep.seq = ++t->next_seq;
    rep.start_unix_ms = t->prev_ms;
    rep.end_unix_ms = end;
    rep.policy_version = version;
    rep.in_flight = cur->in_flight > 0 ? cur->in_flight : 0;
    rep.series = b.series;
    rep.n_series = b.n_series;
    rep.upstream_errors = b.errs;
    rep.n_upstream_errors = b.n_errs;
    rep.tags = b.tags;
    rep.n_tags = b.n_tags;
    rep.targets = targets;
    rep.n_targets = n_targets;
    rep.coalesced_intervals = t->coalesced;
    rep.stats_overflow = cur->dropped;
    rep.interval_ms = t->interval_ms;
    pthread_mutex_lock(&t->fb_lock);
    rep.feedback = t->fb;
    rep.n_feedback = t->n_fb;
    t->fb = NULL;
    t->n_fb = 0;
    pthread_mutex_unlock(&t->fb_lock);

    r.seq = rep.seq;
    r.len = switchyard__v1__telemetry_report__get_packed_size(&rep);
    r.buf = sy_xmalloc(r.len ? r.len : 1);
    switchyard__v1__telemetry_report__pack(&rep, r.buf);

    for (size_t i = 0; i < rep.n_feedback; i++)
        feedback_free(rep.feedback[i]);
    free(rep.feedback);
    for (size_t i = 0; i < n_targets; i++) {
        free(targets[i]->provider);
        free(targets[i]->model);
        free(targets[i]);
    }
    free(targets);
    build_free(&b);
    dp_stats_view_free(t->prev);
    t->prev = cur;
    t->prev_ms = end;

    pthread_mutex_lock(&t->lock);
    if (t->count == t->cap) { /* only the final cut gets here: make room */
        t->backlog = sy_xrealloc(t->backlog, (t->cap + 1) * sizeof(*t->backlog));
        /* Unwrap the ring so that the new slot follows the newest report. */
        memmove(&t->backlog[t->head + 1], &t->backlog[t->head],
                (t->cap - t->head) * sizeof(*t->backlog));
        t->head = (t->head + 1) % (t->cap + 1);
        t->cap++;
    }
    t->backlog[(t->head + t->count) % t->cap] = r;
    t->count++;
    pthread_mutex_unlock(&t->lock);
    return true;
}

/* ---- the stream ----------------------------------------------------------------------- */

/* Queues on <call> every backlogged report after t->sent_upto. Lock held. */
static void send_pending(struct dp_telemetry *t, struct sy_grpc_call *call)
{
    for (size_t i = 0; call && i < t->count; i++) {
        const struct report *r = &t->backlog[(t->head + i) % t->cap];
        if (r->seq <= t->sent_upto)
            continue;
        if (sy_grpc_call_send(call, r->buf, r->len) < 0)
            return; /* the stream ended; on_close follows */
        t->sent_upto = r->seq;
    }
}

static void on_message(struct sy_grpc_call *call, const uint8_t *data, size_t len, void *arg)
{
    struct dp_telemetry *t = arg;
    Switchyard__V1__TelemetryAck *ack = switchyard__v1__telemetry_ack__unpack(NULL, len, data);
    (void)call;

    if (!ack) {
        sy_warn("the control plane sent a message that is not a TelemetryAck");
        return;
    }
    pthread_mutex_lock(&t->lock);
    /* An ack beyond what this stream sent cannot be ours (a control plane's mistake): taking
     * it would drop reports it never received. */
    if (strcmp(ack->boot_id, t->boot_id) == 0 && ack->acked_seq > t->acked &&
        ack->acked_seq <= t->sent_upto) {
        t->acked = ack->acked_seq;
        while (t->count > 0 && t->backlog[t->head].seq <= t->acked) {
            free(t->backlog[t->head].buf);
            t->head = (t->head + 1) % t->cap;
            t->count--;
        }
        pthread_cond_broadcast(&t->cond);
    }
    pthread_mutex_unlock(&t->lock);
    switchyard__v1__telemetry_ack__free_unpacked(ack, NULL);
}

static void on_close(struct sy_grpc_call *call, int status, const char *detail, void *arg)
{
    struct dp_telemetry *t = arg;
    (void)call;

    pthread_mutex_lock(&t->lock);
    if (!t->stopping)
        sy_warn("telemetry stream to %s ended (%d %s); %zu reports kept for the next one",
                t->px->opt.control_plane, status, detail ? detail : "", t->count);
    t->stream_closed = true;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static const struct sy_grpc_stream_ops telemetry_ops = {
    .on_message = on_message,
    .on_close = on_close,
};

static void deadline_at(struct timespec *ts, uint64_t mono_ms)
{
    /* The condition variable runs on CLOCK_MONOTONIC (see dp_telemetry_start). */
    ts->tv_sec = (time_t)(mono_ms / 1000);
    ts->tv_nsec = (long)((mono_ms % 1000) * 1000000);
}

static uint64_t mono_ms(void)
{
    return sy_now_us() / 1000;
}

/* Opens a stream and queues the backlog on it. Lock held on entry and exit. */
static void open_stream(struct dp_telemetry *t)
{
    struct sy_grpc_call *call;

    t->stream_closed = false;
    pthread_mutex_unlock(&t->lock);
    call = sy_grpc_client_open_stream(t->client, DP_TELEMETRY_METHOD, &telemetry_ops, t);
    pthread_mutex_lock(&t->lock);
    t->call = call;
    t->sent_upto = t->acked;
    if (!call)
        t->stream_closed = true;
    else
        send_pending(t, call);
}

/* Drops the current stream. Lock held on entry and exit. */
static void drop_stream(struct dp_telemetry *t, const char *why)
{
    struct sy_grpc_call *call = t->call;

    t->call = NULL;
    pthread_mutex_unlock(&t->lock);
    if (call) {
        sy_grpc_call_close(call, SY_GRPC_CANCELLED, why);
        sy_grpc_call_unref(call);
    }
    pthread_mutex_lock(&t->lock);
}

static void *telemetry_main(void *arg)
{
    struct dp_telemetry *t = arg;
    uint64_t next_tick = mono_ms() + t->interval_ms, reconnect_at = 0, opened_at = 0;
    unsigned attempt = 0;
    struct timespec ts;

    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        uint64_t now = mono_ms(), wake;

        if (!t->call && now >= reconnect_at) {
            open_stream(t);
            opened_at = now;
            if (!t->call)
                reconnect_at =
                    now + sy_backoff_ms(attempt++, DP_BACKOFF_BASE_MS, DP_BACKOFF_MAX_MS);
        }
        if (t->call && t->stream_closed) {
            drop_stream(t, "reconnecting");
            if (mono_ms() - opened_at > 10000)
                attempt = 0;
            reconnect_at =
                mono_ms() + sy_backoff_ms(attempt++, DP_BACKOFF_BASE_MS, DP_BACKOFF_MAX_MS);
            continue;
        }
        if (now >= next_tick) {
            bool room = t->count < t->cap;
            pthread_mutex_unlock(&t->lock);
            if (room)
                cut(t);
            else
                t->coalesced++; /* the next cut covers this interval too */
            pthread_mutex_lock(&t->lock);
            send_pending(t, t->call);
            next_tick += t->interval_ms;
            if (next_tick <= mono_ms())
                next_tick = mono_ms() + t->interval_ms;
            continue;
        }
        wake = next_tick;
        if (!t->call && reconnect_at < wake)
            wake = reconnect_at;
        deadline_at(&ts, wake);
        pthread_cond_timedwait(&t->cond, &t->lock, &ts);
    }

    /* Shutdown: the workers have stopped; send the last interval too. */
    pthread_mutex_unlock(&t->lock);
    cut(t);
    pthread_mutex_lock(&t->lock);
    if (!t->call || t->stream_closed) {
        drop_stream(t, "reconnecting");
        open_stream(t);
    } else {
        send_pending(t, t->call);
    }
    deadline_at(&ts, mono_ms() + DP_TELEMETRY_FINAL_MS);
    while (t->count > 0 && !t->stream_closed) {
        if (pthread_cond_timedwait(&t->cond, &t->lock, &ts) == ETIMEDOUT)
            break;
    }
    if (t->count > 0)
        sy_warn("stopping with %zu telemetry reports unacknowledged (up to seq %" PRIu64 ")",
                t->count, t->next_seq);
    drop_stream(t, "proxy shutting down");
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

struct dp_telemetry *dp_telemetry_start(struct dp_proxy *px, uint32_t interval_ms, size_t backlog)
{
    struct dp_telemetry *t = sy_xcalloc(1, sizeof(*t));
    pthread_condattr_t ca;
    uint8_t rnd[16];
    char *err = NULL;

    t->px = px;
    t->interval_ms = interval_ms ? interval_ms : DP_TELEMETRY_INTERVAL_MS;
    t->cap = backlog ? backlog : DP_TELEMETRY_BACKLOG;
    t->backlog = sy_xcalloc(t->cap, sizeof(*t->backlog));
    t->prev_ms = now_ms();
    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
        uint64_t a = sy_now_us(), b = (uint64_t)now_ms() ^ (uint64_t)(uintptr_t)t;
        memcpy(rnd, &a, 8);
        memcpy(rnd + 8, &b, 8);
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(t->boot_id + 2 * i, 3, "%02x", rnd[i]);
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->fb_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    t->client = sy_grpc_client_new(px->opt.control_plane, &err);
    if (!t->client) {
        sy_error("telemetry to %s: %s", px->opt.control_plane, err ? err : "?");
        free(err);
        goto out_free;
    }
    if (pthread_create(&t->thread, NULL, telemetry_main, t) != 0) {
        sy_error("cannot start the telemetry thread");
        goto out_free;
    }
    sy_info("telemetry every %u ms to %s (backlog %zu reports, boot %s)", t->interval_ms,
            px->opt.control_plane, t->cap, t->boot_id);
    return t;

out_free:
    sy_grpc_client_free(t->client);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    pthread_mutex_destroy(&t->fb_lock);
    free(t->backlog);
    free(t);
    return NULL;
}

void dp_telemetry_stop(struct dp_telemetry *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    sy_grpc_client_free(t->client);
    for (size_t i = 0; i < t->count; i++)
        free(t->backlog[(t->head + i) % t->cap].buf);
    free(t->backlog);
    for (size_t i = 0; i < t->n_fb; i++)
        feedback_free(t->fb[i]);
    free(t->fb);
    dp_stats_view_free(t->prev);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    pthread_mutex_destroy(&t->fb_lock);
    free(t);
}

int dp_telemetry_add_feedback(struct dp_telemetry *t, const struct dp_feedback *fb)
{
    Switchyard__V1__Feedback *m;

    pthread_mutex_lock(&t->fb_lock);
    if (t->n_fb >= DP_TELEMETRY_FEEDBACK_MAX) {
        pthread_mutex_unlock(&t->fb_lock);
        return -ENOSPC;
    }
    m = sy_xmalloc(sizeof(*m));
    switchyard__v1__feedback__init(m);
    m->request_id = sy_xstrdup(fb->request_id);
    m->thumbs = sy_xstrdup(fb->thumbs ? fb->thumbs : "");
    if (fb->score >= 0) {
        m->score = sy_xmalloc(sizeof(*m->score));
        switchyard__v1__double_value__init(m->score);
        m->score->value = fb->score;
    }
    m->metric = sy_xstrdup(fb->metric ? fb->metric : "");
    m->comment = sy_xstrdup(fb->comment ? fb->comment : "");
    m->received_unix_ms = fb->received_unix_ms;
    if ((t->n_fb & (t->n_fb - 1)) == 0) /* 0, 1, 2, 4, ...: grow at powers of two */
        t->fb = sy_xrealloc(t->fb, (t->n_fb ? t->n_fb * 2 : 1) * sizeof(*t->fb));
    t->fb[t->n_fb++] = m;
    pthread_mutex_unlock(&t->fb_lock);
    return 0;
}
