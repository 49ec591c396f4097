/* dataplane/dp_feedback.c - POST /v1/feedback: parse, verify the signed request id, drop
 * duplicates, forward through the telemetry stream, answer 202.
 *
 * The order of the checks decides which error a client sees for a body with several
 * problems: the body's shape (400), then the id's signature (404), then its age (410),
 * then duplicates (409), then room in the telemetry queue (503). A pair is remembered as
 * seen only once it was queued, under the set's lock, so a 503 can be retried and two
 * workers racing with the same feedback queue it once.
 *
 * The seen set is a FIFO ring of 16-byte digests (SHA-256 of id, '\n', metric) with an
 * open-addressing index (linear probing, deletion by backward shift); a digest, not a
 * non-cryptographic hash, so nobody can craft a pair that collides with another client's
 * and block its feedback.
 */
#define SY_LOG_MODULE "feedback"

#include "dp_feedback.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dp_accesslog.h"
#include "dp_auth.h"
#include "dp_errors.h"
#include "dp_proxy.h"
#include "dp_telemetry.h"
#include "dp_worker.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_util.h"

#define DIGEST_LEN 16

/* ---- the body ------------------------------------------------------------------------ */

/* Whether <s> (<n> bytes) is well-formed UTF-8: no overlong forms, no surrogates, nothing
 * above U+10FFFF. Protobuf strings must be, and the comment travels in one. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static bool metric_ok(const char *m)
{
    size_t n = strlen(m);

    if (n == 0 || n > DP_FEEDBACK_METRIC_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = m[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
              ch == '-'))
            return false;
    }
    return true;
}

/* The member <name> of <obj>, with JSON null read as absent. */
static const cJSON *member(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNull(v) ? NULL : v;
}

static int bad(const char **param, const char *p, char *msg, size_t msg_len, const char *text)
{
    *param = p;
    snprintf(msg, msg_len, "%s", text);
    return -EINVAL;
}

int dp_feedback_parse(const char *body, size_t len, cJSON **root, struct dp_feedback_in *out,
                      const char **param, char *msg, size_t msg_len)
{
    const char *end = NULL;
    const cJSON *id, *thumbs, *score, *metric, *comment;

    memset(out, 0, sizeof(*out));
    out->score = -1;
    *param = NULL;
    *root = cJSON_ParseWithLengthOpts(body ? body : "", len, &end, false);
    /* One JSON value and nothing after it but whitespace. */
    while (*root && end < body + len &&
           (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (!*root || end != body + len)
        return bad(param, NULL, msg, msg_len, "the request body is not valid JSON");
    if (!cJSON_IsObject(*root))
        return bad(param, NULL, msg, msg_len,
                   "the request body must be a JSON object: {\"request_id\": \"sy1...\", "
                   "\"thumbs\": \"up\"}");

    id = member(*root, "request_id");
    if (!id)
        return bad(param, "request_id", msg, msg_len,
                   "you must provide 'request_id': the x-switchyard-request-id of the answer "
                   "(the OpenAI SDKs' request id)");
    if (!cJSON_IsString(id) || !id->valuestring[0])
        return bad(param, "request_id", msg, msg_len, "'request_id' must be a non-empty string");
    out->request_id = id->valuestring;

    thumbs = member(*root, "thumbs");
    score = member(*root, "score");
    if (thumbs && score)
        return bad(param, "score", msg, msg_len,
                   "give either 'thumbs' or 'score', not both: one piece of feedback is one "
                   "verdict");
    if (!thumbs && !score)
        return bad(param, "thumbs", msg, msg_len,
                   "you must provide 'thumbs' (\"up\" or \"down\") or 'score' (a number from 0 "
                   "to 1)");
    if (thumbs) {
        if (!cJSON_IsString(thumbs) ||
            (strcmp(thumbs->valuestring, "up") != 0 && strcmp(thumbs->valuestring, "down") != 0))
            return bad(param, "thumbs", msg, msg_len, "'thumbs' must be \"up\" or \"down\"");
        out->thumbs = thumbs->valuestring;
    } else {
        if (!cJSON_IsNumber(score) || !isfinite(score->valuedouble) || score->valuedouble < 0 ||
            score->valuedouble > 1)
            return bad(param, "score", msg, msg_len,
                       "'score' must be a number from 0 to 1 (1 = best)");
        out->score = score->valuedouble;
    }

    metric = member(*root, "metric");
    if (metric) {
        if (!cJSON_IsString(metric) || !metric_ok(metric->valuestring))
            return bad(param, "metric", msg, msg_len,
                       "'metric' must be a string of 1 to 64 characters among a-z, 0-9, '_', "
                       "'.' and '-' (e.g. \"helpfulness\")");
        out->metric = metric->valuestring;
    }
    comment = member(*root, "comment");
    if (comment) {
        size_t n;

        if (!cJSON_IsString(comment))
            return bad(param, "comment", msg, msg_len, "'comment' must be a string");
        n = strlen(comment->valuestring);
        if (n > DP_FEEDBACK_COMMENT_MAX)
            return bad(param, "comment", msg, msg_len,
                       "'comment' is longer than 2000 bytes (UTF-8)");
        if (!utf8_valid((const unsigned char *)comment->valuestring, n))
            return bad(param, "comment", msg, msg_len, "'comment' is not valid UTF-8");
        out->comment = comment->valuestring;
    }
    return 0;
}

/* ---- the request id ------------------------------------------------------------------ */

int dp_feedback_verify(const struct sy_reqid_key *const *keys, size_t n, const char *id,
                       int64_t now_s, struct sy_reqid *out, const char **code, char *msg,
                       size_t msg_len)
{
    char *err = NULL;
    int rc = -EINVAL;

    for (size_t i = 0; i < n; i++) {
        if (!keys[i])
            continue;
        free(err);
        err = NULL;
        rc = sy_reqid_verify(keys[i], id, out, &err);
        if (rc != -EBADMSG)
            break; /* accepted, or not an id at all: another key cannot change that */
    }
    if (rc == -ENOMEM) {
        free(err);
        *code = "out_of_memory";
        snprintf(msg, msg_len, "out of memory");
        return 500;
    }
    if (rc < 0) {
        *code = "unknown_request_id";
        snprintf(msg, msg_len,
                 "unknown request_id: %s. Use the x-switchyard-request-id of an answer from "
                 "this gateway (within %d days).",
                 err ? err : "not a request id of this gateway", SY_REQID_TTL_S / 86400);
        free(err);
        return 404;
    }
    free(err);
    if (out->unix_s > now_s + SY_REQID_FUTURE_S) {
        *code = "request_id_expired";
        snprintf(msg, msg_len,
                 "request_id was issued %" PRId64 " s in the future by the clock of this proxy: "
                 "check the clocks of the fleet",
                 out->unix_s - now_s);
        return 410;
    }
    if (out->unix_s < now_s - SY_REQID_TTL_S) {
        *code = "request_id_expired";
        snprintf(msg, msg_len,
                 "request_id is too old: feedback is accepted for %d days after the answer",
                 SY_REQID_TTL_S / 86400);
        return 410;
    }
    return 0;
}

/* ---- duplicates ------------------------------------------------------------------------ */

struct dp_feedback_seen {
    pthread_mutex_t lock;
    uint8_t (*ring)[DIGEST_LEN]; /* FIFO of digests; oldest at <head> */
    size_t cap, head, count;
    uint32_t *slots; /* ring index + 1; 0 = empty */
    size_t mask;     /* slots - 1 */
};

struct dp_feedback_seen *dp_feedback_seen_new(size_t cap)
{
    struct dp_feedback_seen *s;
    size_t n = 16;

    if (cap == 0 || cap > UINT32_MAX / 4)
        return NULL;
    while (n < cap * 2)
        n *= 2;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->ring = calloc(cap, sizeof(*s->ring));
    s->slots = calloc(n, sizeof(*s->slots));
    if (!s->ring || !s->slots) {
        free(s->ring);
        free(s->slots);
        free(s);
        return NULL;
    }
    s->cap = cap;
    s->mask = n - 1;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void dp_feedback_seen_free(struct dp_feedback_seen *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->ring);
    free(s->slots);
    free(s);
}

static size_t home_slot(const struct dp_feedback_seen *s, const uint8_t *d)
{
    uint64_t h;

    memcpy(&h, d, sizeof(h)); /* a digest: its bytes are already uniform */
    return (size_t)h & s->mask;
}

/* The slot holding digest <d>, or the empty slot where it would go. */
static size_t find_slot(const struct dp_feedback_seen *s, const uint8_t *d)
{
    size_t i = home_slot(s, d);

    while (s->slots[i] && memcmp(s->ring[s->slots[i] - 1], d, DIGEST_LEN) != 0)
        i = (i + 1) & s->mask;
    return i;
}

/* Removes the entry in slot <i>, moving later entries of the probe run back so that every
 * entry stays reachable from its home slot. */
static void remove_slot(struct dp_feedback_seen *s, size_t i)
{
    size_t j = i;

    for (;;) {
        j = (j + 1) & s->mask;
        if (!s->slots[j])
            break;
        size_t k = home_slot(s, s->ring[s->slots[j] - 1]);
        /* The entry at j may move to i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = 0;
}

static void digest_of(const char *id, const char *metric, uint8_t out[DIGEST_LEN])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(ctx, id, strlen(id)) || !EVP_DigestUpdate(ctx, "\n", 1) ||
        !EVP_DigestUpdate(ctx, metric, strlen(metric)) || !EVP_DigestFinal_ex(ctx, md, &md_len) ||
        md_len < DIGEST_LEN) {
        /* Never seen in practice; a fixed fallback would merge pairs, so abort instead. */
        sy_error("SHA-256 failed");
        abort();
    }
    EVP_MD_CTX_free(ctx);
    memcpy(out, md, DIGEST_LEN);
}

int dp_feedback_seen_add(struct dp_feedback_seen *s, const char *request_id, const char *metric,
                         dp_feedback_commit_fn commit, void *arg)
{
    uint8_t d[DIGEST_LEN];
    size_t slot, pos;
    int rc;

    digest_of(request_id, metric ? metric : "", d);
    pthread_mutex_lock(&s->lock);
    slot = find_slot(s, d);
    if (s->slots[slot]) {
        pthread_mutex_unlock(&s->lock);
        return -EEXIST;
    }
    rc = commit(arg);
    if (rc < 0) {
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    if (s->count == s->cap) {
        /* Forget the oldest; its removal may move entries, so look the slot up again. */
        remove_slot(s, find_slot(s, s->ring[s->head]));
        s->head = (s->head + 1) % s->cap;
        s->count--;
        slot = find_slot(s, d);
    }
    pos = (s->head + s->count) % s->cap;
    memcpy(s->ring[pos], d, DIGEST_LEN);
    s->slots[slot] = (uint32_t)pos + 1;
    s->count++;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

size_t dp_feedback_seen_count(struct dp_feedback_seen *s)
{
    size_t n;

    pthread_mutex_lock(&s->lock);
    n = s->count;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- the endpoint ---------------------------------------------------------------------- */

struct forward {
    struct dp_telemetry *telemetry;
    const struct dp_feedback *fb;
};

static int forward(void *arg)
{
    const struct forward *f = arg;
    return dp_telemetry_add_feedback(f->telemetry, f->fb);
}

static void add_name(cJSON *obj, const char *key, const char *value)
{
    if (value[0])
        cJSON_AddStringToObject(obj, key, value);
    else
        cJSON_AddNullToObject(obj, key);
}

/* The 202 body; NULL when out of memory. */
static char *accepted_body(const char *id, const struct sy_reqid *r)
{
    cJSON *o = cJSON_CreateObject();
    char *out;

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "status", "accepted");
    cJSON_AddStringToObject(o, "request_id", id);
    add_name(o, "route", r->route);
    add_name(o, "model", r->model);
    add_name(o, "experiment", r->experiment);
    add_name(o, "arm", r->arm);
    out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

void dp_feedback_handle(struct dp_worker *w, struct sy_http_req *req, const char *request_id)
{
    struct dp_proxy *px = w->proxy;
    struct dp_feedback_in in = {0};
    struct sy_reqid rid;
    cJSON *root = NULL;
    const char *body, *param = NULL, *code = NULL;
    char msg[768];
    char *reply = NULL;
    size_t len, out_len = 0;
    int status;
    bool verified = false;

    body = sy_http_req_body(req, &len);
    if (!px->telemetry) {
        status = 501;
        code = "feedback_not_available";
        snprintf(msg, sizeof(msg),
                 "feedback needs a control plane: this proxy runs standalone (--policy) and has "
                 "nowhere to send it. Run proxies managed (--control-plane) to collect feedback.");
        goto out_reply;
    }
    if (dp_feedback_parse(body, len, &root, &in, &param, msg, sizeof(msg)) < 0) {
        status = 400;
        code = "invalid_feedback";
        goto out_reply;
    }
    {
        struct dp_fleet_key *prev = NULL, *cur = dp_proxy_fleet_keys(px, &prev);
        const struct sy_reqid_key *keys[2] = {cur ? cur->sign : NULL, prev ? prev->sign : NULL};

        status = dp_feedback_verify(keys, 2, in.request_id, (int64_t)(sy_wall_us() / 1000000), &rid,
                                    &code, msg, sizeof(msg));
        dp_fleet_key_unref(cur);
        dp_fleet_key_unref(prev);
        if (status)
            goto out_reply;
    }
    verified = true;
    {
        struct dp_feedback fb = {
            .request_id = in.request_id,
            .thumbs = in.thumbs,
            .score = in.score,
            .metric = in.metric,
            .comment = in.comment,
            .received_unix_ms = (int64_t)(sy_wall_us() / 1000),
        };
        struct forward f = {.telemetry = px->telemetry, .fb = &fb};
        int rc = px->feedback_seen ? dp_feedback_seen_add(px->feedback_seen, in.request_id,
                                                          in.metric, forward, &f)
                                   : forward(&f);

        if (rc == -EEXIST) {
            status = 409;
            code = "duplicate_feedback";
            param = "request_id";
            snprintf(msg, sizeof(msg),
                     "this request_id already received feedback%s%s%s; each answer takes one "
                     "verdict per metric",
                     in.metric ? " for metric \"" : "", in.metric ? in.metric : "",
                     in.metric ? "\"" : "");
            goto out_reply;
        }
        if (rc == -ENOSPC) {
            status = 503;
            code = "feedback_backlog_full";
            snprintf(msg, sizeof(msg),
                     "too much feedback is waiting to reach the control plane; try again in a "
                     "few seconds");
            sy_http_add_header(req, "Retry-After", "1");
            goto out_reply;
        }
        if (rc < 0) {
            status = 500;
            code = "server_error";
            snprintf(msg, sizeof(msg), "the feedback could not be queued");
            goto out_reply;
        }
    }
    reply = accepted_body(in.request_id, &rid);
    if (!reply) {
        status = 500;
        code = "out_of_memory";
        snprintf(msg, sizeof(msg), "out of memory");
        goto out_reply;
    }
    status = 202;
    code = NULL;

out_reply:
    if (!reply)
        reply = dp_error_json(status, NULL, code, param, msg);
    out_len = strlen(reply);
    {
        /* Logged before the answer: answering completes <req>, which may free it. */
        struct dp_access_entry e = {
            .request_id = request_id,
            .peer = sy_http_req_peer(req),
            .method = sy_http_req_method_name(req),
            .path = sy_http_req_path(req),
            .status = status,
            .latency_us = sy_now_us() - sy_http_req_start_us(req),
            .prompt_tokens = -1,
            .completion_tokens = -1,
            .cached_tokens = -1,
            .bytes_in = len,
            .bytes_out = out_len,
            .error = code,
            .tenant = dp_auth_tenant(req),
            .feedback_id = verified ? in.request_id : NULL,
        };
        dp_access_log(px->access_log_fd, &e);
    }
    sy_http_reply(req, status, "application/json", reply, out_len);
    free(reply);
    cJSON_Delete(root);
}
