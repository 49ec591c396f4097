/* dataplane/dp_chat.c - one model call: client -> provider(s) -> client, for chat
 * completions, legacy completions, embeddings and Anthropic-style messages.
 *
 * An exchange validates and routes the request into a plan (dp_router: ordered targets,
 * then fallbacks), then runs attempts: one upstream call each, through the target's
 * provider adapter. Before anything reached the client, a failed attempt may be retried
 * on the same target (retryable errors, backoff with full jitter, Retry-After honoured up
 * to a cap) or handed to the next candidate (fallback), within the retry budget and the
 * route's total deadline; with hedging, a second attempt races the first when it is slow
 * to answer. The first attempt to produce its first byte for the client (the first SSE
 * event, or a whole successful answer) commits: the others are cancelled, and from then on
 * a failure becomes an SSE error event, never a retry.
 *
 * The exchange ends exactly once, in chat_end(). Worker thread only.
 */
#define SY_LOG_MODULE "chat"

#include "dp_chat.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "dp_accesslog.h"
#include "dp_auth.h"
#include "dp_errors.h"
#include "dp_features.h"
#include "dp_health.h"
#include "dp_ingress.h"
#include "dp_jscan.h"
#include "dp_match.h"
#include "dp_provider.h"
#include "dp_proxy.h"
#include "dp_router.h"
#include "dp_snapshot.h"
#include "dp_upstream.h"
#include "dp_worker.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_reqid.h"
#include "sy_sse.h"
#include "sy_util.h"

#define DP_CHAT_MAX_RESPONSE (64u * 1024 * 1024) /* a whole non-streamed answer */
#define DP_CHAT_MAX_EVENT (16u * 1024 * 1024)    /* one SSE event */
#define DP_CHAT_MAX_ATTEMPTS 16                  /* whatever the policy says */

static const char *const api_paths[] = {
    [DP_API_CHAT] = "/v1/chat/completions",
    [DP_API_COMPLETIONS] = "/v1/completions",
    [DP_API_EMBEDDINGS] = "/v1/embeddings",
    [DP_API_MESSAGES] = "/v1/messages",
};

struct dp_chat;

/* One upstream call for the exchange. */
struct dp_attempt {
    struct dp_chat *c;
    int n; /* 1-based */
    const struct sy_model *model;
    const struct sy_provider *provider;
    size_t provider_index;
    struct dp_target_health *health;
    const struct dp_provider_ops *ops;
    struct dp_xctx x;
    struct dp_upreq up;
    struct dp_upstream_call *call;
    struct dp_stream_xlate *xlate;
    struct sy_sse_parser parser;
    bool sse;
    bool probe;
    bool pre_commit_error; /* the stream's first event was an error: fail over */
    struct dp_error_info perr;
    long status;
    char retry_after[64];
    char *buf; /* a whole (non-SSE) answer */
    size_t buf_len, buf_cap;
    uint64_t t_start, t_first;
    struct dp_attempt *next;
};

struct dp_chat {
    struct dp_worker *w;
    struct sy_http_req *req; /* NULL once the client is gone or answered */
    enum dp_api_kind kind;
    struct dp_snapshot *snap;
    cJSON *root;                     /* the OpenAI request, kept for retries */
    const struct dp_ingress_ops *in; /* the client's dialect; NULL = OpenAI */
    struct dp_ingress_stream *in_st;
    struct dp_features f;
    struct dp_plan plan;
    size_t next_cand;      /* the next plan entry to try */
    unsigned same_retries; /* retries spent on the current candidate */
    int n_attempts;
    struct dp_attempt *live; /* attempts in flight (two while hedging) */
    struct dp_attempt *winner;
    struct dp_attempt *last; /* the last attempt that ended, for its error */
    struct dp_error_info last_err;
    bool have_err;
    struct event *retry_ev, *hedge_ev, *deadline_ev;
    bool hedged;
    char chain[512]; /* "model:result,..." for x-switchyard-chain and the log */
    char requested_model[256];
    char in_code[48]; /* the ingress's error code outlives its stack frame (log line) */
    char request_id[130];
    bool client_id;    /* request_id is the client's own x-request-id */
    char *feedback_id; /* the signed id (sy_reqid.h), once a model answered */
    char arm_label[2 * (SY_REQID_NAME_MAX + 1)]; /* "experiment/arm"; "" = no experiment */
    char peer[64];
    const char *raw_body;
    size_t raw_len;
    bool stream;
    bool client_wants_usage;
    bool started; /* the client has our status line */
    bool saw_done;
    bool failed; /* an error event went out */
    struct dp_usage usage;
    uint64_t t_start, t_first;
    size_t bytes_out;
    int status;
    const char *error;
    /* For the log line: what finally served (or failed). */
    const struct sy_model *served_model;
    const struct sy_provider *served_provider;
    struct dp_caller caller; /* tenant, tags, user: for the log line (dp_auth) */
};

static void start_next(struct dp_chat *c);
static void attempt_free(struct dp_attempt *a);

/* ---- the end of an exchange ------------------------------------------------------ */

/* Priced at the request's start (wall clock), so a request that straddles a price window's
 * edge costs one price throughout, whenever it is logged. */
static double chat_cost(const struct dp_chat *c)
{
    const struct sy_model *m = c->served_model;
    const struct dp_usage *u = &c->usage;
    int64_t cached = u->cached_tokens > 0 ? u->cached_tokens : 0;
    uint64_t age_us = sy_now_us() - c->t_start; /* t_start is monotonic */
    double cost = 0, in_price, out_price, cached_price;

    if (!m)
        return 0;
    sy_model_prices_at(m, (int64_t)((sy_wall_us() - age_us) / 1000000), &in_price, &out_price,
                       &cached_price);
    if (u->prompt_tokens > 0) {
        int64_t fresh = u->prompt_tokens - cached;
        cost += (double)(fresh > 0 ? fresh : 0) * in_price / 1e6;
        cost += (double)cached * cached_price / 1e6;
    }
    if (u->completion_tokens > 0)
        cost += (double)u->completion_tokens * out_price / 1e6;
    return cost;
}

static void chat_free(struct dp_chat *c)
{
    while (c->live) {
        struct dp_attempt *a = c->live;
        c->live = a->next;
        attempt_free(a);
    }
    attempt_free(c->winner);
    attempt_free(c->last);
    if (c->in_st)
        c->in->stream_free(c->in_st);
    if (c->retry_ev)
        event_free(c->retry_ev);
    if (c->hedge_ev)
        event_free(c->hedge_ev);
    if (c->deadline_ev)
        event_free(c->deadline_ev);
    dp_features_cleanup(&c->f);
    cJSON_Delete(c->root);
    dp_snapshot_unref(c->snap);
    free(c->feedback_id);
    free(c);
}

/* Writes the access log line and frees the exchange. */
static void chat_end(struct dp_chat *c)
{
    const struct sy_route *route = c->plan.route;
    struct dp_access_entry e = {
        .request_id = c->request_id,
        .peer = c->peer,
        .method = "POST",
        .path = api_paths[c->kind],
        .route = c->served_model ? (route ? route->name : "direct") : NULL,
        .provider = c->served_provider ? c->served_provider->name : NULL,
        .model = c->served_model ? c->served_model->name : NULL,
        .policy_version = c->snap ? c->snap->version_str : NULL,
        .status = c->status,
        .stream = c->stream,
        .latency_us = sy_now_us() - c->t_start,
        .ttft_us = c->t_first ? c->t_first - c->t_start : 0,
        .prompt_tokens = c->usage.prompt_tokens,
        .completion_tokens = c->usage.completion_tokens,
        .cached_tokens = c->usage.cached_tokens,
        .cost_usd = chat_cost(c),
        .bytes_in = c->raw_len,
        .bytes_out = c->bytes_out,
        .attempts = c->n_attempts,
        .chain = c->chain[0] ? c->chain : NULL,
        .error = c->error,
        .arm = c->arm_label[0] ? c->arm_label : NULL,
        .feedback_id = c->feedback_id,
    };
    dp_caller_log(&c->caller, &e);
    dp_access_log(c->w->proxy->access_log_fd, &e);
    dp_stats_record(&c->w->stats, &e);
    chat_free(c);
}

/* Headers every answer of a routed request carries. */
static void add_route_headers(struct dp_chat *c)
{
    char n[16];

    if (!c->req || !c->served_model)
        return;
    sy_http_add_header(c->req, "x-switchyard-provider", c->served_provider->name);
    sy_http_add_header(c->req, "x-switchyard-model", c->served_model->name);
    sy_http_add_header(c->req, "x-switchyard-route",
                       c->plan.route ? c->plan.route->name : "direct");
    if (c->n_attempts) {
        snprintf(n, sizeof(n), "%d", c->n_attempts);
        sy_http_add_header(c->req, "x-switchyard-attempts", n);
        sy_http_add_header(c->req, "x-switchyard-chain", c->chain);
    }
}

/* Signs what served the request into c->feedback_id (sy_reqid.h): policy version, now,
 * tenant, route, model, experiment and arm, under the key that signs now. Leaves it NULL
 * when there is no key or nothing served. */
static void sign_answer(struct dp_chat *c)
{
    struct dp_fleet_key *key = dp_proxy_fleet_keys(c->w->proxy, NULL);
    const struct dp_plan *p = &c->plan;
    const struct sy_experiment *ex = dp_route_experiment(c->snap->policy, p->route);
    struct sy_reqid r;
    char buf[SY_REQID_MAX_LEN + 1];
    uint64_t nonce = dp_rand_next(&c->w->rng);

    if (!key || !c->served_model)
        goto out_unref;
    memset(&r, 0, sizeof(r));
    r.policy_version = c->snap->policy->version;
    r.unix_s = (int64_t)(sy_wall_us() / 1000000u);
    snprintf(r.tenant, sizeof(r.tenant), "%s", c->caller.tenant ? c->caller.tenant->name : "");
    snprintf(r.route, sizeof(r.route), "%s", p->route ? p->route->name : "");
    snprintf(r.model, sizeof(r.model), "%s", c->served_model->name);
    if (ex && p->arm) {
        snprintf(r.experiment, sizeof(r.experiment), "%s", ex->name);
        snprintf(r.arm, sizeof(r.arm), "%s", p->arm->name);
    }
    memcpy(r.nonce, &nonce, sizeof(r.nonce));
    if (sy_reqid_sign(key->sign, &r, buf, sizeof(buf)) > 0)
        c->feedback_id = sy_xstrdup(buf);
out_unref:
    dp_fleet_key_unref(key);
}

/* The request's ids on the answer: x-request-id (the client's own id, else the signed id
 * once a model answered, else the plain random one), x-switchyard-request-id (the signed
 * id), request-id (where Anthropic's SDK looks) and x-switchyard-arm. <answered>: a
 * model's answer goes out now (not an error), so the id is signed. */
static void add_id_headers(struct dp_chat *c, bool answered)
{
    const char *id = c->request_id;

    if (!c->req)
        return;
    if (answered && !c->feedback_id)
        sign_answer(c);
    if (answered && c->feedback_id) {
        sy_http_add_header(c->req, "x-switchyard-request-id", c->feedback_id);
        if (!c->client_id)
            id = c->feedback_id;
    }
    sy_http_add_header(c->req, "x-request-id", id);
    if (c->in)
        sy_http_add_header(c->req, "request-id", id);
    if (c->arm_label[0])
        sy_http_add_header(c->req, "x-switchyard-arm", c->arm_label);
}

/* Answers with an error object (before anything else was sent). */
static void reply_error(struct dp_chat *c, int status, const char *type, const char *code,
                        const char *param, const char *message, const char *retry_after)
{
    char *body =
        c->in ? c->in->error_body(status, type ? type : dp_error_type_for(status), code, message)
              : dp_error_json(status, type, code, param, message);
    size_t len = strlen(body);

    c->status = status;
    c->error = code ? code : type;
    if (c->req) {
        add_id_headers(c, false);
        add_route_headers(c);
        if (retry_after && *retry_after)
            sy_http_add_header(c->req, "Retry-After", retry_after);
        sy_http_reply(c->req, status, "application/json", body, len);
        c->bytes_out += len;
        c->req = NULL;
    }
    free(body);
}

static void bad_request(struct dp_chat *c, const char *code, const char *param, const char *message)
{
    reply_error(c, 400, "invalid_request_error", code, param, message, NULL);
}

static void chain_add(struct dp_chat *c, const struct sy_model *m, const char *result)
{
    size_t o = strlen(c->chain);
    snprintf(c->chain + o, sizeof(c->chain) - o, "%s%s:%s", o ? "," : "", m->name, result);
}

/* ---- writing to the client -------------------------------------------------------- */

static void client_write(struct dp_chat *c, const char *data, size_t len)
{
    if (!c->started) {
        c->started = true;
        c->t_first = sy_now_us();
        c->status = 200;
        add_id_headers(c, true);
        add_route_headers(c);
        sy_http_stream_begin(c->req, 200, "text/event-stream");
    }
    sy_http_stream_write(c->req, data, len);
    c->bytes_out += len;
}

static int write_client(void *arg, const char *data, size_t len)
{
    struct dp_chat *c = arg;
    if (!c->req)
        return -1;
    client_write(c, data, len);
    return 0;
}

/* Ends the client's stream (the ingress dialect may add its closing events). */
static void stream_close(struct dp_chat *c)
{
    if (c->in && !c->in_st && c->req)
        c->in_st = c->in->stream_new(c->requested_model, c->request_id);
    if (c->in && c->in_st && c->req)
        c->in->stream_end(c->in_st, c->failed, write_client, c);
    if (c->req) {
        sy_http_stream_end(c->req);
        c->req = NULL;
    }
}

/* ---- commit: one attempt wins ---------------------------------------------------- */

static void unlink_live(struct dp_chat *c, struct dp_attempt *a)
{
    for (struct dp_attempt **pp = &c->live; *pp; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            a->next = NULL;
            return;
        }
    }
}

/* <a> produced the first byte for the client: cancel the others, stop the timers. */
static void commit(struct dp_chat *c, struct dp_attempt *a)
{
    unlink_live(c, a);
    while (c->live) {
        struct dp_attempt *other = c->live;
        c->live = other->next;
        chain_add(c, other->model, "cancelled");
        attempt_free(other);
    }
    c->winner = a;
    c->served_model = a->model;
    c->served_provider = a->provider;
    chain_add(c, a->model, a->sse ? "stream" : "200");
    if (c->hedge_ev)
        evtimer_del(c->hedge_ev);
    if (c->deadline_ev && a->sse)
        evtimer_del(c->deadline_ev); /* a started stream is governed by its idle timeout */
}

/* ---- events from the provider ----------------------------------------------------- */

/* Sends one OpenAI event to the client as "data: ...\n\n" (one chunk per event keeps events
 * whole on the wire), reading usage and dropping the usage chunk the client did not ask
 * for (we asked for it on the client's behalf). The dp_emit_fn of every adapter; the
 * first event commits its attempt. */
static int emit_event(void *arg, const char *data, size_t len)
{
    struct dp_attempt *a = arg;
    struct dp_chat *c = a->c;
    char stackbuf[4096];
    char *out;
    size_t n = len + 8;
    bool is_error = false;

    if (!c->req || (c->winner && c->winner != a))
        return -1;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        c->saw_done = true;
    } else if (dp_json_has_object_member(data, len, "usage") ||
               dp_json_has_object_member(data, len, "error")) {
        /* Only events that carry a usage object or an error are parsed: with include_usage
         * every OpenAI chunk has "usage":null. */
        cJSON *chunk = cJSON_ParseWithLength(data, len);
        if (chunk) {
            const cJSON *usage = cJSON_GetObjectItemCaseSensitive(chunk, "usage");
            const cJSON *choices = cJSON_GetObjectItemCaseSensitive(chunk, "choices");
            const cJSON *err = cJSON_GetObjectItemCaseSensitive(chunk, "error");
            bool usage_only =
                cJSON_IsObject(usage) && cJSON_IsArray(choices) && cJSON_GetArraySize(choices) == 0;
            if (cJSON_IsObject(err) && !choices) {
                is_error = true;
                if (!c->winner) {
                    /* An error before anything reached the client: fail over instead. */
                    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
                    const cJSON *t = cJSON_GetObjectItemCaseSensitive(err, "type");
                    const cJSON *cd = cJSON_GetObjectItemCaseSensitive(err, "code");
                    dp_error_classify(502, cJSON_IsString(t) ? t->valuestring : NULL,
                                      cJSON_IsString(cd) ? cd->valuestring : NULL,
                                      cJSON_IsString(m) ? m->valuestring : NULL, NULL, &a->perr);
                    a->pre_commit_error = true;
                    cJSON_Delete(chunk);
                    return -1;
                }
            }
            dp_usage_from_openai(usage, &c->usage);
            cJSON_Delete(chunk);
            if (usage_only && !c->client_wants_usage && !c->in)
                return 0;
        }
    }
    if (!c->winner)
        commit(c, a);
    if (is_error) {
        c->failed = true;
        c->error = "upstream_stream_error";
    }
    if (c->in) {
        if (!c->in_st)
            c->in_st = c->in->stream_new(c->requested_model, c->request_id);
        return c->in->stream_chunk(c->in_st, data, len, write_client, c);
    }
    out = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
    if (!out)
        return -1;
    memcpy(out, "data: ", 6);
    memcpy(out + 6, data, len);
    out[6 + len] = '\n';
    out[7 + len] = '\n';
    client_write(c, out, n);
    if (out != stackbuf)
        free(out);
    return 0;
}

static int on_sse_event(void *arg, const char *event, const char *data, size_t len)
{
    struct dp_attempt *a = arg;

    if (!a->c->req)
        return -1;
    if (!a->t_first)
        a->t_first = sy_now_us();
    if (a->xlate)
        return a->ops->stream_event(a->xlate, event, data, len, &a->c->usage, emit_event, a);
    return emit_event(a, data, len);
}

static void on_client_writable(struct sy_http_req *req, void *arg)
{
    struct dp_chat *c = arg;
    (void)req;
    if (c->winner && c->winner->call)
        dp_upstream_resume(c->winner->call);
}

static void up_on_headers(void *arg, long status, const char *content_type, const char *retry_after)
{
    struct dp_attempt *a = arg;

    a->status = status;
    if (retry_after)
        snprintf(a->retry_after, sizeof(a->retry_after), "%s", retry_after);
    a->sse = a->c->stream && status >= 200 && status < 300 && content_type &&
             strncasecmp(content_type, "text/event-stream", 17) == 0;
    if (a->sse && a->ops->stream_new)
        a->xlate = a->ops->stream_new(&a->x);
}

static int up_on_data(void *arg, const char *data, size_t len)
{
    struct dp_attempt *a = arg;
    struct dp_chat *c = a->c;

    if (!c->req)
        return -1;
    if (a->sse) {
        if (c->winner == a && sy_http_req_queued(c->req) > SY_HTTP_HIGH_WATER) {
            /* The client reads slower than the provider writes: pause the provider. */
            sy_http_req_on_writable(c->req, on_client_writable, c);
            return 1;
        }
        int rc = sy_sse_feed(&a->parser, data, len);
        if (rc == -EMSGSIZE) {
            c->error = "upstream_event_too_large";
            return -1;
        }
        return rc ? -1 : 0;
    }
    if (a->buf_len + len > DP_CHAT_MAX_RESPONSE) {
        c->error = "upstream_response_too_large";
        return -1;
    }
    if (a->buf_len + len + 1 > a->buf_cap) {
        size_t cap = a->buf_cap ? a->buf_cap : 4096;
        while (cap < a->buf_len + len + 1)
            cap *= 2;
        char *nb = realloc(a->buf, cap);
        if (!nb)
            return -1;
        a->buf = nb;
        a->buf_cap = cap;
    }
    if (!a->t_first)
        a->t_first = sy_now_us();
    memcpy(a->buf + a->buf_len, data, len);
    a->buf_len += len;
    a->buf[a->buf_len] = '\0';
    return 0;
}

/* ---- attempt outcomes ---------------------------------------------------------------- */

/* A transport failure as a normalized error. */
static void transport_error(const struct dp_attempt *a, enum dp_upstream_result res,
                            const char *detail, struct dp_error_info *e)
{
    const char *name = a->provider->name;

    memset(e, 0, sizeof(*e));
    e->retryable = res != DP_UP_INTERNAL && res != DP_UP_ABORTED;
    e->fallback_ok = true;
    snprintf(e->type, sizeof(e->type), "upstream_error");
    switch (res) {
    case DP_UP_TIMEOUT:
        e->status = 504;
        snprintf(e->code, sizeof(e->code), "upstream_timeout");
        snprintf(e->message, sizeof(e->message), "provider %s timed out: %s", name, detail);
        break;
    case DP_UP_CONNECT:
        e->status = 502;
        snprintf(e->code, sizeof(e->code), "upstream_unreachable");
        snprintf(e->message, sizeof(e->message), "provider %s is unreachable: %s", name, detail);
        break;
    case DP_UP_BROKEN:
        e->status = 502;
        snprintf(e->code, sizeof(e->code), "upstream_connection_closed");
        snprintf(e->message, sizeof(e->message),
                 "provider %s closed the connection before a complete answer (%s)", name, detail);
        break;
    default:
        e->status = 502;
        snprintf(e->code, sizeof(e->code), "%s", a->c->error ? a->c->error : "upstream_error");
        snprintf(e->message, sizeof(e->message), "provider %s: %s", name, detail);
        break;
    }
}

static uint64_t backoff_ms(const struct dp_chat *c, const struct dp_attempt *a)
{
    const struct sy_route *rt = c->plan.route;
    const struct sy_resilience *r = &c->snap->policy->resilience;
    uint64_t base = rt ? rt->retry_backoff_ms : 100, cap = rt ? rt->retry_max_backoff_ms : 2000;
    uint64_t exp = base << (c->same_retries < 16 ? c->same_retries : 16);
    int64_t ra = 0;

    if (exp > cap)
        exp = cap;
    /* Full jitter: anywhere in [0, exp]. */
    exp = exp ? dp_rand_next(&c->w->rng) % (exp + 1) : 0;
    if (a->retry_after[0] && sy_parse_i64(a->retry_after, 0, 86400, &ra) == 0) {
        uint64_t want = (uint64_t)ra * 1000;
        if (want > r->max_retry_after_ms)
            return UINT64_MAX; /* longer than we will wait: do not retry this target */
        if (want > exp)
            exp = want;
    }
    return exp;
}

static uint64_t remaining_ms(const struct dp_chat *c)
{
    const struct sy_route *rt = c->plan.route;
    uint64_t spent;

    if (!rt || !rt->total_timeout_ms)
        return UINT64_MAX;
    spent = (sy_now_us() - c->t_start) / 1000;
    return spent >= rt->total_timeout_ms ? 0 : rt->total_timeout_ms - spent;
}

/* Nothing more to try: answer with the last error. */
static void give_up(struct dp_chat *c)
{
    const struct dp_error_info *e = &c->last_err;
    const char *ra = c->last && c->last_err.status == 429 ? c->last->retry_after : NULL;

    if (!c->have_err) {
        reply_error(c, 502, "upstream_error", "upstream_error", NULL, "no attempt succeeded", NULL);
        return;
    }
    reply_error(c, e->status, e->type, e->code, NULL, e->message, ra);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dp_chat *c = arg;
    (void)fd;
    (void)what;
    start_next(c);
    if (!c->req && !c->live && !c->winner)
        chat_end(c);
}

/* <a> failed before anything reached the client (or lost a race): decide what next.
 * Consumes <a>. */
static void attempt_failed(struct dp_chat *c, struct dp_attempt *a, const struct dp_error_info *e)
{
    const struct sy_route *rt = c->plan.route;
    const struct sy_resilience *r = &c->snap->policy->resilience;
    char result[48];

    unlink_live(c, a);
    snprintf(result, sizeof(result), "%d",
             e->status == 502 && a->status ? (int)a->status : e->status);
    chain_add(c, a->model, e->code[0] && e->status >= 500 && !a->status ? e->code : result);
    dp_stats_upstream_error(&c->w->stats, a->provider->name, (int)a->status, e->code);
    c->last_err = *e;
    c->have_err = true;
    attempt_free(c->last);
    c->last = a;
    if (!c->winner) {
        /* Until something succeeds, answers name the last target tried. */
        c->served_model = a->model;
        c->served_provider = a->provider;
    }
    if (c->winner || !c->req)
        return;
    if (c->live)
        return; /* a hedged attempt is still running: let it finish */
    if (!e->retryable && !e->fallback_ok) {
        give_up(c); /* the client's own mistake: no other target will do better */
        return;
    }
    uint64_t left = remaining_ms(c);
    if (left == 0 || c->n_attempts >= DP_CHAT_MAX_ATTEMPTS) {
        give_up(c);
        return;
    }
    /* Same target again? */
    if (e->retryable && rt && c->same_retries < rt->retries_max) {
        uint64_t delay = backoff_ms(c, a);
        if (delay != UINT64_MAX && delay < left) {
            if (!dp_retry_budget_spend(&c->w->proxy->health.budget, r, sy_now_us())) {
                sy_info("%s: retry budget exhausted; not retrying %s", c->request_id,
                        a->model->name);
                give_up(c);
                return;
            }
            c->same_retries++;
            c->next_cand--; /* start_next takes the same candidate again */
            struct timeval tv = {.tv_sec = (time_t)(delay / 1000),
                                 .tv_usec = (suseconds_t)((delay % 1000) * 1000)};
            evtimer_add(c->retry_ev, &tv);
            return;
        }
    }
    /* Another target (fallback)? */
    if (c->next_cand < c->plan.n && e->fallback_ok) {
        if (!dp_retry_budget_spend(&c->w->proxy->health.budget, r, sy_now_us())) {
            sy_info("%s: retry budget exhausted; no fallback", c->request_id);
            give_up(c);
            return;
        }
        c->same_retries = 0;
        start_next(c);
        return;
    }
    give_up(c);
}

/* Outcome bookkeeping shared by every end of an attempt. */
static void account(struct dp_chat *c, struct dp_attempt *a, bool provider_fault)
{
    const struct sy_resilience *r = &c->snap->policy->resilience;
    uint64_t now = sy_now_us();

    atomic_fetch_sub(&a->health->in_flight, 1);
    dp_health_record(a->health, r, !provider_fault, now - a->t_start,
                     a->t_first && a->sse ? a->t_first - a->t_start : 0, now);
}

static void finish_stream(struct dp_chat *c, struct dp_attempt *a, enum dp_upstream_result res,
                          const char *detail)
{
    if (res == DP_UP_OK) {
        sy_sse_finish(&a->parser);
        if (a->xlate && c->req && c->winner == a && !c->failed)
            a->ops->stream_end(a->xlate, &c->usage, emit_event, a);
    }
    if (c->winner != a) {
        /* It never produced a byte for the client: a failure like any other. */
        struct dp_error_info e;
        if (a->pre_commit_error)
            e = a->perr;
        else if (res == DP_UP_OK) {
            transport_error(a, DP_UP_BROKEN, "the stream ended before its first event", &e);
        } else
            transport_error(a, res, detail, &e);
        account(c, a, e.fallback_ok || e.retryable);
        attempt_failed(c, a, &e);
        return;
    }
    account(c, a, res != DP_UP_OK && !c->failed);
    if (!c->req)
        return;
    if (res == DP_UP_OK || c->failed) {
        stream_close(c);
        return;
    }
    sy_warn("%s: provider %s stream broke after the first byte: %s", c->request_id,
            a->provider->name, detail);
    {
        const char *code = res == DP_UP_TIMEOUT ? "upstream_timeout" : "upstream_stream_broken";
        char *err = dp_error_json(502, "upstream_error", code, NULL,
                                  res == DP_UP_TIMEOUT
                                      ? "the provider timed out in the middle of the stream"
                                      : "the provider's stream ended unexpectedly");
        emit_event(a, err, strlen(err));
        free(err);
        c->error = code;
        c->failed = true;
        stream_close(c);
    }
}

static void finish_whole(struct dp_chat *c, struct dp_attempt *a, enum dp_upstream_result res,
                         const char *detail)
{
    char *out = NULL, *err = NULL;
    size_t out_len = 0;
    struct dp_error_info e;

    if (res != DP_UP_OK) {
        transport_error(a, res, detail, &e);
        account(c, a, true);
        attempt_failed(c, a, &e);
        return;
    }
    if (a->status < 200 || a->status >= 300) {
        char msg[sizeof(e.message)];
        a->ops->error((int)a->status, a->buf, a->buf_len, &e);
        memcpy(msg, e.message, sizeof(msg));
        snprintf(e.message, sizeof(e.message), "provider %s answered %.900s", a->provider->name,
                 msg);
        account(c, a, e.retryable || e.fallback_ok);
        attempt_failed(c, a, &e);
        return;
    }
    account(c, a, false);
    if (!c->req)
        return;
    /* Translate when the adapter speaks another language; else read usage and pass on. */
    int (*xlate)(const char *, size_t, const struct dp_xctx *, char **, size_t *, struct dp_usage *,
                 char **) =
        c->kind == DP_API_EMBEDDINGS ? a->ops->embed_response : a->ops->chat_response;
    if (xlate) {
        if (xlate(a->buf ? a->buf : "", a->buf_len, &a->x, &out, &out_len, &c->usage, &err) < 0) {
            snprintf(e.message, sizeof(e.message), "provider %s: unusable answer: %s",
                     a->provider->name, err ? err : "?");
            free(err);
            e.status = 502;
            snprintf(e.type, sizeof(e.type), "upstream_error");
            snprintf(e.code, sizeof(e.code), "upstream_invalid_response");
            e.retryable = false;
            e.fallback_ok = true;
            attempt_failed(c, a, &e);
            return;
        }
    } else {
        /* Passed through as the provider sent it: only the usage object is parsed. */
        if (!dp_json_looks_like_object(a->buf, a->buf_len)) {
            memset(&e, 0, sizeof(e));
            e.status = 502;
            snprintf(e.type, sizeof(e.type), "upstream_error");
            snprintf(e.code, sizeof(e.code), "upstream_invalid_response");
            snprintf(e.message, sizeof(e.message), "provider %s: the answer is not a JSON object",
                     a->provider->name);
            e.fallback_ok = true;
            attempt_failed(c, a, &e);
            return;
        }
        cJSON *usage = dp_json_member_object(a->buf, a->buf_len, "usage");
        dp_usage_from_openai(usage, &c->usage);
        cJSON_Delete(usage);
    }
    if (c->in) {
        char *client = NULL;
        size_t client_len = 0;
        const char *src = out ? out : a->buf;
        size_t src_len = out ? out_len : a->buf_len;
        if (c->in->from_openai(src, src_len, c->requested_model, &client, &client_len, &err) < 0) {
            char msg[512];
            snprintf(msg, sizeof(msg), "cannot translate the answer for the %s API: %s",
                     c->in->name, err ? err : "?");
            free(err);
            free(out);
            commit(c, a);
            reply_error(c, 502, "upstream_error", "translation_failed", NULL, msg, NULL);
            return;
        }
        free(out);
        out = client;
        out_len = client_len;
    }
    commit(c, a);
    c->status = 200;
    c->t_first = sy_now_us();
    add_id_headers(c, true);
    add_route_headers(c);
    {
        char cost[32];
        snprintf(cost, sizeof(cost), "%.8f", chat_cost(c));
        sy_http_add_header(c->req, "x-switchyard-cost-usd", cost);
    }
    if (out) {
        sy_http_reply(c->req, 200, "application/json", out, out_len);
        c->bytes_out += out_len;
        free(out);
    } else {
        sy_http_reply(c->req, 200, "application/json", a->buf, a->buf_len);
        c->bytes_out += a->buf_len;
    }
    c->req = NULL;
}

/* Whether the exchange is over: the client answered (or gone) and no call left running. */
static bool exchange_over(const struct dp_chat *c)
{
    return !c->req && !c->live && !(c->winner && c->winner->call);
}

static void up_on_done(void *arg, enum dp_upstream_result res, const char *detail)
{
    struct dp_attempt *a = arg;
    struct dp_chat *c = a->c;

    a->call = NULL;
    if (res != DP_UP_OK && !a->pre_commit_error)
        sy_info("%s: attempt %d to %s/%s: %s", c->request_id, a->n, a->provider->name,
                a->model->name, detail);
    if (a->sse || c->winner == a)
        finish_stream(c, a, res, detail);
    else
        finish_whole(c, a, res, detail);
    if (exchange_over(c))
        chat_end(c);
}

static const struct dp_upstream_ops chat_upstream_ops = {
    .on_headers = up_on_headers,
    .on_data = up_on_data,
    .on_done = up_on_done,
};

/* ---- starting attempts ------------------------------------------------------------- */

static void attempt_free(struct dp_attempt *a)
{
    if (!a)
        return;
    if (a->call) {
        dp_upstream_cancel(a->call);
        atomic_fetch_sub(&a->health->in_flight, 1);
        if (a->probe) {
            /* A cancelled probe says nothing: let the next request probe. */
            atomic_store(&a->health->probe_in_flight, false);
        }
    }
    if (a->xlate)
        a->ops->stream_free(a->xlate);
    sy_sse_cleanup(&a->parser);
    dp_upreq_cleanup(&a->up);
    free(a->buf);
    free(a);
}

/* Builds the adapter's request for candidate <cand>. 0; -EINVAL when this provider cannot
 * serve the request (*errmsg set); -ENOMEM. */
static int build_request(struct dp_chat *c, struct dp_attempt *a, char **errmsg)
{
    const struct dp_provider_rt *rt = &c->snap->providers[a->provider_index];
    int (*build)(const struct dp_provider_rt *, const cJSON *, const struct dp_xctx *,
                 struct dp_upreq *, char **);

    build = c->kind == DP_API_EMBEDDINGS    ? a->ops->embed_request
            : c->kind == DP_API_COMPLETIONS ? a->ops->completion_request
                                            : a->ops->chat_request;
    if (!build) {
        *errmsg = sy_xasprintf("model %s (provider %s, kind %s) does not support %s",
                               a->model->name, a->provider->name, a->ops->kind,
                               c->kind == DP_API_EMBEDDINGS ? "embeddings" : "legacy completions");
        return -EINVAL;
    }
    return build(rt, c->root, &a->x, &a->up, errmsg);
}

static void on_hedge_timer(evutil_socket_t fd, short what, void *arg);

/* Starts an attempt on the next usable candidate. Answers the client itself when nothing
 * can be started. */
static void start_next(struct dp_chat *c)
{
    const struct sy_policy *pol = c->snap->policy;
    const struct sy_route *rt = c->plan.route;
    char *first_err = NULL;

    while (c->req && c->next_cand < c->plan.n) {
        const struct dp_candidate *cand = &c->plan.c[c->next_cand++];
        struct dp_attempt *a = sy_xcalloc(1, sizeof(*a));
        char *err = NULL;
        int rc;

        a->c = c;
        a->model = cand->model;
        a->provider_index = cand->model->provider;
        a->provider = &pol->providers[a->provider_index];
        a->health = c->snap->health[cand->model_index];
        a->ops = dp_provider_ops_for(a->provider->kind);
        if (!c->plan.panic &&
            !dp_health_allow(a->health, &pol->resilience, sy_now_us(), &a->probe)) {
            /* Opened since the plan was made (another worker saw failures). */
            chain_add(c, a->model, "circuit_open");
            free(a);
            c->same_retries = 0;
            continue;
        }
        a->x = (struct dp_xctx){
            .model = a->model,
            .request_id = c->request_id,
            .created = (int64_t)(sy_wall_us() / 1000000u),
            .stream = c->stream,
            .raw_body = c->raw_body,
            .raw_len = c->raw_len,
        };
        rc = build_request(c, a, &err);
        if (rc < 0) {
            if (a->probe)
                atomic_store(&a->health->probe_in_flight, false);
            if (rc == -ENOMEM) {
                free(err);
                attempt_free(a);
                reply_error(c, 500, "server_error", "out_of_memory", NULL, "out of memory", NULL);
                return;
            }
            /* This provider cannot do it; another candidate may. */
            if (err && strncmp(err, "model ", 6) != 0) {
                char *named = sy_xasprintf("model %s: %s", a->model->name, err);
                free(err);
                err = named;
            }
            chain_add(c, a->model, "unsupported");
            if (!first_err)
                first_err = err;
            else
                free(err);
            attempt_free(a);
            c->same_retries = 0;
            continue;
        }
        sy_sse_init(&a->parser, DP_CHAT_MAX_EVENT, on_sse_event, a);
        const struct dp_provider_rt *prt = &c->snap->providers[a->provider_index];
        uint32_t attempt_ms =
            rt && rt->attempt_timeout_ms ? rt->attempt_timeout_ms : a->provider->timeout_ms;
        uint32_t first_ms =
            rt && rt->first_token_timeout_ms ? rt->first_token_timeout_ms : attempt_ms;
        struct dp_upstream_request rq = {
            .url = a->up.url,
            .headers = prt->headers,
            .body = a->up.body ? a->up.body : c->raw_body,
            .body_len = a->up.body ? a->up.body_len : c->raw_len,
            .connect_timeout_ms = a->provider->connect_timeout_ms,
            /* A whole answer must come within the attempt timeout; a stream must start
             * within the first-token timeout and never fall silent for an attempt's
             * length, however long it runs in all. */
            .timeout_ms = c->stream ? 0 : attempt_ms,
            .first_byte_timeout_ms = c->stream ? first_ms : 0,
            .idle_timeout_ms = c->stream ? attempt_ms : 0,
        };
        a->n = ++c->n_attempts;
        a->t_start = sy_now_us();
        atomic_fetch_add(&a->health->in_flight, 1);
        a->call = dp_upstream_start(c->w->up, &rq, &chat_upstream_ops, a);
        if (!a->call) {
            atomic_fetch_sub(&a->health->in_flight, 1);
            attempt_free(a);
            reply_error(c, 500, "server_error", "upstream_start_failed", NULL,
                        "could not start the upstream request", NULL);
            free(first_err);
            return;
        }
        a->next = c->live;
        c->live = a;
        if (rt && rt->hedge_after_ms && !c->hedged && c->next_cand < c->plan.n) {
            struct timeval tv = {.tv_sec = rt->hedge_after_ms / 1000,
                                 .tv_usec = (rt->hedge_after_ms % 1000) * 1000};
            evtimer_add(c->hedge_ev, &tv);
        }
        free(first_err);
        return;
    }
    if (!c->req)
        return;
    if (c->have_err) {
        free(first_err);
        give_up(c);
        return;
    }
    if (first_err) {
        char msg[768];
        snprintf(msg, sizeof(msg), "%s", first_err);
        free(first_err);
        bad_request(c, "unsupported_capability", "model", msg);
        return;
    }
    reply_error(c, 503, "server_error", "no_available_target", NULL,
                "every target of this request is unavailable (circuit open)", NULL);
}

static void on_hedge_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dp_chat *c = arg;
    (void)fd;
    (void)what;

    /* The attempt is slow to produce a first byte: race it with the next candidate. */
    if (c->winner || !c->req || !c->live || c->next_cand >= c->plan.n)
        return;
    if (!dp_retry_budget_spend(&c->w->proxy->health.budget, &c->snap->policy->resilience,
                               sy_now_us()))
        return;
    c->hedged = true;
    sy_debug("%s: hedging after %u ms", c->request_id, c->plan.route->hedge_after_ms);
    start_next(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct dp_chat *c = arg;
    char msg[160];
    (void)fd;
    (void)what;

    if (c->winner && c->winner->sse)
        return;
    while (c->live) {
        struct dp_attempt *a = c->live;
        c->live = a->next;
        chain_add(c, a->model, "deadline");
        attempt_free(a);
    }
    evtimer_del(c->retry_ev);
    snprintf(msg, sizeof(msg), "route %s: no answer within its total deadline of %u ms",
             c->plan.route->name, c->plan.route->total_timeout_ms);
    reply_error(c, 504, "upstream_error", "deadline_exceeded", NULL, msg, NULL);
    chat_end(c);
}

static void on_client_abort(struct sy_http_req *req, void *arg)
{
    struct dp_chat *c = arg;
    (void)req;

    c->req = NULL;
    c->status = 499;
    c->error = "client_closed";
    chat_end(c); /* frees the attempts, which cancels their calls */
}

/* ---- the request ------------------------------------------------------------------- */

/* Checks the request body for <kind>; returns NULL with an error answer sent when it is
 * unusable. */
static cJSON *parse_request(struct dp_chat *c, const char *body, size_t len)
{
    const char *end = NULL;
    cJSON *root;
    const cJSON *v;

    if (c->in) {
        /* Another dialect: translate first, then check it as any OpenAI request. */
        struct dp_ingress_error ie = {0};
        root = c->in->to_openai(body, len, &ie);
        if (!root) {
            snprintf(c->in_code, sizeof(c->in_code), "%s",
                     ie.code[0] ? ie.code : "invalid_request");
            reply_error(c, ie.status ? ie.status : 400, "invalid_request_error", c->in_code,
                        ie.param[0] ? ie.param : NULL,
                        ie.message[0] ? ie.message : "invalid request", NULL);
            return NULL;
        }
        end = body + len;
    } else {
        root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    }
    /* One JSON value and nothing after it but whitespace. */
    while (root && end < body + len &&
           (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (root && end != body + len) {
        cJSON_Delete(root);
        root = NULL;
    }
    if (!root) {
        bad_request(c, "invalid_json", NULL, "the request body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        bad_request(c, "invalid_json", NULL, "the request body must be a JSON object");
        goto out_free;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(v) || !v->valuestring[0]) {
        bad_request(c, "missing_required_parameter", "model",
                    "you must provide a model parameter (a non-empty string)");
        goto out_free;
    }
    if (c->kind == DP_API_CHAT || c->kind == DP_API_MESSAGES) {
        v = cJSON_GetObjectItemCaseSensitive(root, "messages");
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) {
            bad_request(c, v ? "invalid_type" : "missing_required_parameter", "messages",
                        v ? "'messages' must be a non-empty array"
                          : "you must provide a 'messages' parameter");
            goto out_free;
        }
        int i = 0;
        const cJSON *msg;
        cJSON_ArrayForEach(msg, v)
        {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
            if (!cJSON_IsObject(msg) || !cJSON_IsString(role)) {
                char param[48], text[128];
                snprintf(param, sizeof(param), "messages[%d].role", i);
                snprintf(text, sizeof(text),
                         "%s: each message must be an object with a string 'role'", param);
                bad_request(c, "invalid_type", param, text);
                goto out_free;
            }
            i++;
        }
    } else if (c->kind == DP_API_COMPLETIONS) {
        v = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (!cJSON_IsString(v) && !cJSON_IsArray(v)) {
            bad_request(c, v ? "invalid_type" : "missing_required_parameter", "prompt",
                        "you must provide 'prompt' (a string or an array)");
            goto out_free;
        }
    } else {
        v = cJSON_GetObjectItemCaseSensitive(root, "input");
        if (!cJSON_IsString(v) && !cJSON_IsArray(v)) {
            bad_request(c, v ? "invalid_type" : "missing_required_parameter", "input",
                        "you must provide 'input' (a string or an array)");
            goto out_free;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (v && !cJSON_IsBool(v) && !cJSON_IsNull(v)) {
        bad_request(c, "invalid_type", "stream", "'stream' must be a boolean");
        goto out_free;
    }
    c->stream = cJSON_IsTrue(v) && c->kind != DP_API_EMBEDDINGS;
    if (c->stream) {
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
        c->client_wants_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    }
    return root;

out_free:
    cJSON_Delete(root);
    return NULL;
}

static const char *header_get(void *arg, const char *name)
{
    return sy_http_req_header(arg, name);
}

void dp_chat_handle(struct dp_worker *w, struct sy_http_req *req, const char *request_id,
                    bool client_id, enum dp_api_kind kind)
{
    struct dp_chat *c = sy_xcalloc(1, sizeof(*c));
    const struct sy_route *route = NULL;
    const struct sy_model *direct = NULL;
    const struct sy_experiment *ex;
    const struct sy_arm *arm = NULL;
    char why[512];
    int rc;

    c->w = w;
    dp_stats_begin(&w->stats); /* chat_end records the outcome */
    c->req = req;
    c->kind = kind;
    c->in = kind == DP_API_MESSAGES ? &dp_ingress_anthropic : NULL;
    c->t_start = sy_http_req_start_us(req);
    c->usage.prompt_tokens = c->usage.completion_tokens = c->usage.cached_tokens = -1;
    snprintf(c->request_id, sizeof(c->request_id), "%s", request_id);
    c->client_id = client_id;
    snprintf(c->peer, sizeof(c->peer), "%s", sy_http_req_peer(req));
    c->snap = dp_worker_snapshot(w);
    if (c->snap)
        dp_snapshot_ref(c->snap);
    dp_caller_init(&c->caller, req, c->snap ? c->snap->policy : NULL);
    c->raw_body = sy_http_req_body(req, &c->raw_len);

    if (!c->snap) {
        reply_error(c, 503, "server_error", "no_policy", NULL, "no routing policy is loaded yet",
                    NULL);
        goto out_end;
    }
    c->root = parse_request(c, c->raw_body, c->raw_len);
    if (!c->root)
        goto out_end;
    dp_caller_set_user(&c->caller, c->root);
    if (c->in) {
        /* The client's bytes are not OpenAI's: adapters always build their own body. */
        c->raw_body = NULL;
        c->raw_len = 0;
    }
    const char *model = cJSON_GetObjectItemCaseSensitive(c->root, "model")->valuestring;
    snprintf(c->requested_model, sizeof(c->requested_model), "%s", model);

    if (dp_features_extract(c->root, header_get, req, &c->f) < 0) {
        reply_error(c, 500, "server_error", "out_of_memory", NULL, "out of memory", NULL);
        goto out_end;
    }
    {
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(c->root, "max_completion_tokens");
        if (!cJSON_IsNumber(mt))
            mt = cJSON_GetObjectItemCaseSensitive(c->root, "max_tokens");
        c->f.max_tokens = cJSON_IsNumber(mt) && mt->valuedouble > 0 ? (int64_t)mt->valuedouble : 0;
    }
    rc = dp_resolve(c->snap->matcher, c->snap->policy, &c->f, &w->match_scratch, &route, &direct);
    if (rc == -ENOENT) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "The model `%.200s` does not exist or you do not have access to it.", model);
        reply_error(c, 404, "invalid_request_error", "model_not_found", "model", msg, NULL);
        goto out_end;
    }
    if (rc < 0) {
        reply_error(c, 500, "server_error", "out_of_memory", NULL, "out of memory", NULL);
        goto out_end;
    }
    ex = dp_route_experiment(c->snap->policy, route);
    if (ex && ex->n_arms) {
        /* The arm's targets replace the route's; the sticky key keeps a user on one arm. */
        const char *hv = ex->sticky == SY_STICKY_HEADER && ex->sticky_header
                             ? sy_http_req_header(req, ex->sticky_header)
                             : NULL;
        const char *key = dp_experiment_key(ex, c->caller.user,
                                            c->caller.tenant ? c->caller.tenant->name : NULL, hv);

        arm = &ex->arms[dp_experiment_pick(ex, key, &w->rng)];
        snprintf(c->arm_label, sizeof(c->arm_label), "%s/%s", ex->name, arm->name);
    }
    rc = dp_plan_build_arm(c->snap, route, arm, direct, &c->f, &w->rng, sy_now_us(), &c->plan, why,
                           sizeof(why));
    if (rc < 0) {
        /* A hard constraint left nothing, or every target's breaker is open. */
        reply_error(c, 503, "server_error",
                    rc == -EACCES ? "no_eligible_target" : "no_available_target", NULL, why, NULL);
        goto out_end;
    }
    dp_retry_budget_earn(&w->proxy->health.budget, &c->snap->policy->resilience);
    c->retry_ev = evtimer_new(w->base, on_retry_timer, c);
    c->hedge_ev = evtimer_new(w->base, on_hedge_timer, c);
    if (route && route->total_timeout_ms) {
        struct timeval tv = {.tv_sec = route->total_timeout_ms / 1000,
                             .tv_usec = (route->total_timeout_ms % 1000) * 1000};
        c->deadline_ev = evtimer_new(w->base, on_deadline, c);
        evtimer_add(c->deadline_ev, &tv);
    }
    sy_http_req_on_abort(req, on_client_abort, c);
    start_next(c);
    if (c->req || c->live)
        return;

out_end:
    chat_end(c);
}
