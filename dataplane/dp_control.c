/* dataplane/dp_control.c - managed mode: snapshots from the control plane, ACK/NACK,
 * reconnects, and the last good snapshot on disk. */
#define SY_LOG_MODULE "control"

#include "dp_control.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dp_proxy.h"
#include "dp_snapshot.h"
#include "switchyard/v1/discovery.pb-c.h"
#include "sy_grpc.h"
#include "sy_log.h"
#include "sy_policy_pb.h"
#include "sy_util.h"

#define DP_CONTROL_METHOD "/switchyard.v1.PolicyDiscovery/StreamPolicies"
#define DP_BACKOFF_BASE_MS 200
#define DP_BACKOFF_MAX_MS 10000
#define DP_STREAM_HEALTHY_MS 10000 /* a stream that lived this long resets the backoff */
#define DP_STATE_FILE "snapshot.pb"
#define DP_BUILD_VERSION "switchyard-proxy/0.1.0"

struct dp_control {
    struct dp_proxy *px;
    struct sy_grpc_client *client;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;             /* guarded by lock */
    struct sy_grpc_call *call; /* guarded by lock: the open stream */
    bool stream_closed;        /* guarded by lock */
};

/* Applies a snapshot: compile, resolve on this node, publish, and take its fleet key (which
 * signs request ids). Returns 0 or -EINVAL with *errmsg set. */
static int apply_snapshot(struct dp_proxy *px, const Switchyard__V1__PolicySnapshot *snap,
                          char **errmsg)
{
    struct sy_policy *pol;
    struct dp_snapshot *ds;
    int64_t version;

    if (!snap->policy) {
        *errmsg = sy_xstrdup("the snapshot carries no policy");
        return -EINVAL;
    }
    if (sy_parse_i64(snap->version_info, 1, INT64_MAX, &version) < 0) {
        *errmsg =
            sy_xasprintf("version_info \"%.40s\" is not a positive integer", snap->version_info);
        return -EINVAL;
    }
    pol = sy_policy_from_pb(snap->policy, errmsg);
    if (!pol)
        return -EINVAL;
    pol->version = version;
    if (snap->hash && strlen(snap->hash) == 16)
        memcpy(pol->hash, snap->hash, sizeof(pol->hash));
    ds = dp_snapshot_new(pol, &px->health, errmsg);
    if (!ds) {
        sy_policy_unref(pol);
        return -EINVAL;
    }
    dp_snapshot_publish(&px->holder, ds);
    dp_proxy_set_fleet_key(px, snap->fleet_key.data, snap->fleet_key.len);
    sy_info("applied policy version %" PRId64 " (%s): %zu providers, %zu models, %zu routes",
            version, pol->hash, pol->n_providers, pol->n_models, pol->n_routes);
    return 0;
}

/* Writes <data> to <dir>/snapshot.pb so that it survives a crash at any point. */
static int persist(const char *dir, const uint8_t *data, size_t len)
{
    char tmp[4096], path[4096];
    int fd, dfd, rc = 0;

    snprintf(tmp, sizeof(tmp), "%s/" DP_STATE_FILE ".tmp", dir);
    snprintf(path, sizeof(path), "%s/" DP_STATE_FILE, dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc == 0) {
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    } else {
        unlink(tmp);
    }
    return rc;
}

int dp_control_load_state(struct dp_proxy *px)
{
    char path[4096];
    struct stat st;
    uint8_t *buf;
    Switchyard__V1__PolicySnapshot *snap;
    char *err = NULL;
    int fd, rc;

    if (!px->opt.state_dir)
        return 0;
    if (mkdir(px->opt.state_dir, 0700) < 0 && errno != EEXIST) {
        sy_error("--state-dir %s: %s", px->opt.state_dir, strerror(errno));
        return -errno;
    }
    snprintf(path, sizeof(path), "%s/" DP_STATE_FILE, px->opt.state_dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            sy_info("no saved snapshot in %s: not serving until the control plane sends one",
                    px->opt.state_dir);
            return 0;
        }
        sy_error("%s: %s", path, strerror(errno));
        return -errno;
    }
    if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > 64 * 1024 * 1024) {
        sy_warn("%s: unusable saved snapshot (size %lld); ignoring it", path,
                (long long)st.st_size);
        close(fd);
        return 0;
    }
    buf = sy_xmalloc((size_t)st.st_size);
    if (read(fd, buf, (size_t)st.st_size) != st.st_size) {
        sy_warn("%s: short read; ignoring the saved snapshot", path);
        close(fd);
        free(buf);
        return 0;
    }
    close(fd);
    snap = switchyard__v1__policy_snapshot__unpack(NULL, (size_t)st.st_size, buf);
    free(buf);
    if (!snap) {
        sy_warn("%s: not a PolicySnapshot; ignoring it", path);
        return 0;
    }
    rc = apply_snapshot(px, snap, &err);
    if (rc < 0) {
        sy_warn("%s: saved snapshot version %s cannot be applied: %s", path, snap->version_info,
                err ? err : "?");
        free(err);
    } else {
        sy_info("serving saved snapshot version %s from %s", snap->version_info, path);
    }
    switchyard__v1__policy_snapshot__free_unpacked(snap, NULL);
    return 0;
}

/* The version this proxy serves now, as version_info ("" = none). */
static void current_version(struct dp_proxy *px, char *out, size_t cap)
{
    struct dp_snapshot *s = dp_snapshot_get(&px->holder);
    if (s && s->policy->version > 0)
        snprintf(out, cap, "%" PRId64, s->policy->version);
    else
        snprintf(out, cap, "%s", "");
    dp_snapshot_unref(s);
}

static void send_request(struct dp_control *ctl, struct sy_grpc_call *call, const char *nonce,
                         const char *error)
{
    Switchyard__V1__PolicyRequest req = SWITCHYARD__V1__POLICY_REQUEST__INIT;
    Switchyard__V1__Node node = SWITCHYARD__V1__NODE__INIT;
    Switchyard__V1__Status status = SWITCHYARD__V1__STATUS__INIT;
    char version[24];
    uint8_t *buf;
    size_t len;

    node.id = (char *)ctl->px->opt.node_id;
    node.zone = (char *)(ctl->px->opt.zone ? ctl->px->opt.zone : "");
    node.build_version = (char *)DP_BUILD_VERSION;
    node.listen_address = ctl->px->bound;
    current_version(ctl->px, version, sizeof(version));
    req.node = &node;
    req.version_info = version;
    req.response_nonce = (char *)(nonce ? nonce : "");
    if (error) {
        status.code = SY_GRPC_INVALID_ARGUMENT;
        status.message = (char *)error;
        req.error_detail = &status;
    }
    len = switchyard__v1__policy_request__get_packed_size(&req);
    buf = sy_xmalloc(len ? len : 1);
    switchyard__v1__policy_request__pack(&req, buf);
    sy_grpc_call_send(call, buf, len);
    free(buf);
}

static void on_open(struct sy_grpc_call *call, void *arg)
{
    struct dp_control *ctl = arg;
    send_request(ctl, call, NULL, NULL);
}

static void on_message(struct sy_grpc_call *call, const uint8_t *data, size_t len, void *arg)
{
    struct dp_control *ctl = arg;
    Switchyard__V1__PolicySnapshot *snap = switchyard__v1__policy_snapshot__unpack(NULL, len, data);
    char *err = NULL;
    char cur[24];

    if (!snap) {
        sy_warn("the control plane sent a message that is not a PolicySnapshot");
        send_request(ctl, call, "", "malformed PolicySnapshot");
        return;
    }
    current_version(ctl->px, cur, sizeof(cur));
    if (strcmp(cur, snap->version_info) == 0) {
        /* Already serving it (e.g. restored from the state dir): just acknowledge, and take
         * the fleet key, which may have been issued since the saved copy was written. */
        if (dp_proxy_set_fleet_key(ctl->px, snap->fleet_key.data, snap->fleet_key.len) &&
            ctl->px->opt.state_dir) {
            int rc = persist(ctl->px->opt.state_dir, data, len);
            if (rc < 0)
                sy_warn("cannot save the snapshot in %s: %s", ctl->px->opt.state_dir,
                        strerror(-rc));
        }
        send_request(ctl, call, snap->nonce, NULL);
    } else if (apply_snapshot(ctl->px, snap, &err) < 0) {
        sy_warn("rejecting policy version %s (keeping %s): %s", snap->version_info,
                cur[0] ? cur : "none", err ? err : "?");
        send_request(ctl, call, snap->nonce, err ? err : "rejected");
    } else {
        if (ctl->px->opt.state_dir) {
            int rc = persist(ctl->px->opt.state_dir, data, len);
            if (rc < 0)
                sy_warn("cannot save the snapshot in %s: %s", ctl->px->opt.state_dir,
                        strerror(-rc));
        }
        send_request(ctl, call, snap->nonce, NULL);
    }
    free(err);
    switchyard__v1__policy_snapshot__free_unpacked(snap, NULL);
}

static void on_close(struct sy_grpc_call *call, int status, const char *detail, void *arg)
{
    struct dp_control *ctl = arg;
    (void)call;

    struct dp_snapshot *cur = dp_snapshot_get(&ctl->px->holder);

    pthread_mutex_lock(&ctl->lock);
    if (!ctl->stopping)
        sy_warn("policy stream to %s ended (%d %s); %s", ctl->px->opt.control_plane, status,
                detail ? detail : "",
                cur ? "serving the last good policy" : "no policy to serve yet");
    ctl->stream_closed = true;
    pthread_cond_signal(&ctl->cond);
    pthread_mutex_unlock(&ctl->lock);
    dp_snapshot_unref(cur);
}

static const struct sy_grpc_stream_ops control_ops = {
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
};

static void deadline_in(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)((ms % 1000) * 1000000);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *control_main(void *arg)
{
    struct dp_control *ctl = arg;
    unsigned attempt = 0;

    pthread_mutex_lock(&ctl->lock);
    while (!ctl->stopping) {
        struct sy_grpc_call *call;
        uint64_t opened = sy_now_us(), delay;
        struct timespec ts;

        ctl->stream_closed = false;
        pthread_mutex_unlock(&ctl->lock);
        call = sy_grpc_client_open_stream(ctl->client, DP_CONTROL_METHOD, &control_ops, ctl);
        pthread_mutex_lock(&ctl->lock);
        ctl->call = call;
        while (call && !ctl->stream_closed && !ctl->stopping)
            pthread_cond_wait(&ctl->cond, &ctl->lock);
        ctl->call = NULL;
        pthread_mutex_unlock(&ctl->lock);
        if (call) {
            sy_grpc_call_close(call, SY_GRPC_CANCELLED, "reconnecting");
            sy_grpc_call_unref(call);
        }
        pthread_mutex_lock(&ctl->lock);
        if (ctl->stopping)
            break;
        /* Exponential backoff with full jitter; a long-lived stream starts over. */
        if (sy_now_us() - opened > DP_STREAM_HEALTHY_MS * 1000ull)
            attempt = 0;
        delay = sy_backoff_ms(attempt, DP_BACKOFF_BASE_MS, DP_BACKOFF_MAX_MS);
        attempt++;
        sy_debug("reconnecting to %s in %" PRIu64 " ms", ctl->px->opt.control_plane, delay);
        deadline_in(&ts, delay);
        while (!ctl->stopping && pthread_cond_timedwait(&ctl->cond, &ctl->lock, &ts) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&ctl->lock);
    return NULL;
}

struct dp_control *dp_control_start(struct dp_proxy *px)
{
    struct dp_control *ctl = sy_xcalloc(1, sizeof(*ctl));
    char *err = NULL;

    ctl->px = px;
    pthread_mutex_init(&ctl->lock, NULL);
    pthread_cond_init(&ctl->cond, NULL);
    ctl->client = sy_grpc_client_new(px->opt.control_plane, &err);
    if (!ctl->client) {
        sy_error("--control-plane %s: %s", px->opt.control_plane, err ? err : "?");
        free(err);
        goto out_free;
    }
    if (pthread_create(&ctl->thread, NULL, control_main, ctl) != 0) {
        sy_error("cannot start the control-plane thread");
        goto out_free;
    }
    sy_info("managed mode: node %s following control plane %s", px->opt.node_id,
            px->opt.control_plane);
    return ctl;

out_free:
    sy_grpc_client_free(ctl->client);
    pthread_cond_destroy(&ctl->cond);
    pthread_mutex_destroy(&ctl->lock);
    free(ctl);
    return NULL;
}

void dp_control_stop(struct dp_control *ctl)
{
    if (!ctl)
        return;
    struct sy_grpc_call *call;

    pthread_mutex_lock(&ctl->lock);
    ctl->stopping = true;
    call = ctl->call ? sy_grpc_call_ref(ctl->call) : NULL;
    pthread_cond_broadcast(&ctl->cond);
    pthread_mutex_unlock(&ctl->lock);
    /* Outside the lock: closing may run on_close, which takes it. */
    if (call) {
        sy_grpc_call_close(call, SY_GRPC_CANCELLED, "proxy shutting down");
        sy_grpc_call_unref(call);
    }
    pthread_join(ctl->thread, NULL);
    sy_grpc_client_free(ctl->client);
    pthread_cond_destroy(&ctl->cond);
    pthread_mutex_destroy(&ctl->lock);
    free(ctl);
}
