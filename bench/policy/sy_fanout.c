/* bench/policy/sy_fanout.c - sy-bench-fanout: time from POST /v1/policies to the last ACK
 * on N StreamPolicies streams.
 *
 * Opens N streams to one control plane and ACKs every snapshot as soon as it arrives. Then
 * runs rounds: push a policy through the admin API and wait until every stream has acked
 * the new version. Per round it records, from t0 just before the POST: the first and the
 * last ACK, and when the POST answered. Rounds are sequential, so a stream's last
 * (version, ACK time) pair is its record for the round's version.
 *
 * The streams live in P worker processes (stream i in worker i % P), each with one gRPC
 * client per stream. gRPC shares one connection among the channels of a process that
 * have the same target, so P = N (the default) gives each stream its own TCP connection,
 * as N real proxies have; P = 1 multiplexes all of them on one connection.
 *
 * Processes and threads: the parent (libcurl, rounds, report) never touches gRPC; the
 * workers' gRPC threads write the stream records. Records sit in a shared mapping guarded
 * by a process-shared mutex; the parent waits on a process-shared condition variable.
 * Workers exit when the parent closes their pipe (or dies: PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "switchyard/v1/discovery.pb-c.h"
#include "sy_grpc.h"
#include "sy_util.h"

#define FANOUT_METHOD "/switchyard.v1.PolicyDiscovery/StreamPolicies"
#define FANOUT_MAX_REPLY (4 * 1024 * 1024) /* admin answers: a fleet of a few thousand nodes */

struct fanout_stream {
    char node_id[32];
    bool open, closed; /* guarded by fanout.lock, like the two below */
    int64_t version;   /* last version received and acked */
    uint64_t ack_us;   /* when its ACK was queued (CLOCK_MONOTONIC, system-wide) */
};

/* The shared mapping. */
struct fanout {
    pthread_mutex_t lock; /* process-shared */
    pthread_cond_t cond;  /* process-shared; signalled on every change to a record */
    bool stopping;        /* closes from now on are ours, not news */
    int n;
    struct fanout_stream streams[];
};

/* What a worker's gRPC callbacks get. */
struct fanout_ctx {
    struct fanout *fo;
    struct fanout_stream *s;
};

struct fanout_opts {
    const char *grpc;
    char admin[400]; /* "http://HOST:PORT": --admin without its path */
    const char *label;
    int streams, procs, rounds;
    int64_t max_s, timeout_ms;
};

/* Per measured round, in milliseconds. */
struct fanout_samples {
    double *last;  /* last ACK - t0 */
    double *first; /* first ACK - t0 */
    double *post;  /* POST answered - t0 */
    double *tail;  /* last ACK - POST answered (< 0: all acked before the answer) */
    double *fan;   /* last ACK - first ACK: the fan-out itself */
    int n;
};

/* Packs and queues a PolicyRequest; <node_id> only on the first request of a stream. */
static int send_request(struct sy_grpc_call *call, const char *node_id, const char *version,
                        const char *nonce)
{
    Switchyard__V1__PolicyRequest req = SWITCHYARD__V1__POLICY_REQUEST__INIT;
    Switchyard__V1__Node node = SWITCHYARD__V1__NODE__INIT;
    uint8_t buf[512];

    if (node_id) {
        node.id = (char *)node_id;
        node.build_version = (char *)"sy-bench-fanout";
        req.node = &node;
    }
    req.version_info = (char *)version;
    req.response_nonce = (char *)nonce;
    if (switchyard__v1__policy_request__get_packed_size(&req) > sizeof(buf))
        return -EMSGSIZE;
    return sy_grpc_call_send(call, buf, switchyard__v1__policy_request__pack(&req, buf));
}

static void on_open(struct sy_grpc_call *call, void *arg)
{
    struct fanout_ctx *c = arg;
    (void)call;

    pthread_mutex_lock(&c->fo->lock);
    c->s->open = true;
    pthread_cond_broadcast(&c->fo->cond);
    pthread_mutex_unlock(&c->fo->lock);
}

/* A snapshot: ACK it at once (a proxy would compile and swap first), then record. */
static void on_message(struct sy_grpc_call *call, const uint8_t *data, size_t len, void *arg)
{
    struct fanout_ctx *c = arg;
    Switchyard__V1__PolicySnapshot *snap;
    int64_t v;

    snap = switchyard__v1__policy_snapshot__unpack(NULL, len, data);
    if (!snap || sy_parse_i64(snap->version_info, 1, INT64_MAX, &v) < 0) {
        fprintf(stderr, "sy-bench-fanout: %s: malformed snapshot\n", c->s->node_id);
        goto out_free_snap;
    }
    if (send_request(call, NULL, snap->version_info, snap->nonce) < 0)
        goto out_free_snap;
    uint64_t now = sy_now_us();
    pthread_mutex_lock(&c->fo->lock);
    if (v > c->s->version) {
        c->s->version = v;
        c->s->ack_us = now;
    }
    pthread_cond_broadcast(&c->fo->cond);
    pthread_mutex_unlock(&c->fo->lock);

out_free_snap:
    switchyard__v1__policy_snapshot__free_unpacked(snap, NULL);
}

static void on_close(struct sy_grpc_call *call, int status, const char *detail, void *arg)
{
    struct fanout_ctx *c = arg;
    (void)call;

    pthread_mutex_lock(&c->fo->lock);
    if (!c->fo->stopping)
        fprintf(stderr, "sy-bench-fanout: %s: stream closed (%d %s)\n", c->s->node_id, status,
                detail);
    c->s->closed = true;
    pthread_cond_broadcast(&c->fo->cond);
    pthread_mutex_unlock(&c->fo->lock);
}

static const struct sy_grpc_stream_ops stream_ops = {
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
};

/* Worker <w>: opens streams w, w+P, ... and keeps them until <quit_fd> reads EOF. A stream
 * that cannot be opened is marked closed, which fails the run. Never returns. */
static void worker(struct fanout *fo, const struct fanout_opts *opts, int w, int quit_fd)
{
    int mine = (opts->streams - w + opts->procs - 1) / opts->procs;
    struct sy_grpc_client **cl = sy_xcalloc((size_t)mine, sizeof(*cl));
    struct sy_grpc_call **calls = sy_xcalloc((size_t)mine, sizeof(*calls));
    struct fanout_ctx *ctx = sy_xcalloc((size_t)mine, sizeof(*ctx));
    char b;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int k = 0; k < mine; k++) {
        char *err = NULL;

        ctx[k] = (struct fanout_ctx){fo, &fo->streams[w + k * opts->procs]};
        cl[k] = sy_grpc_client_new(opts->grpc, &err);
        if (cl[k])
            calls[k] = sy_grpc_client_open_stream(cl[k], FANOUT_METHOD, &stream_ops, &ctx[k]);
        if (!calls[k] || send_request(calls[k], ctx[k].s->node_id, "", "") < 0) {
            fprintf(stderr, "sy-bench-fanout: cannot open %s: %s\n", ctx[k].s->node_id,
                    err ? err : "open failed");
            free(err);
            pthread_mutex_lock(&fo->lock);
            ctx[k].s->closed = true;
            pthread_cond_broadcast(&fo->cond);
            pthread_mutex_unlock(&fo->lock);
        }
    }
    while (read(quit_fd, &b, 1) != 0 && errno == EINTR)
        ;
    for (int k = 0; k < mine; k++) {
        sy_grpc_client_free(cl[k]); /* cancels its stream */
        sy_grpc_call_unref(calls[k]);
    }
    free(cl);
    free(calls);
    free(ctx);
    _exit(0);
}

/* Waits until every stream is open (<version> 0) or has acked <version> or later, or until
 * <deadline_us>. Fills *first_us / *last_us with the earliest and latest ACK times. Returns
 * 0, -ETIMEDOUT, or -EPIPE when a stream closed. */
static int wait_all(struct fanout *fo, int64_t version, uint64_t deadline_us, uint64_t *first_us,
                    uint64_t *last_us)
{
    int rc = -ETIMEDOUT;

    pthread_mutex_lock(&fo->lock);
    while (sy_now_us() < deadline_us) {
        int ready = 0;
        *first_us = UINT64_MAX;
        *last_us = 0;
        for (int i = 0; i < fo->n; i++) {
            struct fanout_stream *s = &fo->streams[i];
            if (s->closed) {
                rc = -EPIPE;
                goto out_unlock;
            }
            if (version ? s->version >= version : s->open) {
                ready++;
                *first_us = s->ack_us < *first_us ? s->ack_us : *first_us;
                *last_us = s->ack_us > *last_us ? s->ack_us : *last_us;
            }
        }
        if (ready == fo->n) {
            rc = 0;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&fo->cond, &fo->lock, &ts);
    }
out_unlock:
    pthread_mutex_unlock(&fo->lock);
    return rc;
}

struct reply {
    char *buf;
    size_t len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct reply *r = arg;
    size_t n = size * nmemb;
    char *p;

    if (r->len + n > FANOUT_MAX_REPLY || !(p = realloc(r->buf, r->len + n + 1)))
        return 0; /* curl fails the transfer */
    r->buf = p;
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    r->buf[r->len] = '\0';
    return n;
}

/* GET <opts->admin><path>, or POST <body> to it; parses the JSON answer into *out (caller
 * deletes). Returns the HTTP status, or -EIO with a message on stderr. */
static long http_json(CURL *h, const char *admin, const char *path, const char *body, cJSON **out)
{
    struct reply r = {NULL, 0};
    long status = -EIO;
    char url[512];
    CURLcode cc;

    *out = NULL;
    snprintf(url, sizeof(url), "%s%s", admin, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        fprintf(stderr, "sy-bench-fanout: %s: %s\n", url, curl_easy_strerror(cc));
        goto out_free_reply;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    *out = r.buf ? cJSON_Parse(r.buf) : NULL;
    if (!*out) {
        fprintf(stderr, "sy-bench-fanout: %s: HTTP %ld, answer is not JSON\n", url, status);
        status = -EIO;
    }
out_free_reply:
    free(r.buf);
    return status;
}

/* Pushes a small valid policy whose weight changes every round. Returns the version, or
 * -EIO. */
static int64_t push_policy(CURL *h, const char *admin, int round)
{
    char path[64], body[512];
    cJSON *ans = NULL;
    int64_t v = -EIO;

    snprintf(path, sizeof(path), "/v1/policies?note=fanout-round-%d", round);
    snprintf(body, sizeof(body),
             "providers:\n  - {name: up, kind: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
             "models:\n  - {name: a, provider: up}\n  - {name: b, provider: up}\n"
             "routes:\n  - name: r\n    match: {model: auto}\n"
             "    targets: [{model: a, weight: %d}, {model: b, weight: 1}]\n",
             1 + round % 97);
    long status = http_json(h, admin, path, body, &ans);
    cJSON *ver = cJSON_GetObjectItemCaseSensitive(ans, "version");
    if (status == 201 && cJSON_IsNumber(ver))
        v = (int64_t)ver->valuedouble;
    else if (status > 0)
        fprintf(stderr, "sy-bench-fanout: POST %s: HTTP %ld\n", path, status);
    cJSON_Delete(ans);
    return v;
}

/* Counts our streams that GET /v1/fleet shows connected with acked_version == <version>;
 * -EIO when the fleet cannot be read. */
static int fleet_acked(CURL *h, const char *admin, int64_t version)
{
    cJSON *fleet = NULL, *p;
    int ok = 0;

    if (http_json(h, admin, "/v1/fleet", NULL, &fleet) != 200) {
        cJSON_Delete(fleet);
        return -EIO;
    }
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(fleet, "proxies"))
    {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(p, "node_id");
        cJSON *acked = cJSON_GetObjectItemCaseSensitive(p, "acked_version");
        if (cJSON_IsString(id) && strncmp(id->valuestring, "fanout-", 7) == 0 &&
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "connected")) &&
            cJSON_IsNumber(acked) && (int64_t)acked->valuedouble == version)
            ok++;
    }
    cJSON_Delete(fleet);
    return ok;
}

/* Runs the measured rounds until opts->rounds or <end_us>. *version receives the last
 * version pushed. Returns the number of failed rounds; gives up after a POST failure or the
 * fourth round that was not fully acked in time. */
static int run_rounds(struct fanout *fo, CURL *h, const struct fanout_opts *opts, uint64_t end_us,
                      struct fanout_samples *out, int64_t *version)
{
    int failures = 0;

    for (int r = 1; r <= opts->rounds && sy_now_us() < end_us; r++) {
        uint64_t t0 = sy_now_us(), t_post, first, last;
        int64_t v = push_policy(h, opts->admin, r);

        t_post = sy_now_us();
        if (v > 0)
            *version = v;
        if (v < 0 ||
            wait_all(fo, v, t_post + (uint64_t)opts->timeout_ms * 1000, &first, &last) < 0) {
            fprintf(stderr, "sy-bench-fanout: round %d (version %" PRId64 ") failed\n", r, v);
            if (++failures > 3 || v < 0)
                break;
            continue;
        }
        out->last[out->n] = (double)(last - t0) / 1000.0;
        out->first[out->n] = (double)(first - t0) / 1000.0;
        out->post[out->n] = (double)(t_post - t0) / 1000.0;
        out->tail[out->n] = ((double)last - (double)t_post) / 1000.0;
        out->fan[out->n] = (double)(last - first) / 1000.0;
        out->n++;
    }
    return failures;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank <p>th percentile of the sorted <v>[<n>] (n > 0). */
static double pct(const double *v, int n, int p)
{
    int i = (p * n + 99) / 100 - 1;
    return v[i < 0 ? 0 : i];
}

/* Prints the Markdown table row and the JSON line; sorts the samples. */
static void report(const struct fanout_opts *opts, const char *store, struct fanout_samples *s,
                   int failures, int64_t version, int acked)
{
    const char *label = opts->label ? opts->label : store;
    double *all[] = {s->last, s->first, s->post, s->tail, s->fan};
    int n = s->n;

    for (size_t i = 0; i < SY_ARRAY_LEN(all); i++)
        qsort(all[i], (size_t)n, sizeof(double), cmp_double);
    printf("| %s | %d | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", label,
           opts->streams, opts->procs, n, pct(s->last, n, 50), pct(s->last, n, 90),
           pct(s->last, n, 99), s->last[n - 1], pct(s->first, n, 50), pct(s->fan, n, 50),
           pct(s->fan, n, 99), pct(s->post, n, 50));
    printf("{\"label\":\"%s\",\"store\":\"%s\",\"streams\":%d,\"procs\":%d,\"rounds\":%d,"
           "\"failures\":%d,\"last_ack_ms\":{\"min\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
           "\"p99\":%.3f,\"max\":%.3f},\"first_ack_ms\":{\"p50\":%.3f,\"p99\":%.3f},"
           "\"fan_out_ms\":{\"p50\":%.3f,\"p99\":%.3f},\"post_ms\":{\"p50\":%.3f,\"p99\":%.3f},"
           "\"last_ack_after_post_ms\":{\"p50\":%.3f,\"p99\":%.3f},\"target_p99_ms\":100,"
           "\"target_met\":%s,\"last_version\":%" PRId64 ",\"fleet_acked\":%d}\n",
           label, store, opts->streams, opts->procs, n, failures, s->last[0], pct(s->last, n, 50),
           pct(s->last, n, 90), pct(s->last, n, 99), s->last[n - 1], pct(s->first, n, 50),
           pct(s->first, n, 99), pct(s->fan, n, 50), pct(s->fan, n, 99), pct(s->post, n, 50),
           pct(s->post, n, 99), pct(s->tail, n, 50), pct(s->tail, n, 99),
           pct(s->last, n, 99) <= 100.0 ? "true" : "false", version, acked);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: sy-bench-fanout --grpc HOST:PORT --admin URL [options]\n"
                 "  --grpc HOST:PORT       control plane gRPC address\n"
                 "  --admin URL            http://HOST:PORT[/v1/policies] of its admin API\n"
                 "  --streams N            proxy streams (default 50)\n"
                 "  --procs P              worker processes = TCP connections (default N)\n"
                 "  --rounds R             measured pushes (default 200)\n"
                 "  --max-seconds S        stop after S seconds in all (default 120)\n"
                 "  --round-timeout-ms T   a round not fully acked by then fails (default 5000)\n"
                 "  --label TEXT           first column of the table row (default: the store)\n");
}

static int opt_int(const char *s, int min, int max, int *out)
{
    int64_t v;
    int rc = sy_parse_i64(s, min, max, &v);

    *out = (int)v;
    return rc;
}

static int parse_opts(int argc, char **argv, struct fanout_opts *o)
{
    static const struct option longopts[] = {
        {"grpc", required_argument, NULL, 'g'},
        {"admin", required_argument, NULL, 'a'},
        {"streams", required_argument, NULL, 'n'},
        {"procs", required_argument, NULL, 'p'},
        {"rounds", required_argument, NULL, 'r'},
        {"max-seconds", required_argument, NULL, 'm'},
        {"round-timeout-ms", required_argument, NULL, 't'},
        {"label", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *admin = NULL, *path;
    int c, rc = 0, v = 0;

    while (rc == 0 && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'g':
            o->grpc = optarg;
            break;
        case 'a':
            admin = optarg;
            break;
        case 'n':
            rc = opt_int(optarg, 1, 5000, &o->streams);
            break;
        case 'p':
            rc = opt_int(optarg, 1, 5000, &o->procs);
            break;
        case 'r':
            rc = opt_int(optarg, 1, 1000000, &o->rounds);
            break;
        case 'm':
            rc = opt_int(optarg, 1, 86400, &v);
            o->max_s = v;
            break;
        case 't':
            rc = opt_int(optarg, 1, 600000, &v);
            o->timeout_ms = v;
            break;
        case 'l':
            o->label = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -EINVAL;
        }
    }
    if (rc < 0 || !o->grpc || !admin || optind < argc)
        return -EINVAL;
    if (o->procs == 0 || o->procs > o->streams)
        o->procs = o->streams;
    /* Keep scheme://host:port; the paths are ours. */
    path = strstr(admin, "://");
    path = strchr(path ? path + 3 : admin, '/');
    int len = path ? (int)(path - admin) : (int)strlen(admin);
    if (len >= (int)sizeof(o->admin))
        return -EINVAL;
    snprintf(o->admin, sizeof(o->admin), "%.*s", len, admin);
    return 0;
}

/* Maps the shared records and their process-shared lock. NULL when mmap fails. */
static struct fanout *fanout_new(int n)
{
    size_t size = sizeof(struct fanout) + (size_t)n * sizeof(struct fanout_stream);
    struct fanout *fo = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t ma;
    pthread_condattr_t ca;

    if (fo == MAP_FAILED)
        return NULL;
    memset(fo, 0, size);
    fo->n = n;
    for (int i = 0; i < n; i++)
        snprintf(fo->streams[i].node_id, sizeof(fo->streams[i].node_id), "fanout-%d", i);
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&fo->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&fo->cond, &ca);
    pthread_condattr_destroy(&ca);
    return fo;
}

int main(int argc, char **argv)
{
    struct fanout_opts opts = {.streams = 50, .rounds = 200, .max_s = 120, .timeout_ms = 5000};
    struct fanout_samples samples = {.n = 0};
    struct fanout *fo;
    char store[64] = "?";
    cJSON *health = NULL;
    CURL *h = NULL;
    int quit[2], failures = 0, acked = -1;
    pid_t *pids;
    int64_t version = 0;
    uint64_t first, last, end;

    if (parse_opts(argc, argv, &opts) < 0) {
        usage(stderr);
        return 2;
    }
    end = sy_now_us() + (uint64_t)opts.max_s * 1000000;
    fo = fanout_new(opts.streams);
    if (!fo || pipe(quit) < 0) {
        perror("sy-bench-fanout");
        return 1;
    }
    /* Fork before anything starts threads (gRPC starts its own in the workers only). */
    pids = sy_xcalloc((size_t)opts.procs, sizeof(*pids));
    for (int w = 0; w < opts.procs; w++) {
        pids[w] = fork();
        if (pids[w] == 0) {
            close(quit[1]);
            worker(fo, &opts, w, quit[0]);
        }
        if (pids[w] < 0) {
            perror("sy-bench-fanout: fork");
            goto out;
        }
    }
    close(quit[0]);
    samples.last = sy_xcalloc((size_t)opts.rounds * 5, sizeof(double));
    samples.first = samples.last + opts.rounds;
    samples.post = samples.first + opts.rounds;
    samples.tail = samples.post + opts.rounds;
    samples.fan = samples.tail + opts.rounds;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    /* /healthz names the store (the default label) and checks the admin address. */
    h = curl_easy_init();
    if (!h || http_json(h, opts.admin, "/healthz", NULL, &health) != 200)
        goto out;
    cJSON *st = cJSON_GetObjectItemCaseSensitive(health, "store");
    snprintf(store, sizeof(store), "%s", cJSON_IsString(st) ? st->valuestring : "?");
    /* Round 0 is not measured: it shows that the control plane registered every stream. */
    if (wait_all(fo, 0, end, &first, &last) < 0 || (version = push_policy(h, opts.admin, 0)) < 0 ||
        wait_all(fo, version, sy_now_us() + 10000000, &first, &last) < 0) {
        fprintf(stderr, "sy-bench-fanout: the %d streams did not all get the warm-up push\n",
                opts.streams);
        goto out;
    }
    failures = run_rounds(fo, h, &opts, end, &samples, &version);
    if (failures == 0 && samples.n < opts.rounds)
        fprintf(stderr, "sy-bench-fanout: --max-seconds reached after %d of %d rounds\n", samples.n,
                opts.rounds);
    /* Every ACK must show in the fleet view; the last ones may still be in flight. */
    for (int i = 0; i < 20 && (acked = fleet_acked(h, opts.admin, version)) != opts.streams; i++)
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    if (acked != opts.streams)
        fprintf(stderr,
                "sy-bench-fanout: /v1/fleet shows %d of %d streams at version %" PRId64 "\n", acked,
                opts.streams, version);
    if (samples.n > 0)
        report(&opts, store, &samples, failures, version, acked);

out:
    pthread_mutex_lock(&fo->lock);
    fo->stopping = true;
    pthread_mutex_unlock(&fo->lock);
    close(quit[1]); /* the workers close their streams and exit */
    for (int w = 0; w < opts.procs && pids[w] > 0; w++)
        waitpid(pids[w], NULL, 0);
    free(pids);
    free(samples.last);
    cJSON_Delete(health);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return samples.n == opts.rounds && failures == 0 && acked == opts.streams ? 0 : 1;
}
