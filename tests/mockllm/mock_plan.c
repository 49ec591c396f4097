/* tests/mockllm/mock_plan.c - the echo plan and the rules every dialect shares (see .h).
 *
 * Pure functions on borrowed input; results are malloc'd and owned by the caller.
 */
#include "mock_plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

long mock_tokens(size_t bytes)
{
    return (long)((bytes + 3) / 4);
}

long mock_message_tokens(size_t bytes)
{
    return mock_tokens(bytes) + 3;
}

int mock_plan_finish(struct mock_plan *p)
{
    size_t tlen = strlen(p->text);
    size_t plen = strlen(MOCK_REPLY_PREFIX);
    cJSON *args;

    p->reply = malloc(plen + tlen + 1);
    if (!p->reply)
        return -ENOMEM;
    memcpy(p->reply, MOCK_REPLY_PREFIX, plen);
    memcpy(p->reply + plen, p->text, tlen + 1);
    if (!p->tool_name) {
        p->completion_tokens = mock_tokens(plen + tlen);
        return 0;
    }
    /* cJSON does the escaping, so the arguments are always valid JSON. */
    args = cJSON_CreateObject();
    if (!args || !cJSON_AddStringToObject(args, "echo", p->text)) {
        cJSON_Delete(args);
        return -ENOMEM;
    }
    p->tool_args = cJSON_PrintUnformatted(args);
    cJSON_Delete(args);
    if (!p->tool_args)
        return -ENOMEM;
    p->completion_tokens = mock_tokens(strlen(p->tool_args));
    return 0;
}

void mock_plan_cleanup(struct mock_plan *p)
{
    free(p->model);
    free(p->text);
    free(p->tool_name);
    free(p->reply);
    cJSON_free(p->tool_args);
    memset(p, 0, sizeof(*p));
}

static bool is_utf8_start(const char *s, size_t len, size_t i)
{
    return i >= len || ((unsigned char)s[i] & 0xC0) != 0x80;
}

static int reserve(struct mock_piece **v, size_t *cap, size_t want)
{
    struct mock_piece *nv;
    size_t ncap = *cap ? *cap : 16;

    if (want <= *cap)
        return 0;
    while (ncap < want)
        ncap *= 2;
    nv = realloc(*v, ncap * sizeof(**v));
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *cap = ncap;
    return 0;
}

static int push_piece(struct mock_piece **v, size_t *n, size_t *cap, size_t off, size_t len)
{
    if (reserve(v, cap, *n + 1) < 0)
        return -ENOMEM;
    (*v)[*n].off = off;
    (*v)[*n].len = len;
    (*n)++;
    return 0;
}

/* Cuts [off, off+len) into pieces of at most MOCK_PIECE_MAX bytes on character bounds. */
static int push_word(const char *s, size_t slen, struct mock_piece **v, size_t *n, size_t *cap,
                     size_t off, size_t len)
{
    size_t end = off + len;

    while (off < end) {
        size_t cut = off + MOCK_PIECE_MAX < end ? off + MOCK_PIECE_MAX : end;
        while (cut > off + 1 && !is_utf8_start(s, slen, cut))
            cut--;
        if (push_piece(v, n, cap, off, cut - off) < 0)
            return -ENOMEM;
        off = cut;
    }
    return 0;
}

/* Splits the longest piece in two at a character boundary near its middle. Returns false
 * when no piece holds two characters. <v> has room for one more piece. */
static bool halve_longest(const char *s, size_t slen, struct mock_piece *v, size_t *n)
{
    size_t best = 0, off, len, mid;

    for (size_t i = 1; i < *n; i++) {
        if (v[i].len > v[best].len)
            best = i;
    }
    if (*n == 0 || v[best].len < 2)
        return false;
    off = v[best].off;
    len = v[best].len;
    mid = off + len / 2;
    while (mid > off && !is_utf8_start(s, slen, mid))
        mid--;
    if (mid == off) {
        mid = off + len / 2;
        while (mid < off + len && !is_utf8_start(s, slen, mid))
            mid++;
    }
    if (mid == off || mid == off + len)
        return false; /* one multi-byte character: the longest piece cannot shrink */
    memmove(&v[best + 2], &v[best + 1], (*n - best - 1) * sizeof(*v));
    v[best].len = mid - off;
    v[best + 1].off = mid;
    v[best + 1].len = off + len - mid;
    (*n)++;
    return true;
}

int mock_split(const char *s, size_t len, size_t min_pieces, struct mock_piece **out, size_t *n)
{
    struct mock_piece *v = NULL;
    size_t cnt = 0, cap = 0, start = 0;

    for (size_t i = 1; i <= len; i++) {
        if (i == len || (s[i] == ' ' && s[i - 1] != ' ')) {
            if (push_word(s, len, &v, &cnt, &cap, start, i - start) < 0)
                goto out_free;
            start = i;
        }
    }
    if (reserve(&v, &cap, min_pieces) < 0) /* room for the pieces halving adds */
        goto out_free;
    while (cnt < min_pieces && halve_longest(s, len, v, &cnt))
        continue;
    *out = v;
    *n = cnt;
    return 0;

out_free:
    free(v);
    return -ENOMEM;
}

char *mock_content_text(const cJSON *content, size_t *len, bool *bad)
{
    const cJSON *part;
    size_t total = 0;
    char *text;

    *bad = false;
    *len = 0;
    if (cJSON_IsString(content)) {
        *len = strlen(content->valuestring);
        return strdup(content->valuestring);
    }
    if (content && !cJSON_IsArray(content) && !cJSON_IsNull(content)) {
        *bad = true;
        return NULL;
    }
    cJSON_ArrayForEach(part, content)
    {
        const char *t = mock_json_string(part, "text");
        if (t)
            total += strlen(t);
    }
    text = malloc(total + 1);
    if (!text)
        return NULL;
    total = 0;
    cJSON_ArrayForEach(part, content)
    {
        const char *t = mock_json_string(part, "text");
        if (t) {
            size_t tl = strlen(t);
            memcpy(text + total, t, tl);
            total += tl;
        }
    }
    text[total] = '\0';
    *len = total;
    return text;
}

/* cJSON allocates with malloc (no hooks are installed), so callers may use free(). */
char *mock_json_print(const cJSON *item, size_t *len)
{
    char *s = cJSON_PrintUnformatted(item);
    if (s)
        *len = strlen(s);
    return s;
}

char *mock_sse_event(const cJSON *item)
{
    static const char head[] = "data: ";
    char *json = cJSON_PrintUnformatted(item);
    size_t jl;
    char *ev;

    if (!json)
        return NULL;
    jl = strlen(json);
    ev = malloc(sizeof(head) - 1 + jl + 3);
    if (ev) {
        memcpy(ev, head, sizeof(head) - 1);
        memcpy(ev + sizeof(head) - 1, json, jl);
        memcpy(ev + sizeof(head) - 1 + jl, "\n\n", 3);
    }
    cJSON_free(json);
    return ev;
}

const char *mock_json_string(const cJSON *obj, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}
