/* controlplane/cp_diff.c - unified diff by longest common subsequence over lines.
 *
 * Policies are small, so the plain LCS table is fine once the common head and tail are
 * trimmed; past a size cap the middle is shown as wholly replaced rather than spending
 * quadratic memory. */
#include "cp_diff.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

#define CP_DIFF_MAX_CELLS (4u * 1000 * 1000)
#define CP_DIFF_CONTEXT 3

struct lines {
    const char **s;
    size_t *len;
    size_t n;
};

static void split(const char *text, struct lines *out)
{
    size_t cap = 16;
    const char *p = text;

    out->s = sy_xmalloc(cap * sizeof(*out->s));
    out->len = sy_xmalloc(cap * sizeof(*out->len));
    out->n = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        if (out->n == cap) {
            cap *= 2;
            out->s = sy_xrealloc(out->s, cap * sizeof(*out->s));
            out->len = sy_xrealloc(out->len, cap * sizeof(*out->len));
        }
        out->s[out->n] = p;
        out->len[out->n] = l;
        out->n++;
        p += l + (nl ? 1 : 0);
    }
}

static bool same(const struct lines *a, size_t i, const struct lines *b, size_t j)
{
    return a->len[i] == b->len[j] && memcmp(a->s[i], b->s[j], a->len[i]) == 0;
}

enum op { OP_SAME = 0, OP_DEL, OP_ADD };

struct edit {
    enum op op;
    size_t ai, bi; /* line index in a (SAME, DEL) and b (SAME, ADD) */
};

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = sy_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put_hunk_header(struct buf *b, size_t a0, size_t an, size_t b0, size_t bn)
{
    char tmp[128];
    int n = snprintf(tmp, sizeof(tmp), "@@ -%zu,%zu +%zu,%zu @@\n", a0, an, b0, bn);
    put(b, tmp, (size_t)n);
}

static void put_line(struct buf *b, char mark, const char *s, size_t n)
{
    put(b, &mark, 1);
    put(b, s, n);
    put(b, "\n", 1);
}

char *cp_diff_unified(const char *a_text, const char *b_text, const char *a_name,
                      const char *b_name)
{
    struct lines a, b;
    struct edit *ed;
    size_t ne = 0, head = 0, tail = 0, ma, mb;
    struct buf out = {0};

    split(a_text, &a);
    split(b_text, &b);
    while (head < a.n && head < b.n && same(&a, head, &b, head))
        head++;
    while (tail < a.n - head && tail < b.n - head && same(&a, a.n - 1 - tail, &b, b.n - 1 - tail))
        tail++;
    ma = a.n - head - tail;
    mb = b.n - head - tail;
    ed = sy_xmalloc((a.n + b.n + 1) * sizeof(*ed));
    for (size_t i = 0; i < head; i++)
        ed[ne++] = (struct edit){OP_SAME, i, i};
    if ((ma + 1) * (mb + 1) <= CP_DIFF_MAX_CELLS) {
        /* lcs[i][j] = LCS length of a[head+i..] and b[head+j..] */
        uint32_t *lcs = sy_xcalloc((ma + 1) * (mb + 1), sizeof(*lcs));
#define L(i, j) lcs[(i) * (mb + 1) + (j)]
        for (size_t i = ma; i-- > 0;) {
            for (size_t j = mb; j-- > 0;) {
                if (same(&a, head + i, &b, head + j))
                    L(i, j) = L(i + 1, j + 1) + 1;
                else
                    L(i, j) = L(i + 1, j) > L(i, j + 1) ? L(i + 1, j) : L(i, j + 1);
            }
        }
        size_t i = 0, j = 0;
        while (i < ma || j < mb) {
            if (i < ma && j < mb && same(&a, head + i, &b, head + j)) {
                ed[ne++] = (struct edit){OP_SAME, head + i++, head + j++};
            } else if (i < ma && (j == mb || L(i + 1, j) >= L(i, j + 1))) {
                /* Deletions before insertions, as diff(1) prints them. */
                ed[ne++] = (struct edit){OP_DEL, head + i++, 0};
            } else {
                ed[ne++] = (struct edit){OP_ADD, 0, head + j++};
            }
        }
#undef L
        free(lcs);
    } else {
        for (size_t i = 0; i < ma; i++)
            ed[ne++] = (struct edit){OP_DEL, head + i, 0};
        for (size_t j = 0; j < mb; j++)
            ed[ne++] = (struct edit){OP_ADD, 0, head + j};
    }
    for (size_t k = 0; k < tail; k++)
        ed[ne++] = (struct edit){OP_SAME, a.n - tail + k, b.n - tail + k};

    put(&out, "", 0);
    bool any = false;
    for (size_t k = 0; k < ne; k++)
        any |= ed[k].op != OP_SAME;
    if (any) {
        char hdr[512];
        int n = snprintf(hdr, sizeof(hdr), "--- %s\n+++ %s\n", a_name, b_name);
        put(&out, hdr, (size_t)n);
    }
    /* Hunks: runs of changes with up to CONTEXT lines around, merged when close. */
    size_t k = 0;
    while (any && k < ne) {
        while (k < ne && ed[k].op == OP_SAME)
            k++;
        if (k == ne)
            break;
        size_t start = k > CP_DIFF_CONTEXT ? k - CP_DIFF_CONTEXT : 0;
        size_t end = k;
        for (;;) {
            while (end < ne && ed[end].op != OP_SAME)
                end++;
            size_t run = end;
            while (run < ne && ed[run].op == OP_SAME && run - end < 2 * CP_DIFF_CONTEXT)
                run++;
            if (run < ne && ed[run].op != OP_SAME) {
                end = run;
                continue;
            }
            end = end + CP_DIFF_CONTEXT < ne ? end + CP_DIFF_CONTEXT : ne;
            break;
        }
        size_t a0 = 0, b0 = 0, an = 0, bn = 0;
        bool a_set = false, b_set = false;
        for (size_t x = start; x < end; x++) {
            if (ed[x].op != OP_ADD) {
                if (!a_set) {
                    a0 = ed[x].ai;
                    a_set = true;
                }
                an++;
            }
            if (ed[x].op != OP_DEL) {
                if (!b_set) {
                    b0 = ed[x].bi;
                    b_set = true;
                }
                bn++;
            }
        }
        put_hunk_header(&out, an ? a0 + 1 : a0, an, bn ? b0 + 1 : b0, bn);
        for (size_t x = start; x < end; x++) {
            if (ed[x].op == OP_SAME)
                put_line(&out, ' ', a.s[ed[x].ai], a.len[ed[x].ai]);
            else if (ed[x].op == OP_DEL)
                put_line(&out, '-', a.s[ed[x].ai], a.len[ed[x].ai]);
            else
                put_line(&out, '+', b.s[ed[x].bi], b.len[ed[x].bi]);
        }
        k = end;
    }
    free(ed);
    free(a.s);
    free(a.len);
    free(b.s);
    free(b.len);
    return out.p;
}
