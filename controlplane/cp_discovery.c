/* controlplane/cp_discovery.c - StreamPolicies: snapshots down, ACK/NACK up; fleet view. */
#define SY_LOG_MODULE "discovery"

#include "cp_discovery.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "switchyard/v1/discovery.pb-c.h"
#include "sy_grpc.h"
#include "sy_log.h"
#include "sy_util.h"

/* Disconnected nodes stay in the fleet view this long, so an operator sees who left. */
#define CP_FLEET_KEEP_MS (10 * 60 * 1000)

struct fleet_node {
    char *node_id;
    char *zone;
    char *address;
    char *build_version;
    char *peer;
    struct sy_grpc_call *call; /* our reference while connected, else NULL */
    int64_t connected_since_ms;
    int64_t last_seen_ms;
    char *acked_version; /* NULL = never acked */
    char *sent_nonce;    /* the nonce of the last snapshot sent on this stream */
    char *sent_version;
    char *nack_version; /* last NACK, NULL = none */
    char *nack_error;
    int64_t nack_at_ms;
    struct fleet_node *next;
};

struct cp_discovery {
    char *cp_id;
    pthread_mutex_t lock;
    struct cp_active *active; /* guarded by lock */
    uint8_t *snapshot;        /* packed PolicySnapshot of <active>, guarded by lock */
    size_t snapshot_len;
    char nonce[96];
    char version[24];
    uint64_t nonce_seq;
    struct fleet_node *nodes; /* guarded by lock */
    uint8_t fleet_key[64];    /* sent in every snapshot (docs/feedback.md) */
    size_t fleet_key_len;
};

static int64_t now_ms(void)
{
    return (int64_t)(sy_wall_us() / 1000);
}

static void replace(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? sy_xstrdup(src) : NULL;
}

static void node_free(struct fleet_node *n)
{
    free(n->node_id);
    free(n->zone);
    free(n->address);
    free(n->build_version);
    free(n->peer);
    free(n->acked_version);
    free(n->sent_nonce);
    free(n->sent_version);
    free(n->nack_version);
    free(n->nack_error);
    sy_grpc_call_unref(n->call);
    free(n);
}

/* Packs the snapshot for <a> with a fresh nonce. Lock held. */
static void build_snapshot(struct cp_discovery *d)
{
    Switchyard__V1__PolicySnapshot snap = SWITCHYARD__V1__POLICY_SNAPSHOT__INIT;
    Switchyard__V1__Policy *pol;

    free(d->snapshot);
    d->snapshot = NULL;
    d->snapshot_len = 0;
    if (!d->active)
        return;
    pol = switchyard__v1__policy__unpack(NULL, d->active->policy_pb_len, d->active->policy_pb);
    if (!pol) {
        sy_error("version %" PRId64 " does not unpack: not serving it", d->active->version);
        return;
    }
    snprintf(d->version, sizeof(d->version), "%" PRId64, d->active->version);
    snprintf(d->nonce, sizeof(d->nonce), "%s-%" PRIu64, d->cp_id, ++d->nonce_seq);
    snap.version_info = d->version;
    snap.nonce = d->nonce;
    snap.policy = pol;
    snap.created_unix_ms = d->active->created_unix_ms;
    snap.note = d->active->note;
    snap.hash = d->active->hash;
    snap.fleet_key.data = d->fleet_key;
    snap.fleet_key.len = d->fleet_key_len;
    d->snapshot_len = switchyard__v1__policy_snapshot__get_packed_size(&snap);
    d->snapshot = sy_xmalloc(d->snapshot_len);
    switchyard__v1__policy_snapshot__pack(&snap, d->snapshot);
    switchyard__v1__policy__free_unpacked(pol, NULL);
}

/* Sends the current snapshot on <n>'s stream. Lock held. */
static void send_snapshot(struct cp_discovery *d, struct fleet_node *n)
{
    if (!d->snapshot || !n->call)
        return;
    if (sy_grpc_call_send(n->call, d->snapshot, d->snapshot_len) == 0) {
        replace(&n->sent_nonce, d->nonce);
        replace(&n->sent_version, d->version);
        sy_debug("sent version %s to %s (nonce %s)", d->version, n->node_id, d->nonce);
    }
}

static struct fleet_node *find_node(struct cp_discovery *d, const char *id)
{
    for (struct fleet_node *n = d->nodes; n; n = n->next) {
        if (strcmp(n->node_id, id) == 0)
            return n;
    }
    return NULL;
}

static void on_message(struct sy_grpc_call *call, const uint8_t *data, size_t len, void *arg)
{
    struct cp_discovery *d = arg;
    Switchyard__V1__PolicyRequest *req = switchyard__v1__policy_request__unpack(NULL, len, data);
    struct fleet_node *n;

    if (!req) {
        sy_warn("%s: a PolicyRequest that does not unpack; closing the stream",
                sy_grpc_call_peer(call));
        sy_grpc_call_close(call, SY_GRPC_INVALID_ARGUMENT, "malformed PolicyRequest");
        return;
    }
    pthread_mutex_lock(&d->lock);
    n = sy_grpc_call_get_user(call);
    if (!n) {
        /* The first request of a stream names the node. */
        if (!req->node || !req->node->id || !req->node->id[0]) {
            pthread_mutex_unlock(&d->lock);
            sy_grpc_call_close(call, SY_GRPC_INVALID_ARGUMENT,
                               "the first PolicyRequest must carry node.id");
            switchyard__v1__policy_request__free_unpacked(req, NULL);
            return;
        }
        n = find_node(d, req->node->id);
        if (!n) {
            n = sy_xcalloc(1, sizeof(*n));
            n->node_id = sy_xstrdup(req->node->id);
            n->next = d->nodes;
            d->nodes = n;
        } else if (n->call) {
            /* The node reconnected before we noticed its old stream ending. */
            sy_grpc_call_unref(n->call);
        }
        n->call = sy_grpc_call_ref(call);
        n->connected_since_ms = now_ms();
        replace(&n->zone, req->node->zone);
        replace(&n->address, req->node->listen_address);
        replace(&n->build_version, req->node->build_version);
        replace(&n->peer, sy_grpc_call_peer(call));
        replace(&n->sent_nonce, NULL);
        sy_grpc_call_set_user(call, n);
        sy_info("proxy %s connected from %s (runs version %s)", n->node_id, n->peer,
                req->version_info && req->version_info[0] ? req->version_info : "none");
        if (req->version_info && req->version_info[0])
            replace(&n->acked_version, req->version_info);
    }
    n->last_seen_ms = now_ms();
    if (req->response_nonce && req->response_nonce[0] && n->sent_nonce &&
        strcmp(req->response_nonce, n->sent_nonce) == 0) {
        if (req->error_detail && req->error_detail->message && req->error_detail->message[0]) {
            replace(&n->nack_version, n->sent_version);
            replace(&n->nack_error, req->error_detail->message);
            n->nack_at_ms = n->last_seen_ms;
            sy_warn("proxy %s rejected version %s: %s", n->node_id,
                    n->sent_version ? n->sent_version : "?", req->error_detail->message);
        } else {
            replace(&n->acked_version, req->version_info);
            sy_info("proxy %s acked version %s", n->node_id, req->version_info);
        }
    } else if (!req->response_nonce || !req->response_nonce[0]) {
        /* A (re)subscription: send what is active now. */
        send_snapshot(d, n);
    }
    /* Any other nonce answers a snapshot superseded since: ignore it (xDS rule). */
    pthread_mutex_unlock(&d->lock);
    switchyard__v1__policy_request__free_unpacked(req, NULL);
}

static void on_close(struct sy_grpc_call *call, int status, const char *detail, void *arg)
{
    struct cp_discovery *d = arg;
    struct fleet_node *n;

    pthread_mutex_lock(&d->lock);
    n = sy_grpc_call_get_user(call);
    if (n && n->call == call) {
        sy_info("proxy %s disconnected (%d %s)", n->node_id, status, detail ? detail : "");
        n->call = NULL;
        n->last_seen_ms = now_ms();
        sy_grpc_call_unref(call);
    }
    sy_grpc_call_set_user(call, NULL);
    pthread_mutex_unlock(&d->lock);
}

static const struct sy_grpc_stream_ops discovery_ops = {
    .on_open = NULL,
    .on_message = on_message,
    .on_close = on_close,
};

struct cp_discovery *cp_discovery_new(const char *cp_id)
{
    struct cp_discovery *d = sy_xcalloc(1, sizeof(*d));
    d->cp_id = sy_xstrdup(cp_id);
    pthread_mutex_init(&d->lock, NULL);
    return d;
}

void cp_discovery_set_fleet_key(struct cp_discovery *d, const uint8_t *key, size_t len)
{
    pthread_mutex_lock(&d->lock);
    d->fleet_key_len = len < sizeof(d->fleet_key) ? len : sizeof(d->fleet_key);
    memcpy(d->fleet_key, key, d->fleet_key_len);
    pthread_mutex_unlock(&d->lock);
}

int cp_discovery_register(struct cp_discovery *d, struct sy_grpc_server *srv)
{
    return sy_grpc_server_add_stream(srv, CP_DISCOVERY_METHOD, &discovery_ops, d);
}

void cp_discovery_set_active(struct cp_discovery *d, struct cp_active *a)
{
    struct cp_active *old;
    int pushed = 0;

    pthread_mutex_lock(&d->lock);
    old = d->active;
    d->active = cp_active_ref(a);
    build_snapshot(d);
    for (struct fleet_node *n = d->nodes; n; n = n->next) {
        if (n->call) {
            send_snapshot(d, n);
            pushed++;
        }
    }
    pthread_mutex_unlock(&d->lock);
    cp_active_unref(old);
    sy_info("pushing version %" PRId64 " to %d connected proxies", a->version, pushed);
}

static void add_opt_str(cJSON *o, const char *key, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *cp_discovery_fleet_json(struct cp_discovery *d)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr;
    int64_t now = now_ms();
    struct fleet_node **pp;

    pthread_mutex_lock(&d->lock);
    cJSON_AddNumberToObject(root, "active_version", d->active ? (double)d->active->version : 0);
    cJSON_AddStringToObject(root, "control_plane", d->cp_id);
    arr = cJSON_AddArrayToObject(root, "proxies");
    pp = &d->nodes;
    while (*pp) {
        struct fleet_node *n = *pp;
        if (!n->call && now - n->last_seen_ms > CP_FLEET_KEEP_MS) {
            *pp = n->next;
            node_free(n);
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "node_id", n->node_id);
        cJSON_AddStringToObject(o, "zone", n->zone ? n->zone : "");
        cJSON_AddStringToObject(o, "address", n->address ? n->address : "");
        cJSON_AddStringToObject(o, "peer", n->peer ? n->peer : "");
        cJSON_AddStringToObject(o, "build_version", n->build_version ? n->build_version : "");
        cJSON_AddBoolToObject(o, "connected", n->call != NULL);
        cJSON_AddNumberToObject(o, "connected_since_unix_ms", (double)n->connected_since_ms);
        cJSON_AddNumberToObject(o, "last_seen_unix_ms", (double)(n->call ? now : n->last_seen_ms));
        if (n->acked_version) {
            int64_t v = 0;
            if (sy_parse_i64(n->acked_version, 0, INT64_MAX, &v) == 0)
                cJSON_AddNumberToObject(o, "acked_version", (double)v);
            else
                cJSON_AddStringToObject(o, "acked_version", n->acked_version);
        } else {
            cJSON_AddNullToObject(o, "acked_version");
        }
        if (n->nack_error) {
            cJSON *nk = cJSON_AddObjectToObject(o, "last_nack");
            add_opt_str(nk, "version", n->nack_version);
            cJSON_AddStringToObject(nk, "error", n->nack_error);
            cJSON_AddNumberToObject(nk, "at_unix_ms", (double)n->nack_at_ms);
        } else {
            cJSON_AddNullToObject(o, "last_nack");
        }
        cJSON_AddItemToArray(arr, o);
        pp = &n->next;
    }
    pthread_mutex_unlock(&d->lock);
    return root;
}

void cp_discovery_free(struct cp_discovery *d)
{
    if (!d)
        return;
    while (d->nodes) {
        struct fleet_node *n = d->nodes;
        d->nodes = n->next;
        node_free(n);
    }
    cp_active_unref(d->active);
    free(d->snapshot);
    free(d->cp_id);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
