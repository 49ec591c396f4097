/* dataplane/dp_features.c - one walk over a request to fill struct dp_features.
 *
 * The body is walked once; the two routing texts are borrowed when they are a single JSON
 * string and joined into one malloc'd buffer otherwise. Worker thread; no shared state.
 */
#include "dp_features.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

/* ---- hashing ----------------------------------------------------------------------------- */

/* XXH64 (Yann Collet's algorithm, written from its specification). Not FNV-1a: FNV-1a is a
 * multiply per byte on one dependency chain, ~4 cycles/byte, about 5 us for a 4 KB prompt;
 * XXH64 runs four lanes of 8 bytes and costs well under 1 us for the same. */
#define P1 UINT64_C(11400714785074694791)
#define P2 UINT64_C(14029467366897019727)
#define P3 UINT64_C(1609587929392839161)
#define P4 UINT64_C(9650029242287828579)
#define P5 UINT64_C(2870177450012600261)

static uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* Reads little-endian words; every target we build for is little-endian. */
static uint64_t read64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint32_t read32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t xxh_round(uint64_t acc, uint64_t input)
{
    acc += input * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t val)
{
    acc ^= xxh_round(0, val);
    return acc * P1 + P4;
}

uint64_t dp_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data, *end = p + len;
    uint64_t h;

    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        const unsigned char *limit = end - 32;
        do {
            v1 = xxh_round(v1, read64(p));
            v2 = xxh_round(v2, read64(p + 8));
            v3 = xxh_round(v3, read64(p + 16));
            v4 = xxh_round(v4, read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xxh_merge(h, v1);
        h = xxh_merge(h, v2);
        h = xxh_merge(h, v3);
        h = xxh_merge(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)len;
    for (; p + 8 <= end; p += 8) {
        h ^= xxh_round(0, read64(p));
        h = rotl64(h, 27) * P1 + P4;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)read32(p) * P1;
        h = rotl64(h, 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++) {
        h ^= (uint64_t)*p * P5;
        h = rotl64(h, 11) * P1;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* ---- small helpers ----------------------------------------------------------------------- */

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static bool str_is(const cJSON *item, const char *s)
{
    return cJSON_IsString(item) && strcmp(item->valuestring, s) == 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits header value <v> at ',' into trimmed, non-empty items appended to <items>. */
static void split_list(const char *v, struct dp_text *items, size_t max, size_t max_len, size_t *n,
                       size_t *n_dropped)
{
    while (v && *v) {
        const char *end = strchr(v, ',');
        const char *e = end ? end : v + strlen(v);
        const char *b = v;
        while (b < e && is_space(*b))
            b++;
        while (e > b && is_space(e[-1]))
            e--;
        if (e > b) {
            if (*n < max && (size_t)(e - b) <= max_len)
                items[(*n)++] = (struct dp_text){b, (size_t)(e - b)};
            else
                (*n_dropped)++;
        }
        v = end ? end + 1 : NULL;
    }
}

/* Approximate serialized size of a JSON tree (tool schemas), without printing it. cJSON's
 * parser caps nesting (CJSON_NESTING_LIMIT), which bounds the recursion. */
static size_t json_weight(const cJSON *item)
{
    size_t n = 0;

    for (; item; item = item->next) {
        if (item->string)
            n += strlen(item->string) + 3;
        if (cJSON_IsString(item))
            n += strlen(item->valuestring) + 2;
        else if (cJSON_IsArray(item) || cJSON_IsObject(item))
            n += 2 + json_weight(item->child);
        else
            n += 4;
    }
    return n;
}

static bool is_text_part(const cJSON *part, const cJSON **text)
{
    const cJSON *type = get(part, "type");
    *text = get(part, "text");
    return (str_is(type, "text") || str_is(type, "input_text") || !type) && cJSON_IsString(*text);
}

static bool is_system_role(const cJSON *role)
{
    return str_is(role, "system") || str_is(role, "developer");
}

/* ---- text assembly ----------------------------------------------------------------------- */

/* Where the pieces of one routing text come from. */
struct text_src {
    const cJSON *first; /* first message (or NULL) */
    size_t n_msgs;      /* messages that contribute (system: several) */
    const char *str;    /* the only piece when it is one string */
    size_t str_len;
};

/* Calls on_piece for each text piece of message <msg>'s content. */
typedef void (*piece_fn)(void *arg, const char *p, size_t len);

static void for_each_piece(const cJSON *content, piece_fn fn, void *arg)
{
    const cJSON *part, *text;

    if (cJSON_IsString(content)) {
        fn(arg, content->valuestring, strlen(content->valuestring));
        return;
    }
    cJSON_ArrayForEach(part, content)
    {
        if (is_text_part(part, &text))
            fn(arg, text->valuestring, strlen(text->valuestring));
    }
}

/* Appends pieces to a buffer, '\n' between them, up to DP_FEATURES_MAX_TEXT bytes. A NULL
 * buffer only measures. */
struct joiner {
    char *buf;
    size_t len;
    bool any;
    bool cut;
};

static void join_piece(void *arg, const char *p, size_t len)
{
    struct joiner *j = arg;
    size_t room;

    if (j->any && len > 0) {
        if (j->len < DP_FEATURES_MAX_TEXT) {
            if (j->buf)
                j->buf[j->len] = '\n';
            j->len++;
        } else {
            j->cut = true;
        }
    }
    if (len > 0)
        j->any = true;
    room = DP_FEATURES_MAX_TEXT - j->len;
    if (len > room) {
        j->cut = true;
        len = room;
    }
    if (j->buf)
        memcpy(j->buf + j->len, p, len);
    j->len += len;
}

static void join_text(const struct text_src *src, bool system, struct joiner *j)
{
    const cJSON *msg;

    for (msg = src->first; msg; msg = msg->next) {
        if (system && !is_system_role(get(msg, "role")))
            continue;
        for_each_piece(get(msg, "content"), join_piece, j);
        if (!system)
            break;
    }
}

struct hasher {
    uint64_t h;
    bool any;
    size_t budget;
};

static void hash_piece(void *arg, const char *p, size_t len)
{
    struct hasher *hs = arg;

    if (len > hs->budget)
        len = hs->budget;
    if (!len)
        return;
    hs->budget -= len;
    hs->h = dp_hash64(p, len, hs->h);
    hs->any = true;
}

/* ---- extraction -------------------------------------------------------------------------- */

struct walk {
    size_t text_bytes;
    struct text_src user, sys;
    const cJSON *first_user;
};

/* Counts one message's text, images and tool calls; notes user and system messages. */
static void walk_message(struct dp_features *out, struct walk *w, const cJSON *msg)
{
    const cJSON *role = get(msg, "role"), *content = get(msg, "content");
    const cJSON *part, *text, *call;
    const char *single = NULL;
    size_t single_len = 0, n_pieces = 0;

    out->n_messages++;
    if (cJSON_IsString(content)) {
        single = content->valuestring;
        single_len = strlen(single);
        w->text_bytes += single_len;
        n_pieces = 1;
    } else if (cJSON_IsArray(content)) {
        cJSON_ArrayForEach(part, content)
        {
            const cJSON *type = get(part, "type");
            if (is_text_part(part, &text)) {
                size_t n = strlen(text->valuestring);
                w->text_bytes += n;
                if (n_pieces++ == 0) {
                    single = text->valuestring;
                    single_len = n;
                }
            } else if (str_is(type, "image_url") || str_is(type, "input_image")) {
                out->has_images = true;
            }
        }
    }
    cJSON_ArrayForEach(call, get(msg, "tool_calls"))
    {
        const cJSON *fn = get(call, "function");
        const cJSON *name = get(fn, "name"), *args = get(fn, "arguments");
        if (cJSON_IsString(name))
            w->text_bytes += strlen(name->valuestring);
        if (cJSON_IsString(args))
            w->text_bytes += strlen(args->valuestring);
    }

    if (str_is(role, "user")) {
        if (!w->first_user)
            w->first_user = msg;
        w->user = (struct text_src){msg, 1, n_pieces == 1 ? single : NULL, single_len};
    } else if (is_system_role(role)) {
        if (!w->sys.first)
            w->sys = (struct text_src){msg, 0, n_pieces == 1 ? single : NULL, single_len};
        w->sys.n_msgs++;
    }
}

/* A prompt or input given as a string or an array of strings (legacy completions,
 * embeddings): each string is a user message. */
static void walk_prompt(struct dp_features *out, struct walk *w, const cJSON *prompt,
                        const char **last, size_t *last_len)
{
    const cJSON *it;

    if (cJSON_IsString(prompt)) {
        out->n_messages = 1;
        *last = prompt->valuestring;
        *last_len = strlen(*last);
        w->text_bytes += *last_len;
        return;
    }
    cJSON_ArrayForEach(it, prompt)
    {
        if (!cJSON_IsString(it))
            continue;
        out->n_messages++;
        *last = it->valuestring;
        *last_len = strlen(*last);
        w->text_bytes += *last_len;
    }
}

/* Makes out->last_user and out->system: borrowed when one string, joined into out->buf
 * otherwise. Returns 0 or -ENOMEM. */
static int assemble_texts(struct dp_features *out, const struct walk *w)
{
    bool join_user = w->user.first && !w->user.str;
    bool join_sys = w->sys.first && (w->sys.n_msgs > 1 || !w->sys.str);
    struct joiner ju = {0}, js = {0};

    if (join_user)
        join_text(&w->user, false, &ju);
    if (join_sys)
        join_text(&w->sys, true, &js);
    if (ju.len + js.len > 0) {
        /* Both lengths are capped at DP_FEATURES_MAX_TEXT, so the size cannot overflow. */
        out->buf = malloc(ju.len + js.len + 2);
        if (!out->buf)
            return -ENOMEM;
    }
    if (join_user && out->buf) {
        ju = (struct joiner){.buf = out->buf};
        join_text(&w->user, false, &ju);
        ju.buf[ju.len] = '\0';
        out->last_user = (struct dp_text){ju.buf, ju.len};
        out->last_user_cut = ju.cut;
    } else if (w->user.str) {
        out->last_user.p = w->user.str;
        out->last_user.len = w->user.str_len;
        if (out->last_user.len > DP_FEATURES_MAX_TEXT) {
            out->last_user.len = DP_FEATURES_MAX_TEXT;
            out->last_user_cut = true;
        }
    }
    if (join_sys && out->buf) {
        js = (struct joiner){.buf = out->buf + ju.len + 1};
        join_text(&w->sys, true, &js);
        js.buf[js.len] = '\0';
        out->system = (struct dp_text){js.buf, js.len};
        out->system_cut = js.cut;
    } else if (w->sys.str) {
        out->system.p = w->sys.str;
        out->system.len = w->sys.str_len;
        if (out->system.len > DP_FEATURES_MAX_TEXT) {
            out->system.len = DP_FEATURES_MAX_TEXT;
            out->system_cut = true;
        }
    }
    return 0;
}

int dp_features_extract(const cJSON *req, dp_header_get_fn get_header, void *hdr_arg,
                        struct dp_features *out)
{
    const cJSON *v, *msg, *meta, *rf;
    struct walk w = {0};
    const char *prompt_last = NULL;
    size_t prompt_last_len = 0, tool_bytes = 0;
    struct hasher hs = {.h = 0, .budget = DP_FEATURES_MAX_TEXT};
    int rc = 0;

    memset(out, 0, sizeof(*out));
    out->last_user.p = out->system.p = out->region.p = "";
    if (!cJSON_IsObject(req))
        return -EINVAL;

    v = get(req, "model");
    if (cJSON_IsString(v))
        out->model = v->valuestring;
    out->stream = cJSON_IsTrue(get(req, "stream"));
    rf = get(req, "response_format");
    v = get(rf, "type");
    out->json_mode = str_is(v, "json_object") || str_is(v, "json_schema");
    v = get(req, "tools");
    if (cJSON_IsArray(v) && v->child) {
        out->has_tools = true;
        tool_bytes += json_weight(v->child);
    }
    v = get(req, "functions");
    if (cJSON_IsArray(v) && v->child) {
        out->has_tools = true;
        tool_bytes += json_weight(v->child);
    }

    if (get_header) {
        const char *h = get_header(hdr_arg, DP_HDR_TAGS);
        split_list(h, out->tags, DP_FEATURES_MAX_TAGS, DP_FEATURES_MAX_TAG_LEN, &out->n_tags,
                   &out->n_dropped);
        h = get_header(hdr_arg, DP_HDR_COMPLIANCE);
        split_list(h, out->compliance, DP_FEATURES_MAX_COMPLIANCE, DP_FEATURES_MAX_TAG_LEN,
                   &out->n_compliance, &out->n_dropped);
        h = get_header(hdr_arg, DP_HDR_REGION);
        if (h) {
            struct dp_text one[1];
            size_t n = 0, dropped = 0;
            split_list(h, one, 1, DP_FEATURES_MAX_TAG_LEN, &n, &dropped);
            if (n)
                out->region = one[0];
        }
    }
    meta = get(req, "metadata");
    if (cJSON_IsObject(meta)) {
        cJSON_ArrayForEach(v, meta)
        {
            size_t n = strlen(v->string);
            if (n && n <= DP_FEATURES_MAX_TAG_LEN && out->n_tags < DP_FEATURES_MAX_TAGS)
                out->tags[out->n_tags++] = (struct dp_text){v->string, n};
            else
                out->n_dropped++;
        }
    }

    v = get(req, "messages");
    if (cJSON_IsArray(v)) {
        cJSON_ArrayForEach(msg, v)
        {
            if (cJSON_IsObject(msg))
                walk_message(out, &w, msg);
        }
    } else {
        v = get(req, "prompt");
        if (!v)
            v = get(req, "input");
        walk_prompt(out, &w, v, &prompt_last, &prompt_last_len);
        if (prompt_last)
            w.user = (struct text_src){NULL, 1, prompt_last, prompt_last_len};
    }
    out->prompt_tokens = (int64_t)(w.text_bytes / 4 + 3 * (size_t)out->n_messages + tool_bytes / 4);

    rc = assemble_texts(out, &w);
    if (rc < 0)
        return rc;

    if (out->system.len)
        hash_piece(&hs, out->system.p, out->system.len);
    hs.budget = DP_FEATURES_MAX_TEXT;
    if (w.first_user)
        for_each_piece(get(w.first_user, "content"), hash_piece, &hs);
    else if (prompt_last)
        hash_piece(&hs, out->last_user.p, out->last_user.len);
    out->affinity_hash = hs.any ? hs.h : 0;
    return 0;
}

void dp_features_cleanup(struct dp_features *f)
{
    free(f->buf);
    f->buf = NULL;
    f->last_user.p = f->system.p = "";
    f->last_user.len = f->system.len = 0;
}

bool dp_features_has_tag(const struct dp_features *f, const char *tag)
{
    for (size_t i = 0; i < f->n_tags; i++)
        if (sy_strcaseeq_n(f->tags[i].p, f->tags[i].len, tag))
            return true;
    return false;
}
