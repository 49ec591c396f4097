/* dataplane/dp_auth.c - gateway keys -> tenants, and request attribution.
 *
 * A presented key is hashed once per request (one SHA-256 of a few dozen bytes, well
 * under a microsecond) and looked up through the policy's digest index; no plaintext key
 * is cached or kept anywhere. Error answers name the problem in OpenAI's words and show
 * at most the key's last 4 characters, and only of a long key.
 *
 * The per-thread slot below carries the result from the dispatcher to the handler within
 * one synchronous dispatch; it is never read across a return to the event loop. Worker
 * thread only (dp_auth_check, dp_auth_error_body and the dp_caller_set_* helpers are
 * stateless and run anywhere).
 */
#define SY_LOG_MODULE "auth"

#include "dp_auth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "dp_accesslog.h"
#include "dp_errors.h"
#include "dp_ingress.h"
#include "sy_http.h"

#define KEY_TAIL_MIN_LEN 16 /* keys shorter than this are never echoed, not even in part */
#define KEY_TAIL_LEN 4

/* GLOBAL: one per worker thread. dp_auth_request() writes it for the request that
 * dp_api_handle is dispatching; dp_auth_done() clears it when that dispatch returns;
 * dp_caller_init() and dp_auth_tenant() read it in between, on the same thread. */
static _Thread_local struct {
    const struct sy_http_req *req;
    const struct sy_policy *policy;
    const struct sy_tenant *tenant;
} pending;

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* The key presented: an "Authorization: Bearer <key>" (scheme in any case) first, then
 * <x_api_key>. Returns its start and sets *len (blanks trimmed), or NULL when none. */
static const char *presented_key(const char *authorization, const char *x_api_key, size_t *len)
{
    const char *k = NULL;
    size_t n = 0;

    if (authorization) {
        while (is_blank(*authorization))
            authorization++;
        if (strncasecmp(authorization, "Bearer", 6) == 0 && is_blank(authorization[6])) {
            for (k = authorization + 6; is_blank(*k); k++)
                ;
            n = strlen(k);
        }
    }
    if (n == 0 && x_api_key) {
        for (k = x_api_key; is_blank(*k); k++)
            ;
        n = strlen(k);
    }
    while (n > 0 && is_blank(k[n - 1]))
        n--;
    *len = n;
    return n ? k : NULL;
}

int dp_auth_check(const struct sy_policy *pol, const char *authorization, const char *x_api_key,
                  const struct sy_tenant **tenant)
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    const char *key;
    size_t len;

    *tenant = NULL;
    key = presented_key(authorization, x_api_key, &len);
    if (!key)
        return pol && pol->auth_mode == SY_AUTH_KEYS ? -ENOKEY : 0;
    if (!pol || pol->n_tenant_keys == 0)
        return 0; /* open: nobody to be */
    if (!EVP_Digest(key, len, digest, &digest_len, EVP_sha256(), NULL) ||
        digest_len != SY_SHA256_LEN)
        return -ENOMEM;
    *tenant = sy_policy_find_tenant_by_key(pol, digest);
    if (!*tenant && pol->auth_mode == SY_AUTH_KEYS)
        return -EKEYREJECTED;
    return 0;
}

static bool is_key_tail_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_';
}

char *dp_auth_error_body(int rc, const char *authorization, const char *x_api_key, bool anthropic,
                         const char **code)
{
    char msg[512], tail[KEY_TAIL_LEN + 8] = "";
    const char *key;
    size_t len, i;

    if (rc == -ENOKEY) {
        *code = "missing_api_key";
        snprintf(msg, sizeof(msg),
                 "You didn't provide an API key. You need to provide your gateway key in %s "
                 "(i.e. %s). Ask the operator of this gateway for a key.",
                 anthropic ? "the x-api-key header, or in an Authorization header using Bearer auth"
                           : "an Authorization header using Bearer auth",
                 anthropic ? "x-api-key: YOUR_KEY" : "Authorization: Bearer YOUR_KEY");
    } else if (rc == -EKEYREJECTED) {
        *code = "invalid_api_key";
        key = presented_key(authorization, x_api_key, &len);
        if (key && len >= KEY_TAIL_MIN_LEN) {
            for (i = len - KEY_TAIL_LEN; i < len && is_key_tail_char(key[i]); i++)
                ;
            if (i == len)
                snprintf(tail, sizeof(tail), ": ****%.*s", KEY_TAIL_LEN, key + len - KEY_TAIL_LEN);
        }
        snprintf(msg, sizeof(msg),
                 "Incorrect API key provided%s. Ask the operator of this gateway for a valid key.",
                 tail);
    } else {
        *code = "out_of_memory";
        return anthropic
                   ? dp_ingress_anthropic.error_body(500, "server_error", *code, "out of memory")
                   : dp_error_json(500, "server_error", *code, NULL, "out of memory");
    }
    return anthropic ? dp_ingress_anthropic.error_body(401, "invalid_request_error", *code, msg)
                     : dp_error_json(401, "invalid_request_error", *code, NULL, msg);
}

int dp_auth_request(struct sy_http_req *req, const struct sy_policy *pol, int *status,
                    const char **code)
{
    const char *path = sy_http_req_path(req);
    const char *x_api_key = NULL;
    const struct sy_tenant *tenant;
    int rc;

    pending.req = NULL;
    if (!pol && strcmp(path, "/v1/models") != 0) {
        /* Refused here rather than by the handler, which may already see a policy that
         * this request was never checked against. */
        *status = 503;
        *code = "no_policy";
        return -EAGAIN;
    }
    if (strcmp(path, "/v1/messages") == 0)
        x_api_key = sy_http_req_header(req, "x-api-key");
    rc = dp_auth_check(pol, sy_http_req_header(req, "authorization"), x_api_key, &tenant);
    if (rc == 0) {
        pending.req = req;
        pending.policy = pol;
        pending.tenant = tenant;
        return 0;
    }
    *status = rc == -ENOMEM ? 500 : 401;
    *code = rc == -ENOMEM ? "out_of_memory" : rc == -ENOKEY ? "missing_api_key" : "invalid_api_key";
    return rc;
}

void dp_auth_reply(struct sy_http_req *req, int rc)
{
    bool messages = strcmp(sy_http_req_path(req), "/v1/messages") == 0;
    const char *code;
    char *body;

    if (rc == -EAGAIN) {
        code = "no_policy";
        body = messages ? dp_ingress_anthropic.error_body(503, "server_error", code,
                                                          "no routing policy is loaded yet")
                        : dp_error_json(503, "server_error", code, NULL,
                                        "no routing policy is loaded yet");
        sy_http_reply(req, 503, "application/json", body, strlen(body));
        free(body);
        return;
    }
    body =
        dp_auth_error_body(rc, sy_http_req_header(req, "authorization"),
                           messages ? sy_http_req_header(req, "x-api-key") : NULL, messages, &code);
    if (rc != -ENOMEM)
        sy_http_add_header(req, "WWW-Authenticate", "Bearer realm=\"switchyard\"");
    sy_http_reply(req, rc == -ENOMEM ? 500 : 401, "application/json", body, strlen(body));
    free(body);
}

const struct sy_tenant *dp_auth_tenant(const struct sy_http_req *req)
{
    return req && pending.req == req ? pending.tenant : NULL;
}

void dp_auth_done(void)
{
    memset(&pending, 0, sizeof(pending));
}

void dp_caller_init(struct dp_caller *c, const struct sy_http_req *req, const struct sy_policy *pol)
{
    memset(c, 0, sizeof(*c));
    if (pending.req == req && pending.policy == pol) {
        c->tenant = pending.tenant;
    } else if (pol) {
        bool messages = strcmp(sy_http_req_path(req), "/v1/messages") == 0;

        (void)dp_auth_check(pol, sy_http_req_header(req, "authorization"),
                            messages ? sy_http_req_header(req, "x-api-key") : NULL, &c->tenant);
    }
    dp_caller_set_tags(c, sy_http_req_header(req, "x-switchyard-tags"));
}

static bool is_tag_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("-_.:/", ch));
}

/* True when the comma-separated list <list> holds <tag> (<n> bytes). */
static bool list_has(const char *list, const char *tag, size_t n)
{
    const char *p = list;

    while (*p) {
        size_t m = strcspn(p, ",");

        if (m == n && memcmp(p, tag, n) == 0)
            return true;
        p += m + (p[m] == ',');
    }
    return false;
}

void dp_caller_set_tags(struct dp_caller *c, const char *header)
{
    size_t off = 0, kept = 0, n, i;
    const char *p = header, *tag;

    c->tags[0] = '\0';
    while (p && *p && kept < DP_CALLER_MAX_TAGS) {
        n = strcspn(p, ",");
        tag = p;
        p += n + (p[n] == ',');
        while (n > 0 && is_blank(*tag)) {
            tag++;
            n--;
        }
        while (n > 0 && is_blank(tag[n - 1]))
            n--;
        if (n == 0 || n > DP_CALLER_MAX_TAG_LEN)
            continue;
        for (i = 0; i < n && is_tag_char(tag[i]); i++)
            ;
        if (i < n || list_has(c->tags, tag, n))
            continue;
        if (off)
            c->tags[off++] = ',';
        memcpy(c->tags + off, tag, n);
        off += n;
        c->tags[off] = '\0';
        kept++;
    }
}

void dp_caller_set_user(struct dp_caller *c, const cJSON *root)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "user");
    size_t n;

    c->user[0] = '\0';
    if (!cJSON_IsString(u))
        return;
    n = strlen(u->valuestring);
    if (n > DP_CALLER_MAX_USER) {
        n = DP_CALLER_MAX_USER;
        while (n > 0 && ((unsigned char)u->valuestring[n] & 0xc0) == 0x80)
            n--; /* not inside a UTF-8 sequence */
    }
    memcpy(c->user, u->valuestring, n);
    c->user[n] = '\0';
}

void dp_caller_log(const struct dp_caller *c, struct dp_access_entry *e)
{
    e->tenant = c->tenant;
    e->tags = c->tags[0] ? c->tags : NULL;
    e->user = c->user[0] ? c->user : NULL;
}
