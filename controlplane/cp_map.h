/* controlplane/cp_map.h - a string-keyed hash map (open addressing, insertion order kept)
 * for the control plane's aggregations. Not thread-safe: its owner locks. */
#ifndef CP_MAP_H
#define CP_MAP_H

#include <stddef.h>
#include <stdint.h>

struct cp_map {
    char **keys; /* owned, in insertion order */
    void **vals;
    size_t n, cap;
    size_t *slots; /* index into keys, SIZE_MAX = empty */
    size_t n_slots;
};

/* The value stored under <key>, or NULL. */
void *cp_map_get(const struct cp_map *m, const char *key);

/* The index of <key> in keys[]/vals[], or SIZE_MAX. */
size_t cp_map_index(const struct cp_map *m, const char *key);

/* Stores <val> under a copy of <key>, which must not be present yet. */
void cp_map_put(struct cp_map *m, const char *key, void *val);

/* Empties <m>, calling <free_val> (may be NULL) on each value; <m> stays usable. */
void cp_map_clear(struct cp_map *m, void (*free_val)(void *));

#endif
