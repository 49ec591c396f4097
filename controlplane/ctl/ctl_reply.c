/* controlplane/ctl/ctl_reply.c - reading the admin API's JSON replies defensively, and
 * reporting errors. See ctl_reply.h.
 */
#include "ctl_reply.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_args.h"
#include "ctl_table.h"
#include "sy_json.h"
#include "sy_util.h"

/* Largest integer a JSON number (a double) carries exactly. */
#define CTL_JSON_MAX_INT 9007199254740992.0
/* How much of a non-JSON error body is worth showing. */
#define CTL_BODY_EXCERPT 200

void ctl_errorf(const char *fmt, ...)
{
    va_list ap;

    fputs("switchyardctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int ctl_unexpected(char *what)
{
    char *clean = ctl_sanitize(what ? what : "(no detail)");

    ctl_errorf("unexpected reply from server: %s", clean);
    free(clean);
    free(what);
    return CTL_EXIT_SERVER;
}

/* Appends "\n  <path>: <message>" lines for each entry of the error.errors array <errs>. */
static char *append_detail_lines(char *text, const cJSON *errs)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, errs)
    {
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
        char *line = NULL;
        char *next;

        if (cJSON_IsString(e))
            line = sy_xstrdup(e->valuestring);
        else if (cJSON_IsString(path) && *path->valuestring && cJSON_IsString(msg))
            line = sy_xasprintf("%s: %s", path->valuestring, msg->valuestring);
        else if (cJSON_IsString(msg))
            line = sy_xstrdup(msg->valuestring);
        else
            line =
                sy_xasprintf("(an entry that is a %s, not {path, message})", sy_json_type_name(e));
        next = ctl_sanitize(line);
        free(line);
        line = sy_xasprintf("%s\n  %s", text, next);
        free(next);
        free(text);
        text = line;
    }
    return text;
}

char *ctl_reply_error_text(long status, const char *body, size_t len)
{
    cJSON *root = sy_json_parse(body, len, NULL);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(err, "errors");
    char *text;

    if (cJSON_IsString(msg) && *msg->valuestring) {
        text = ctl_sanitize(msg->valuestring);
    } else if (cJSON_IsString(code)) {
        char *c = ctl_sanitize(code->valuestring);
        text = sy_xasprintf("HTTP %ld (%s)", status, c);
        free(c);
    } else {
        size_t n = len;
        size_t keep;
        char *excerpt;
        char *clean;

        while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r' || body[n - 1] == ' '))
            n--;
        keep = n > CTL_BODY_EXCERPT ? CTL_BODY_EXCERPT : n;
        excerpt = sy_xstrndup(body, keep);
        clean = ctl_sanitize(excerpt);
        text = n == 0 ? sy_xasprintf("HTTP %ld with an empty body", status)
                      : sy_xasprintf("HTTP %ld: %s%s", status, clean, keep < n ? "..." : "");
        free(clean);
        free(excerpt);
    }
    if (cJSON_IsArray(errs))
        text = append_detail_lines(text, errs);
    cJSON_Delete(root);
    return text;
}

static char *member_path(const char *where, const char *key)
{
    return where && *where ? sy_xasprintf("%s.%s", where, key) : sy_xstrdup(key);
}

static int type_error(const char *where, const char *key, const char *want, const cJSON *got,
                      char **errmsg)
{
    char *path = member_path(where, key);

    if (!got)
        *errmsg = sy_xasprintf("%s: missing (expected %s)", path, want);
    else
        *errmsg = sy_xasprintf("%s: expected %s, got %s", path, want, sy_json_type_name(got));
    free(path);
    return -EINVAL;
}

int ctl_json_int_opt(const cJSON *obj, const char *where, const char *key, int64_t *out,
                     bool *present, char **errmsg)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    double d;

    *out = 0;
    *present = false;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return type_error(where, key, "an integer", v, errmsg);
    d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || fabs(d) > CTL_JSON_MAX_INT) {
        char *path = member_path(where, key);
        *errmsg = sy_xasprintf("%s: expected an integer, got %g", path, d);
        free(path);
        return -EINVAL;
    }
    *out = (int64_t)d;
    *present = true;
    return 0;
}

int ctl_json_int(const cJSON *obj, const char *where, const char *key, int64_t *out, char **errmsg)
{
    bool present;

    if (ctl_json_int_opt(obj, where, key, out, &present, errmsg) < 0)
        return -EINVAL;
    if (!present)
        return type_error(where, key, "an integer", cJSON_GetObjectItemCaseSensitive(obj, key),
                          errmsg);
    return 0;
}

int ctl_json_bool(const cJSON *obj, const char *where, const char *key, bool dflt, bool *out,
                  char **errmsg)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    *out = dflt;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return type_error(where, key, "true or false", v, errmsg);
    *out = cJSON_IsTrue(v);
    return 0;
}

int ctl_json_str(const cJSON *obj, const char *where, const char *key, bool required,
                 const char **out, char **errmsg)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    *out = NULL;
    if ((!v || cJSON_IsNull(v)) && !required)
        return 0;
    if (!cJSON_IsString(v))
        return type_error(where, key, "a string", v, errmsg);
    *out = v->valuestring;
    return 0;
}

int ctl_json_array(const cJSON *obj, const char *where, const char *key, const cJSON **out,
                   char **errmsg)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    *out = NULL;
    if (!cJSON_IsArray(v))
        return type_error(where, key, "an array", v, errmsg);
    *out = v;
    return 0;
}

int ctl_json_object(const cJSON *obj, const char *where, const char *key, const cJSON **out,
                    char **errmsg)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    *out = NULL;
    if (!cJSON_IsObject(v))
        return type_error(where, key, "an object", v, errmsg);
    *out = v;
    return 0;
}

/* Prints a scalar (or a key, as a string) with cJSON's own escaping and number format. */
static int print_scalar(FILE *out, const cJSON *v)
{
    char *text = cJSON_PrintUnformatted(v);

    if (!text)
        return -ENOMEM;
    fputs(text, out);
    cJSON_free(text);
    return 0;
}

static void indent(FILE *out, int depth)
{
    for (int i = 0; i < depth; i++)
        fputs("  ", out);
}

/* jq's layout: one member per line, two spaces per level, empty containers as {} and [].
 * Recursion depth is bounded by the parser's SY_JSON_MAX_DEPTH. */
static int print_value(FILE *out, const cJSON *v, int depth)
{
    bool obj = cJSON_IsObject(v);
    const cJSON *c;

    if (!obj && !cJSON_IsArray(v))
        return print_scalar(out, v);
    if (!v->child) {
        fputs(obj ? "{}" : "[]", out);
        return 0;
    }
    fputc(obj ? '{' : '[', out);
    for (c = v->child; c; c = c->next) {
        fputc('\n', out);
        indent(out, depth + 1);
        if (obj) {
            cJSON *key = cJSON_CreateString(c->string ? c->string : "");
            int rc = key ? print_scalar(out, key) : -ENOMEM;

            cJSON_Delete(key);
            if (rc < 0)
                return rc;
            fputs(": ", out);
        }
        if (print_value(out, c, depth + 1) < 0)
            return -ENOMEM;
        if (c->next)
            fputc(',', out);
    }
    fputc('\n', out);
    indent(out, depth);
    fputc(obj ? '}' : ']', out);
    return 0;
}

int ctl_json_print(FILE *out, const cJSON *json)
{
    int rc = print_value(out, json, 0);

    fputc('\n', out);
    return rc;
}
