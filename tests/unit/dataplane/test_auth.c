/* tests/unit/dataplane/test_auth.c - gateway keys -> tenants (dp_auth): presented-key
 * parsing, keys and open modes, the 401 bodies (no key echoed), attribution tags and user
 * bounds, and the caller fields of the access log line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>
#include <openssl/evp.h>

#include "dp_accesslog.h"
#include "dp_auth.h"
#include "sy_policy.h"
#include "sy_util.h"

/* The acme key's digest is computed in setup(); H_BETA is SHA-256 of "sk-beta-1". */
#define ACME_KEY "sk-acme-0123456789abcd"
#define H_BETA "1d2df9ceab14124d795d51c02facc58d787e4a097532d69546d3db544ffddb53"

#define BASE                                                                                       \
    "providers: [{name: p, base_url: \"http://127.0.0.1:1/v1\"}]\n"                                \
    "models: [{name: m, provider: p}]\n"

static char acme_digest[65];

/* Compiles <src> (takes it). */
static struct sy_policy *compile(char *src)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(src, strlen(src), &err);

    if (!pol)
        fail_msg("%s", err);
    free(src);
    return pol;
}

static struct sy_policy *keys_policy(void)
{
    return compile(sy_xasprintf(BASE "tenants:\n"
                                     "  - {name: acme, api_keys_sha256: [\"%s\"], labels: {team: "
                                     "search,\n     feature: \"auto \\\"complete\\\"\"}}\n"
                                     "  - {name: beta, api_keys_sha256: [\"" H_BETA "\"]}\n",
                                acme_digest));
}

static int setup(void **state)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    (void)state;

    if (!EVP_Digest(ACME_KEY, strlen(ACME_KEY), d, &n, EVP_sha256(), NULL) || n != 32)
        return -1;
    for (i = 0; i < n; i++) {
        acme_digest[2 * i] = hex[d[i] >> 4];
        acme_digest[2 * i + 1] = hex[d[i] & 15];
    }
    acme_digest[64] = '\0';
    return 0;
}

static void test_keys_mode(void **state)
{
    struct sy_policy *pol = keys_policy();
    const struct sy_tenant *t = (const void *)1;
    (void)state;

    assert_int_equal(pol->auth_mode, SY_AUTH_KEYS);
    assert_int_equal(dp_auth_check(pol, "Bearer " ACME_KEY, NULL, &t), 0);
    assert_ptr_equal(t, sy_policy_find_tenant(pol, "acme"));
    assert_int_equal(dp_auth_check(pol, "Bearer sk-beta-1", NULL, &t), 0);
    assert_string_equal(t->name, "beta");
    /* the scheme in any case, blanks around the key */
    assert_int_equal(dp_auth_check(pol, "  bearer \t" ACME_KEY "  ", NULL, &t), 0);
    assert_string_equal(t->name, "acme");
    assert_int_equal(dp_auth_check(pol, "BEARER sk-beta-1", NULL, &t), 0);
    assert_string_equal(t->name, "beta");
    /* x-api-key, when the caller passes it (POST /v1/messages) */
    assert_int_equal(dp_auth_check(pol, NULL, "sk-beta-1", &t), 0);
    assert_string_equal(t->name, "beta");
    /* a Bearer key wins over x-api-key; an empty Bearer falls back to it */
    assert_int_equal(dp_auth_check(pol, "Bearer " ACME_KEY, "sk-beta-1", &t), 0);
    assert_string_equal(t->name, "acme");
    assert_int_equal(dp_auth_check(pol, "Bearer  ", "sk-beta-1", &t), 0);
    assert_string_equal(t->name, "beta");

    /* missing */
    assert_int_equal(dp_auth_check(pol, NULL, NULL, &t), -ENOKEY);
    assert_null(t);
    assert_int_equal(dp_auth_check(pol, "", NULL, &t), -ENOKEY);
    assert_int_equal(dp_auth_check(pol, "Bearer", NULL, &t), -ENOKEY);
    assert_int_equal(dp_auth_check(pol, "Bearer   ", NULL, &t), -ENOKEY);
    assert_int_equal(dp_auth_check(pol, "Basic dXNlcjpwYXNz", NULL, &t), -ENOKEY);
    assert_int_equal(dp_auth_check(pol, ACME_KEY, NULL, &t), -ENOKEY); /* no scheme */
    assert_int_equal(dp_auth_check(pol, "Bearer", "  ", &t), -ENOKEY);
    /* unknown */
    assert_int_equal(dp_auth_check(pol, "Bearer sk-acme-0123456789abce", NULL, &t), -EKEYREJECTED);
    assert_null(t);
    assert_int_equal(dp_auth_check(pol, "Bearer " H_BETA, NULL, &t), -EKEYREJECTED);
    assert_int_equal(dp_auth_check(pol, "Bearer sk-beta-1x", NULL, &t), -EKEYREJECTED);
    assert_int_equal(dp_auth_check(pol, "Bearer SK-BETA-1", NULL, &t), -EKEYREJECTED);
    assert_int_equal(dp_auth_check(pol, "Bearerx sk-beta-1", NULL, &t), -ENOKEY);
    assert_int_equal(dp_auth_check(pol, NULL, "sk-nobody", &t), -EKEYREJECTED);
    sy_policy_unref(pol);
}

static void test_open_mode(void **state)
{
    struct sy_policy *pol =
        compile(sy_xasprintf(BASE "tenants: [{name: acme, api_keys_sha256: [\"%s\"]}]\n"
                                  "auth: {mode: open}\n",
                             acme_digest));
    struct sy_policy *none = compile(sy_xstrdup(BASE));
    const struct sy_tenant *t = (const void *)1;
    (void)state;

    /* no key, or an unknown one: anonymous; a known key still names its tenant */
    assert_int_equal(dp_auth_check(pol, NULL, NULL, &t), 0);
    assert_null(t);
    assert_int_equal(dp_auth_check(pol, "Bearer sk-whatever", NULL, &t), 0);
    assert_null(t);
    assert_int_equal(dp_auth_check(pol, "Bearer " ACME_KEY, NULL, &t), 0);
    assert_string_equal(t->name, "acme");
    /* no tenants at all */
    assert_int_equal(none->auth_mode, SY_AUTH_OPEN);
    assert_int_equal(dp_auth_check(none, "Bearer " ACME_KEY, NULL, &t), 0);
    assert_null(t);
    assert_int_equal(dp_auth_check(none, NULL, NULL, &t), 0);
    /* no policy: nothing to check against */
    assert_int_equal(dp_auth_check(NULL, NULL, NULL, &t), 0);
    assert_null(t);
    sy_policy_unref(pol);
    sy_policy_unref(none);
}

static cJSON *parse_error(const char *body, const char *want_code)
{
    cJSON *root = cJSON_Parse(body), *e;

    assert_non_null(root);
    e = cJSON_GetObjectItem(root, "error");
    assert_non_null(e);
    assert_string_equal(cJSON_GetObjectItem(e, "type")->valuestring, "invalid_request_error");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "param")));
    assert_string_equal(cJSON_GetObjectItem(e, "code")->valuestring, want_code);
    return root;
}

static const char *message_of(cJSON *root)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(root, "error"), "message")->valuestring;
}

static void test_error_bodies(void **state)
{
    const char *code = NULL;
    char *body;
    cJSON *root;
    (void)state;

    body = dp_auth_error_body(-ENOKEY, NULL, NULL, false, &code);
    assert_string_equal(code, "missing_api_key");
    root = parse_error(body, "missing_api_key");
    assert_non_null(strstr(message_of(root), "You didn't provide an API key."));
    assert_non_null(strstr(message_of(root), "Authorization: Bearer YOUR_KEY"));
    cJSON_Delete(root);
    free(body);

    /* unknown: the last 4 characters of a long key, never more */
    body = dp_auth_error_body(-EKEYREJECTED, "Bearer sk-live-abcdefghijklmnopWXYZ", NULL, false,
                              &code);
    assert_string_equal(code, "invalid_api_key");
    root = parse_error(body, "invalid_api_key");
    assert_string_equal(message_of(root), "Incorrect API key provided: ****WXYZ. Ask the operator "
                                          "of this gateway for a valid key.");
    assert_null(strstr(body, "sk-live"));
    assert_null(strstr(body, "abcdefghijklmnop"));
    cJSON_Delete(root);
    free(body);

    /* a short key is not echoed at all, nor a tail with odd characters */
    body = dp_auth_error_body(-EKEYREJECTED, "Bearer short-key-123", NULL, false, &code);
    assert_null(strstr(body, "123"));
    assert_null(strstr(body, "****"));
    free(body);
    body = dp_auth_error_body(-EKEYREJECTED, "Bearer sk-0123456789abcdef\"}<>", NULL, false, &code);
    assert_null(strstr(body, "<>"));
    assert_null(strstr(body, "****"));
    free(body);

    /* Anthropic's shape on /v1/messages, naming x-api-key */
    body = dp_auth_error_body(-ENOKEY, NULL, NULL, true, &code);
    assert_string_equal(code, "missing_api_key");
    root = cJSON_Parse(body);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "type")->valuestring, "error");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "error"), "type")->valuestring,
        "authentication_error");
    assert_non_null(strstr(body, "x-api-key"));
    cJSON_Delete(root);
    free(body);
    body = dp_auth_error_body(-EKEYREJECTED, NULL, "sk-ant-0123456789abcdefQRST", true, &code);
    assert_string_equal(code, "invalid_api_key");
    assert_non_null(strstr(body, "****QRST"));
    assert_null(strstr(body, "sk-ant"));
    free(body);

    body = dp_auth_error_body(-ENOMEM, NULL, NULL, false, &code);
    assert_string_equal(code, "out_of_memory");
    free(body);
}

static void test_tags(void **state)
{
    struct dp_caller c;
    char want[1024], *h;
    size_t i, n = 0;
    (void)state;

    memset(&c, 0, sizeof(c));
    dp_caller_set_tags(&c, NULL);
    assert_string_equal(c.tags, "");
    dp_caller_set_tags(&c, " code ,team-a,, x:y/z , code,a b,caf\xc3\xa9,ok");
    assert_string_equal(c.tags, "code,team-a,x:y/z,ok"); /* repeats and bad tags dropped */

    /* 64 characters pass, 65 do not */
    h = sy_xasprintf("%064d,%065d,last", 7, 8);
    dp_caller_set_tags(&c, h);
    assert_int_equal(strlen(c.tags), 64 + 1 + 4);
    assert_non_null(strstr(c.tags, ",last"));
    free(h);

    /* at most 8, the first ones */
    want[0] = '\0';
    for (i = 0; i < 12; i++)
        n += (size_t)snprintf(want + n, sizeof(want) - n, "%st%zu", i ? "," : "", i);
    dp_caller_set_tags(&c, want);
    assert_string_equal(c.tags, "t0,t1,t2,t3,t4,t5,t6,t7");

    /* the longest result fits */
    n = 0;
    for (i = 0; i < 8; i++)
        n += (size_t)snprintf(want + n, sizeof(want) - n, "%s%063zu%c", i ? "," : "", i,
                              (char)('a' + i));
    dp_caller_set_tags(&c, want);
    assert_string_equal(c.tags, want);
}

static void test_user(void **state)
{
    struct dp_caller c;
    cJSON *root;
    char *big;
    (void)state;

    memset(&c, 0, sizeof(c));
    root = cJSON_Parse("{\"user\":\"user-42\"}");
    dp_caller_set_user(&c, root);
    assert_string_equal(c.user, "user-42");
    cJSON_Delete(root);
    root = cJSON_Parse("{\"user\":42}");
    dp_caller_set_user(&c, root);
    assert_string_equal(c.user, "");
    cJSON_Delete(root);
    dp_caller_set_user(&c, NULL);
    assert_string_equal(c.user, "");

    /* cut to 128 bytes, not inside a UTF-8 sequence: 127 'a' then a 2-byte letter */
    big = sy_xasprintf("{\"user\":\"%0127d\xc3\xa9tail\"}", 0);
    root = cJSON_Parse(big);
    dp_caller_set_user(&c, root);
    assert_int_equal(strlen(c.user), 127);
    cJSON_Delete(root);
    free(big);
    big = sy_xasprintf("{\"user\":\"%0200d\"}", 0);
    root = cJSON_Parse(big);
    dp_caller_set_user(&c, root);
    assert_int_equal(strlen(c.user), DP_CALLER_MAX_USER);
    cJSON_Delete(root);
    free(big);
}

/* Writes <e> through dp_access_log and returns the line parsed. */
static cJSON *log_line(const struct dp_access_entry *e)
{
    char buf[16384];
    int fds[2];
    ssize_t n;
    cJSON *root;

    assert_int_equal(pipe(fds), 0);
    dp_access_log(fds[1], e);
    close(fds[1]);
    n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_int_equal(buf[n - 1], '\n');
    root = cJSON_Parse(buf);
    if (!root)
        fail_msg("not JSON: %s", buf);
    return root;
}

static void test_access_log_fields(void **state)
{
    struct sy_policy *pol = keys_policy();
    struct dp_access_entry e = {
        .request_id = "r1", .prompt_tokens = -1, .completion_tokens = -1, .cached_tokens = -1};
    struct dp_caller c;
    cJSON *root, *labels, *tags, *u;
    char *json;
    (void)state;

    /* anonymous, nothing to attribute */
    memset(&c, 0, sizeof(c));
    dp_caller_log(&c, &e);
    root = log_line(&e);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(root, "tenant")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "tenant_labels")), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "tags")), 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(root, "user")));
    cJSON_Delete(root);

    /* a tenant with labels (one needs escaping), tags and a user with a quote */
    c.tenant = sy_policy_find_tenant(pol, "acme");
    dp_caller_set_tags(&c, "code, team-a");
    u = cJSON_Parse("{\"user\":\"u\\\"1\\n\"}");
    dp_caller_set_user(&c, u);
    cJSON_Delete(u);
    dp_caller_log(&c, &e);
    root = log_line(&e);
    assert_string_equal(cJSON_GetObjectItem(root, "tenant")->valuestring, "acme");
    labels = cJSON_GetObjectItem(root, "tenant_labels");
    assert_string_equal(cJSON_GetObjectItem(labels, "team")->valuestring, "search");
    assert_string_equal(cJSON_GetObjectItem(labels, "feature")->valuestring, "auto \"complete\"");
    tags = cJSON_GetObjectItem(root, "tags");
    assert_int_equal(cJSON_GetArraySize(tags), 2);
    assert_string_equal(cJSON_GetArrayItem(tags, 1)->valuestring, "team-a");
    assert_string_equal(cJSON_GetObjectItem(root, "user")->valuestring, "u\"1\n");
    assert_string_equal(cJSON_GetObjectItem(root, "request_id")->valuestring, "r1");
    json = cJSON_PrintUnformatted(root);
    assert_null(strstr(json, ACME_KEY));
    assert_null(strstr(json, acme_digest)); /* not even the digest */
    free(json);
    cJSON_Delete(root);
    sy_policy_unref(pol);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_mode),    cmocka_unit_test(test_open_mode),
        cmocka_unit_test(test_error_bodies), cmocka_unit_test(test_tags),
        cmocka_unit_test(test_user),         cmocka_unit_test(test_access_log_fields),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
