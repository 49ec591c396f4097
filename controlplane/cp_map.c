/* controlplane/cp_map.c - string-keyed hash map, kept at most half full. */
#include "cp_map.h"

#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h ^ (h >> 31);
}

static void rehash(struct cp_map *m, size_t n_slots)
{
    free(m->slots);
    m->slots = sy_xmalloc(n_slots * sizeof(*m->slots));
    m->n_slots = n_slots;
    for (size_t i = 0; i < n_slots; i++)
        m->slots[i] = SIZE_MAX;
    for (size_t k = 0; k < m->n; k++) {
        size_t i = (size_t)hash_str(m->keys[k]) & (n_slots - 1);
        while (m->slots[i] != SIZE_MAX)
            i = (i + 1) & (n_slots - 1);
        m->slots[i] = k;
    }
}

size_t cp_map_index(const struct cp_map *m, const char *key)
{
    if (!m->n_slots)
        return SIZE_MAX;
    for (size_t i = (size_t)hash_str(key) & (m->n_slots - 1); m->slots[i] != SIZE_MAX;
         i = (i + 1) & (m->n_slots - 1)) {
        if (strcmp(m->keys[m->slots[i]], key) == 0)
            return m->slots[i];
    }
    return SIZE_MAX;
}

void *cp_map_get(const struct cp_map *m, const char *key)
{
    size_t k = cp_map_index(m, key);
    return k == SIZE_MAX ? NULL : m->vals[k];
}

void cp_map_put(struct cp_map *m, const char *key, void *val)
{
    size_t i;

    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->keys = sy_xrealloc(m->keys, m->cap * sizeof(*m->keys));
        m->vals = sy_xrealloc(m->vals, m->cap * sizeof(*m->vals));
    }
    m->keys[m->n] = sy_xstrdup(key);
    m->vals[m->n] = val;
    m->n++;
    if (m->n * 2 > m->n_slots) {
        rehash(m, m->n_slots ? m->n_slots * 2 : 32);
        return;
    }
    i = (size_t)hash_str(key) & (m->n_slots - 1);
    while (m->slots[i] != SIZE_MAX)
        i = (i + 1) & (m->n_slots - 1);
    m->slots[i] = m->n - 1;
}

void cp_map_clear(struct cp_map *m, void (*free_val)(void *))
{
    for (size_t k = 0; k < m->n; k++) {
        free(m->keys[k]);
        if (free_val)
            free_val(m->vals[k]);
    }
    free(m->keys);
    free(m->vals);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}
