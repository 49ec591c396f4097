/* proto/sy_policy_pb.c - compiled policy <-> switchyard.v1.Policy. Stateless. */
#include "sy_policy_pb.h"

#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "sy_util.h"

/* Message building: every string points into <pol>, which outlives the message; only the
 * arrays and sub-messages are allocated here and freed by free_pb(). */
struct pb_build {
    Switchyard__V1__Policy msg;
    Switchyard__V1__Provider *providers;
    Switchyard__V1__Provider **provider_ptrs;
    Switchyard__V1__Header *headers;
    Switchyard__V1__Header **header_ptrs;
    Switchyard__V1__Model *models;
    Switchyard__V1__Model **model_ptrs;
    Switchyard__V1__Pricing *pricing;
    Switchyard__V1__Route *routes;
    Switchyard__V1__Route **route_ptrs;
    Switchyard__V1__RouteMatch *matches;
    Switchyard__V1__Target *targets;
    Switchyard__V1__Target **target_ptrs;
    Switchyard__V1__ServerLimits server;
};

static void free_pb(struct pb_build *b)
{
    free(b->providers);
    free(b->provider_ptrs);
    free(b->headers);
    free(b->header_ptrs);
    free(b->models);
    free(b->model_ptrs);
    free(b->pricing);
    free(b->routes);
    free(b->route_ptrs);
    free(b->matches);
    free(b->targets);
    free(b->target_ptrs);
}

static char *str(const char *s)
{
    /* protobuf-c wants non-const char * and "" for absent strings; it never writes. */
    return (char *)(s ? s : "");
}

static void build_pb(const struct sy_policy *pol, struct pb_build *b)
{
    size_t n_headers = 0, n_targets = 0, h = 0, t = 0;

    memset(b, 0, sizeof(*b));
    switchyard__v1__policy__init(&b->msg);
    for (size_t i = 0; i < pol->n_providers; i++)
        n_headers += pol->providers[i].n_headers;
    for (size_t i = 0; i < pol->n_routes; i++)
        n_targets += pol->routes[i].n_targets;

    b->providers = sy_xcalloc(pol->n_providers + 1, sizeof(*b->providers));
    b->provider_ptrs = sy_xcalloc(pol->n_providers + 1, sizeof(*b->provider_ptrs));
    b->headers = sy_xcalloc(n_headers + 1, sizeof(*b->headers));
    b->header_ptrs = sy_xcalloc(n_headers + 1, sizeof(*b->header_ptrs));
    for (size_t i = 0; i < pol->n_providers; i++) {
        const struct sy_provider *p = &pol->providers[i];
        Switchyard__V1__Provider *m = &b->providers[i];
        switchyard__v1__provider__init(m);
        m->name = str(p->name);
        m->kind = str(sy_provider_kind_name(p->kind));
        m->base_url = str(p->base_url);
        m->api_key_env = str(p->api_key_env);
        m->api_version = str(p->api_version);
        m->connect_timeout_ms = p->connect_timeout_ms;
        m->timeout_ms = p->timeout_ms;
        m->n_headers = p->n_headers;
        m->headers = &b->header_ptrs[h];
        for (size_t k = 0; k < p->n_headers; k++, h++) {
            switchyard__v1__header__init(&b->headers[h]);
            b->headers[h].name = str(p->headers[k].name);
            b->headers[h].value = str(p->headers[k].value);
            b->header_ptrs[h] = &b->headers[h];
        }
        b->provider_ptrs[i] = m;
    }
    b->msg.n_providers = pol->n_providers;
    b->msg.providers = b->provider_ptrs;

    b->models = sy_xcalloc(pol->n_models + 1, sizeof(*b->models));
    b->model_ptrs = sy_xcalloc(pol->n_models + 1, sizeof(*b->model_ptrs));
    b->pricing = sy_xcalloc(pol->n_models + 1, sizeof(*b->pricing));
    for (size_t i = 0; i < pol->n_models; i++) {
        const struct sy_model *src = &pol->models[i];
        Switchyard__V1__Model *m = &b->models[i];
        switchyard__v1__model__init(m);
        switchyard__v1__pricing__init(&b->pricing[i]);
        m->name = str(src->name);
        m->provider = str(pol->providers[src->provider].name);
        m->upstream_model = str(src->upstream_model);
        b->pricing[i].input_per_mtok = src->input_per_mtok;
        b->pricing[i].output_per_mtok = src->output_per_mtok;
        b->pricing[i].cached_input_per_mtok = src->cached_input_per_mtok;
        m->pricing = &b->pricing[i];
        b->model_ptrs[i] = m;
    }
    b->msg.n_models = pol->n_models;
    b->msg.models = b->model_ptrs;

    b->routes = sy_xcalloc(pol->n_routes + 1, sizeof(*b->routes));
    b->route_ptrs = sy_xcalloc(pol->n_routes + 1, sizeof(*b->route_ptrs));
    b->matches = sy_xcalloc(pol->n_routes + 1, sizeof(*b->matches));
    b->targets = sy_xcalloc(n_targets + 1, sizeof(*b->targets));
    b->target_ptrs = sy_xcalloc(n_targets + 1, sizeof(*b->target_ptrs));
    for (size_t i = 0; i < pol->n_routes; i++) {
        const struct sy_route *src = &pol->routes[i];
        Switchyard__V1__Route *r = &b->routes[i];
        switchyard__v1__route__init(r);
        switchyard__v1__route_match__init(&b->matches[i]);
        r->name = str(src->name);
        b->matches[i].model = str(src->match_model);
        r->match = &b->matches[i];
        r->n_targets = src->n_targets;
        r->targets = &b->target_ptrs[t];
        for (size_t k = 0; k < src->n_targets; k++, t++) {
            switchyard__v1__target__init(&b->targets[t]);
            b->targets[t].model = str(pol->models[src->targets[k].model].name);
            b->targets[t].weight = src->targets[k].weight;
            b->target_ptrs[t] = &b->targets[t];
        }
        b->route_ptrs[i] = r;
    }
    b->msg.n_routes = pol->n_routes;
    b->msg.routes = b->route_ptrs;

    switchyard__v1__server_limits__init(&b->server);
    b->server.max_body_bytes = pol->server.max_body_bytes;
    b->server.header_timeout_ms = pol->server.header_timeout_ms;
    b->server.body_timeout_ms = pol->server.body_timeout_ms;
    b->server.idle_timeout_ms = pol->server.idle_timeout_ms;
    b->server.max_connections = pol->server.max_connections;
    b->msg.server = &b->server;
}

uint8_t *sy_policy_pack(const struct sy_policy *pol, size_t *len)
{
    struct pb_build b;
    uint8_t *out;

    build_pb(pol, &b);
    *len = switchyard__v1__policy__get_packed_size(&b.msg);
    out = sy_xmalloc(*len ? *len : 1);
    switchyard__v1__policy__pack(&b.msg, out);
    free_pb(&b);
    return out;
}

static void add_str(cJSON *obj, const char *key, const char *v)
{
    if (v && *v)
        cJSON_AddStringToObject(obj, key, v);
}

static void add_num(cJSON *obj, const char *key, double v)
{
    /* Zero is proto3's "absent": leave the key out so the compiler applies its default. */
    if (v != 0)
        cJSON_AddNumberToObject(obj, key, v);
}

/* The message as the policy document it was compiled from (canonical form). */
static cJSON *pb_to_json(const Switchyard__V1__Policy *msg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "providers");

    for (size_t i = 0; i < msg->n_providers; i++) {
        const Switchyard__V1__Provider *p = msg->providers[i];
        cJSON *o = cJSON_CreateObject();
        add_str(o, "name", p->name);
        add_str(o, "kind", p->kind);
        add_str(o, "base_url", p->base_url);
        add_str(o, "api_key_env", p->api_key_env);
        add_str(o, "api_version", p->api_version);
        if (p->n_headers) {
            cJSON *hs = cJSON_AddObjectToObject(o, "headers");
            for (size_t k = 0; k < p->n_headers; k++)
                cJSON_AddStringToObject(hs, p->headers[k]->name, p->headers[k]->value);
        }
        add_num(o, "connect_timeout_ms", p->connect_timeout_ms);
        add_num(o, "timeout_ms", p->timeout_ms);
        cJSON_AddItemToArray(arr, o);
    }
    arr = cJSON_AddArrayToObject(root, "models");
    for (size_t i = 0; i < msg->n_models; i++) {
        const Switchyard__V1__Model *m = msg->models[i];
        cJSON *o = cJSON_CreateObject();
        add_str(o, "name", m->name);
        add_str(o, "provider", m->provider);
        add_str(o, "upstream_model", m->upstream_model);
        if (m->pricing) {
            cJSON *pr = cJSON_AddObjectToObject(o, "pricing");
            cJSON_AddNumberToObject(pr, "input_per_mtok", m->pricing->input_per_mtok);
            cJSON_AddNumberToObject(pr, "output_per_mtok", m->pricing->output_per_mtok);
            cJSON_AddNumberToObject(pr, "cached_input_per_mtok", m->pricing->cached_input_per_mtok);
        }
        cJSON_AddItemToArray(arr, o);
    }
    if (msg->n_routes) {
        arr = cJSON_AddArrayToObject(root, "routes");
        for (size_t i = 0; i < msg->n_routes; i++) {
            const Switchyard__V1__Route *r = msg->routes[i];
            cJSON *o = cJSON_CreateObject();
            add_str(o, "name", r->name);
            cJSON *match = cJSON_AddObjectToObject(o, "match");
            if (r->match)
                add_str(match, "model", r->match->model);
            cJSON *ts = cJSON_AddArrayToObject(o, "targets");
            for (size_t k = 0; k < r->n_targets; k++) {
                cJSON *t = cJSON_CreateObject();
                add_str(t, "model", r->targets[k]->model);
                cJSON_AddNumberToObject(t, "weight", r->targets[k]->weight);
                cJSON_AddItemToArray(ts, t);
            }
            cJSON_AddItemToArray(arr, o);
        }
    }
    if (msg->server) {
        cJSON *s = cJSON_AddObjectToObject(root, "server");
        add_num(s, "max_body_bytes", (double)msg->server->max_body_bytes);
        add_num(s, "header_timeout_ms", msg->server->header_timeout_ms);
        add_num(s, "body_timeout_ms", msg->server->body_timeout_ms);
        add_num(s, "idle_timeout_ms", msg->server->idle_timeout_ms);
        add_num(s, "max_connections", msg->server->max_connections);
    }
    return root;
}

struct sy_policy *sy_policy_from_pb(const Switchyard__V1__Policy *msg, char **errmsg)
{
    cJSON *root = pb_to_json(msg);
    struct sy_policy *pol = sy_policy_compile_json(root, errmsg);
    cJSON_Delete(root);
    return pol;
}

struct sy_policy *sy_policy_unpack(const uint8_t *data, size_t len, char **errmsg)
{
    Switchyard__V1__Policy *msg = switchyard__v1__policy__unpack(NULL, len, data);
    struct sy_policy *pol;

    if (!msg) {
        if (errmsg)
            *errmsg = sy_xstrdup("the policy message is not a valid switchyard.v1.Policy");
        return NULL;
    }
    pol = sy_policy_from_pb(msg, errmsg);
    switchyard__v1__policy__free_unpacked(msg, NULL);
    return pol;
}
