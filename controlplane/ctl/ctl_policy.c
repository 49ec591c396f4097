/* controlplane/ctl/ctl_policy.c - `switchyardctl policy ...`: push, list, get, diff,
 * activate against the admin API's /v1/policies.
 *
 * Versions are immutable on the server, so nothing here edits one: push adds a version,
 * activate makes one live (the server records a rollback as a new version pointing
 * back). "active" in get and diff is resolved by the server for get and here, with one
 * extra GET /v1/policies, for diff. See ctl_policy.h.
 */
#include "ctl_policy.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_http.h"
#include "ctl_reply.h"
#include "ctl_table.h"
#include "sy_json.h"
#include "sy_util.h"

#define CTL_SHORT_HASH 12
#define CTL_GREEN "\033[32m"
#define CTL_RED "\033[31m"
#define CTL_RESET "\033[0m"

static int64_t now_ms(void)
{
    return (int64_t)(sy_wall_us() / 1000);
}

/* Writes the path segment for <v>: "active" or the number. */
static const char *vref_str(char *buf, size_t len, const struct ctl_vref *v)
{
    if (v->active)
        snprintf(buf, len, "active");
    else
        snprintf(buf, len, "%" PRId64, v->n);
    return buf;
}

/* The first CTL_SHORT_HASH characters of <hash> after an "algo:" prefix, in <buf>. */
static const char *short_hash(char *buf, size_t len, const char *hash)
{
    const char *colon;

    if (!hash || !*hash)
        return "-";
    colon = strchr(hash, ':');
    if (colon && colon[1])
        hash = colon + 1;
    snprintf(buf, len, "%.*s", CTL_SHORT_HASH, hash);
    return buf;
}

const char *ctl_policy_content_type(const char *src, size_t len)
{
    size_t i = 0;

    if (len >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < len && (src[i] == ' ' || src[i] == '\t' || src[i] == '\r' || src[i] == '\n'))
        i++;
    return i < len && src[i] == '{' ? "application/json" : "application/yaml";
}

/* Reads the whole policy file <path> ("-": stdin) into *buf (caller frees), at most
 * CTL_MAX_POLICY bytes. Returns 0, or -errno with *errmsg set (caller frees). */
static int read_policy(const char *path, char **buf, size_t *len, char **errmsg)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    const char *name = is_stdin ? "stdin" : path;
    size_t cap = 64 * 1024;
    size_t n = 0;
    char *p = NULL;
    int ret = 0;

    *buf = NULL;
    *len = 0;
    if (!f) {
        ret = -errno;
        *errmsg = sy_xasprintf("policy push: cannot open %s: %s", name, strerror(errno));
        return ret;
    }
    if (is_stdin && isatty(STDIN_FILENO))
        fputs("switchyardctl: reading the policy from stdin (end with Ctrl-D)\n", stderr);
    for (;;) {
        size_t got;

        if (!p || n == cap) {
            char *q;

            if (p)
                cap = cap * 2 > CTL_MAX_POLICY ? CTL_MAX_POLICY + 1 : cap * 2;
            q = realloc(p, cap + 1);
            if (!q) {
                ret = -ENOMEM;
                *errmsg = sy_xasprintf("policy push: out of memory reading %s", name);
                goto out_close;
            }
            p = q;
        }
        got = fread(p + n, 1, cap - n, f);
        n += got;
        if (n > CTL_MAX_POLICY) {
            ret = -EFBIG;
            *errmsg = sy_xasprintf("policy push: %s is larger than %u MiB", name,
                                   CTL_MAX_POLICY / (1024 * 1024));
            goto out_close;
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        ret = -EIO;
        *errmsg = sy_xasprintf("policy push: cannot read %s: %s", name,
                               errno ? strerror(errno) : "read error");
        goto out_close;
    }
    p[n] = '\0';
    *buf = p;
    *len = n;
    p = NULL;

out_close:
    free(p);
    if (!is_stdin)
        fclose(f);
    return ret;
}

/* Builds "/v1/policies[?note=...&activate=false]" (caller frees), or NULL on OOM. */
static char *push_path(const struct ctl_args *a)
{
    char *note = NULL;
    char *path;

    if (a->note) {
        CURL *curl = curl_easy_init();

        if (curl)
            note = curl_easy_escape(curl, a->note, 0);
        curl_easy_cleanup(curl);
        if (!note)
            return NULL;
    }
    path = sy_xasprintf("/v1/policies%s%s%s%s", note || a->no_activate ? "?" : "",
                        note ? "note=" : "", note ? note : "",
                        a->no_activate ? (note ? "&activate=false" : "activate=false") : "");
    curl_free(note);
    return path;
}

int ctl_policy_push(const struct ctl_args *a)
{
    char *errmsg = NULL;
    char *src = NULL;
    char *path = NULL;
    char hb[32];
    const char *hash;
    cJSON *reply = NULL;
    int64_t ver;
    bool active;
    size_t len;
    int rc;

    if (read_policy(a->file, &src, &len, &errmsg) < 0) {
        ctl_errorf("%s", errmsg);
        free(errmsg);
        return CTL_EXIT_USAGE;
    }
    path = push_path(a);
    if (!path) {
        ctl_errorf("policy push: out of memory");
        rc = CTL_EXIT_SERVER;
        goto out_free_src;
    }
    rc = ctl_call(a, "POST", path, ctl_policy_content_type(src, len), src, len, &reply);
    if (rc != CTL_EXIT_OK)
        goto out_free_path;
    if (a->json) {
        ctl_json_print(stdout, reply);
        goto out_free_reply;
    }
    if (ctl_json_int(reply, "", "version", &ver, &errmsg) < 0 ||
        ctl_json_str(reply, "", "hash", false, &hash, &errmsg) < 0 ||
        ctl_json_bool(reply, "", "active", false, &active, &errmsg) < 0) {
        rc = ctl_unexpected(errmsg);
        goto out_free_reply;
    }
    if (active)
        printf("pushed version %" PRId64 " (hash %s), now active\n", ver,
               short_hash(hb, sizeof(hb), hash));
    else
        printf("pushed version %" PRId64 " (hash %s), not active; activate it with: "
               "switchyardctl policy activate %" PRId64 "\n",
               ver, short_hash(hb, sizeof(hb), hash), ver);

out_free_reply:
    cJSON_Delete(reply);
out_free_path:
    free(path);
out_free_src:
    free(src);
    return rc;
}

int ctl_policy_print_list(FILE *out, const cJSON *reply, size_t width, char **errmsg)
{
    static const char *const headers[] = {"VERSION", "ACTIVE",      "CREATED",
                                          "HASH",    "ROLLBACK OF", "NOTE"};
    struct ctl_table *t = NULL;
    const cJSON *versions;
    const cJSON *v;
    int64_t top_active;
    bool have_active;
    size_t i = 0;
    int ret = 0;

    if (ctl_json_int_opt(reply, "", "active", &top_active, &have_active, errmsg) < 0 ||
        ctl_json_array(reply, "", "versions", &versions, errmsg) < 0)
        return -EINVAL;
    if (cJSON_GetArraySize(versions) == 0) {
        fputs("no policy versions yet; push one with: switchyardctl policy push FILE\n", out);
        return 0;
    }
    t = ctl_table_new(SY_ARRAY_LEN(headers), headers);
    ctl_table_set_flex(t, 5);
    cJSON_ArrayForEach(v, versions)
    {
        char where[48], tb[48], hb[32];
        int64_t ver, created, rb;
        bool has_created, has_rb, active;
        const char *hash, *note;

        snprintf(where, sizeof(where), "versions[%zu]", i++);
        if (!cJSON_IsObject(v)) {
            *errmsg = sy_xasprintf("%s: expected an object, got %s", where, sy_json_type_name(v));
            ret = -EINVAL;
            goto out_free_table;
        }
        if (ctl_json_int(v, where, "version", &ver, errmsg) < 0 ||
            ctl_json_int_opt(v, where, "created_unix_ms", &created, &has_created, errmsg) < 0 ||
            ctl_json_int_opt(v, where, "rollback_of", &rb, &has_rb, errmsg) < 0 ||
            ctl_json_bool(v, where, "active", false, &active, errmsg) < 0 ||
            ctl_json_str(v, where, "hash", false, &hash, errmsg) < 0 ||
            ctl_json_str(v, where, "note", false, &note, errmsg) < 0) {
            ret = -EINVAL;
            goto out_free_table;
        }
        ctl_table_cellf(t, "%" PRId64, ver);
        ctl_table_cell(t, active || (have_active && ver == top_active) ? "*" : "");
        ctl_table_cell(t, ctl_fmt_time(tb, sizeof(tb), has_created ? created : 0));
        ctl_table_cell(t, short_hash(hb, sizeof(hb), hash));
        if (has_rb)
            ctl_table_cellf(t, "%" PRId64, rb);
        else
            ctl_table_cell(t, "-");
        ctl_table_cell(t, note && *note ? note : "-");
    }
    ctl_table_print(t, out, width);

out_free_table:
    ctl_table_free(t);
    return ret;
}

int ctl_policy_list(const struct ctl_args *a)
{
    char *errmsg = NULL;
    cJSON *reply;
    int rc;

    rc = ctl_call(a, "GET", "/v1/policies", NULL, NULL, 0, &reply);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (a->json)
        ctl_json_print(stdout, reply);
    else if (ctl_policy_print_list(stdout, reply, ctl_term_width(), &errmsg) < 0)
        rc = ctl_unexpected(errmsg);
    cJSON_Delete(reply);
    return rc;
}

int ctl_policy_print_summary(FILE *out, const cJSON *reply, int64_t now, char **errmsg)
{
    int64_t ver, created, rb;
    bool has_created, has_rb, active;
    const char *hash, *note, *source;
    char tb[48], ab[48];
    char *clean;
    size_t n;

    if (ctl_json_int(reply, "", "version", &ver, errmsg) < 0 ||
        ctl_json_int_opt(reply, "", "created_unix_ms", &created, &has_created, errmsg) < 0 ||
        ctl_json_int_opt(reply, "", "rollback_of", &rb, &has_rb, errmsg) < 0 ||
        ctl_json_bool(reply, "", "active", false, &active, errmsg) < 0 ||
        ctl_json_str(reply, "", "hash", false, &hash, errmsg) < 0 ||
        ctl_json_str(reply, "", "note", false, &note, errmsg) < 0 ||
        ctl_json_str(reply, "", "source", true, &source, errmsg) < 0)
        return -EINVAL;
    fprintf(out, "version:      %" PRId64 "%s\n", ver, active ? " (active)" : "");
    clean = ctl_sanitize(hash ? hash : "-");
    fprintf(out, "hash:         %s\n", clean);
    free(clean);
    if (has_created)
        fprintf(out, "created:      %s (%s)\n", ctl_fmt_time(tb, sizeof(tb), created),
                ctl_fmt_ago(ab, sizeof(ab), created, now));
    if (note && *note) {
        clean = ctl_sanitize(note);
        fprintf(out, "note:         %s\n", clean);
        free(clean);
    }
    if (has_rb)
        fprintf(out, "rollback of:  %" PRId64 "\n", rb);
    fputc('\n', out);
    fputs(source, out);
    n = strlen(source);
    if (n == 0 || source[n - 1] != '\n')
        fputc('\n', out);
    return 0;
}

int ctl_policy_get(const struct ctl_args *a)
{
    char *errmsg = NULL;
    char vb[32];
    const char *source;
    const cJSON *compiled;
    cJSON *reply;
    char *path;
    int rc;

    path = sy_xasprintf("/v1/policies/%s", vref_str(vb, sizeof(vb), &a->a));
    rc = ctl_call(a, "GET", path, NULL, NULL, 0, &reply);
    free(path);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (a->json) {
        ctl_json_print(stdout, reply);
    } else if (a->part == CTL_GET_SOURCE) {
        if (ctl_json_str(reply, "", "source", true, &source, &errmsg) < 0) {
            rc = ctl_unexpected(errmsg);
        } else {
            size_t n = strlen(source);

            /* Exact bytes for a pipe (the file can be pushed again as is); a terminal gets
             * its last line finished. */
            fputs(source, stdout);
            if (isatty(STDOUT_FILENO) && n > 0 && source[n - 1] != '\n')
                fputc('\n', stdout);
        }
    } else if (a->part == CTL_GET_COMPILED) {
        if (ctl_json_object(reply, "", "compiled", &compiled, &errmsg) < 0)
            rc = ctl_unexpected(errmsg);
        else
            ctl_json_print(stdout, compiled);
    } else if (ctl_policy_print_summary(stdout, reply, now_ms(), &errmsg) < 0) {
        rc = ctl_unexpected(errmsg);
    }
    cJSON_Delete(reply);
    return rc;
}

void ctl_policy_print_diff(FILE *out, const char *diff, bool colour)
{
    const char *line = diff;

    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        const char *on = !colour          ? NULL
                         : line[0] == '+' ? CTL_GREEN
                         : line[0] == '-' ? CTL_RED
                                          : NULL;

        if (on)
            fputs(on, out);
        fwrite(line, 1, n, out);
        if (on)
            fputs(CTL_RESET, out);
        fputc('\n', out);
        line += n + (nl ? 1 : 0);
    }
}

/* Replaces "active" in <v> by the number of the active version. Returns an exit code. */
static int resolve_active(const struct ctl_args *a, struct ctl_vref *v, int64_t *cache)
{
    char *errmsg = NULL;
    cJSON *reply;
    bool present;
    int rc;

    if (!v->active)
        return CTL_EXIT_OK;
    if (*cache <= 0) {
        rc = ctl_call(a, "GET", "/v1/policies", NULL, NULL, 0, &reply);
        if (rc != CTL_EXIT_OK)
            return rc;
        if (ctl_json_int_opt(reply, "", "active", cache, &present, &errmsg) < 0) {
            cJSON_Delete(reply);
            return ctl_unexpected(errmsg);
        }
        cJSON_Delete(reply);
        if (!present || *cache <= 0) {
            ctl_errorf("policy diff: no version is active yet");
            return CTL_EXIT_SERVER;
        }
    }
    v->active = false;
    v->n = *cache;
    return CTL_EXIT_OK;
}

int ctl_policy_diff(const struct ctl_args *a)
{
    struct ctl_vref from = a->a, to = a->b;
    int64_t active = 0;
    char *errmsg = NULL;
    const char *diff;
    cJSON *reply;
    char *path;
    int rc;

    rc = resolve_active(a, &from, &active);
    if (rc == CTL_EXIT_OK)
        rc = resolve_active(a, &to, &active);
    if (rc != CTL_EXIT_OK)
        return rc;
    path = sy_xasprintf("/v1/policies/%" PRId64 "/diff/%" PRId64, from.n, to.n);
    rc = ctl_call(a, "GET", path, NULL, NULL, 0, &reply);
    free(path);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (a->json) {
        ctl_json_print(stdout, reply);
    } else if (ctl_json_str(reply, "", "diff", true, &diff, &errmsg) < 0) {
        rc = ctl_unexpected(errmsg);
    } else if (*diff == '\0') {
        printf("versions %" PRId64 " and %" PRId64 " compile to the same policy\n", from.n, to.n);
    } else {
        ctl_policy_print_diff(stdout, diff, ctl_use_colour());
    }
    cJSON_Delete(reply);
    return rc;
}

int ctl_policy_activate(const struct ctl_args *a)
{
    char *errmsg = NULL;
    cJSON *reply;
    int64_t ver, rb;
    bool has_rb;
    char *path;
    int rc;

    path = sy_xasprintf("/v1/policies/%" PRId64 "/activate", a->a.n);
    rc = ctl_call(a, "POST", path, NULL, NULL, 0, &reply);
    free(path);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (a->json) {
        ctl_json_print(stdout, reply);
    } else if (ctl_json_int(reply, "", "version", &ver, &errmsg) < 0 ||
               ctl_json_int_opt(reply, "", "rollback_of", &rb, &has_rb, &errmsg) < 0) {
        rc = ctl_unexpected(errmsg);
    } else if (has_rb) {
        printf("activated version %" PRId64 " (rollback to %" PRId64 ")\n", ver, rb);
    } else {
        printf("activated version %" PRId64 "\n", ver);
    }
    cJSON_Delete(reply);
    return rc;
}
