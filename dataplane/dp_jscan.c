/* dataplane/dp_jscan.c - member lookups in JSON text without a parse. Stateless. */
#include "dp_jscan.h"

#include <string.h>

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* If <p> (inside <json>) starts the member "<name>": where its value starts, else NULL. */
static const char *member_value(const char *json, const char *end, const char *p, size_t nlen)
{
    const char *q;
    size_t bs = 0;

    /* The opening quote must not be escaped (count backslashes before it). */
    for (q = p; q > json && q[-1] == '\\'; q--)
        bs++;
    if (bs % 2)
        return NULL;
    q = p + nlen + 2;
    while (q < end && blank(*q))
        q++;
    if (q >= end || *q != ':')
        return NULL;
    q++;
    while (q < end && blank(*q))
        q++;
    return q < end ? q : NULL;
}

/* Finds the next occurrence of "<name>" at or after <from>. */
static const char *find_key(const char *from, const char *end, const char *name, size_t nlen)
{
    while (from + nlen + 2 <= end) {
        const char *p = memchr(from, '"', (size_t)(end - from));
        if (!p || p + nlen + 2 > end)
            return NULL;
        if (memcmp(p + 1, name, nlen) == 0 && p[nlen + 1] == '"')
            return p;
        from = p + 1;
    }
    return NULL;
}

bool dp_json_has_object_member(const char *json, size_t len, const char *name)
{
    const char *end = json + len, *p = json;
    size_t nlen = strlen(name);

    while ((p = find_key(p, end, name, nlen))) {
        const char *v = member_value(json, end, p, nlen);
        if (v && *v == '{')
            return true;
        p++;
    }
    return false;
}

cJSON *dp_json_member_object(const char *json, size_t len, const char *name)
{
    const char *end = json + len, *p = json, *last = NULL;
    size_t nlen = strlen(name);

    /* The last one: in OpenAI answers usage comes after the choices it accounts for. */
    while ((p = find_key(p, end, name, nlen))) {
        const char *v = member_value(json, end, p, nlen);
        if (v && *v == '{')
            last = v;
        p++;
    }
    if (!last)
        return NULL;
    return cJSON_ParseWithLengthOpts(last, (size_t)(end - last), NULL, false);
}

bool dp_json_looks_like_object(const char *json, size_t len)
{
    size_t a = 0, b = len;

    if (!json)
        return false;
    while (a < b && blank(json[a]))
        a++;
    while (b > a && blank(json[b - 1]))
        b--;
    return b - a >= 2 && json[a] == '{' && json[b - 1] == '}';
}
