/* controlplane/cp_fleet.c - GET /v1/fleet over every replica. See cp_fleet.h. */
#include "cp_fleet.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cp_admin.h"
#include "cp_discovery.h"
#include "cp_map.h"
#include "cp_peers.h"
#include "cp_reply.h"
#include "sy_http.h"
#include "sy_util.h"

/* Labels each proxy of a replica's fleet document with the replica. */
static void label(cJSON *doc)
{
    const char *replica =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "control_plane"));
    cJSON *p;

    if (!replica)
        return;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(doc, "proxies"))
    {
        if (cJSON_IsObject(p) && !cJSON_GetObjectItemCaseSensitive(p, "control_plane"))
            cJSON_AddStringToObject(p, "control_plane", replica);
    }
}

static double num(const cJSON *o, const char *name)
{
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

/* Whether proxy entry <a> says more than <b> about the same node: connected wins, then the
 * most recently seen (a proxy that moved is remembered for a while by its old replica). */
static bool newer(const cJSON *a, const cJSON *b)
{
    bool ca = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "connected"));
    bool cb = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "connected"));

    if (ca != cb)
        return ca;
    return num(a, "last_seen_unix_ms") > num(b, "last_seen_unix_ms");
}

#define MAX_PROXIES 100000 /* per replica's document */

/* Indexes the proxies of <list> by node id (values: the entries, borrowed). */
static void index_list(struct cp_map *idx, cJSON *list)
{
    cJSON *p;

    cJSON_ArrayForEach(p, list)
    {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "node_id"));
        if (id && !cp_map_get(idx, id))
            cp_map_put(idx, id, p);
    }
}

/* Moves the proxies of <doc> into <list> (indexed by <idx>), one entry per node. NULL, or
 * why <doc> cannot be used. */
static const char *merge(cJSON *list, struct cp_map *idx, cJSON *doc)
{
    cJSON *theirs = cJSON_GetObjectItemCaseSensitive(doc, "proxies");
    size_t n = 0;

    if (!cJSON_IsArray(theirs) || !cJSON_IsArray(list))
        return "the answer is not a fleet document";
    while (theirs->child) {
        cJSON *p = cJSON_DetachItemViaPointer(theirs, theirs->child), *q;
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "node_id"));

        if (!cJSON_IsObject(p) || !id || ++n > MAX_PROXIES) {
            cJSON_Delete(p);
            continue;
        }
        q = cp_map_get(idx, id);
        if (!q) {
            cJSON_AddItemToArray(list, p);
            cp_map_put(idx, id, p);
        } else if (newer(p, q)) {
            cJSON_ReplaceItemViaPointer(list, q, p); /* frees q */
            idx->vals[cp_map_index(idx, id)] = p;
        } else {
            cJSON_Delete(p);
        }
    }
    return NULL;
}

/* cp_peers_build_fn: this replica's proxies, and its peers'. */
static cJSON *build(void *arg, const struct cp_peer_reply *replies, const char **why, size_t n)
{
    struct cp_fleet *f = *(struct cp_fleet **)arg;
    cJSON *root = cp_discovery_fleet_json(f->disc);
    cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "proxies");
    struct cp_map idx = {0};

    label(root);
    index_list(&idx, list);
    for (size_t i = 0; replies && i < n; i++) {
        cJSON *doc;
        const char *from;

        if (why[i])
            continue;
        doc = cJSON_ParseWithLength(replies[i].body, replies[i].len);
        from = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "control_plane"));
        if (!doc || !from)
            why[i] = "the answer is not a fleet document";
        else if (strcmp(from, replies[i].id) != 0)
            why[i] = "the answer comes from another replica (a stale registration)";
        else {
            label(doc);
            why[i] = merge(list, &idx, doc);
        }
        cJSON_Delete(doc);
    }
    cp_map_clear(&idx, NULL);
    return root;
}

static void handle(struct sy_http_req *req, const char *rest, void *arg)
{
    struct cp_fleet *f = arg;

    if (rest[0]) {
        cp_reply_error(req, 404, "not_found", "unknown path %.200s", sy_http_req_path(req));
        return;
    }
    if (sy_http_req_method(req) != SY_HTTP_GET) {
        cp_reply_error(req, 405, "method_not_allowed", "use GET on /v1/fleet");
        return;
    }
    cp_peers_answer(f->peers, req, "/v1/fleet?scope=replica", build, &f, sizeof(f));
}

int cp_fleet_register(struct cp_admin *a, struct cp_fleet *f)
{
    return cp_admin_add_route(a, "/v1/fleet", handle, f);
}
