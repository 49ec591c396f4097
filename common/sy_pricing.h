/* common/sy_pricing.h - the pricing catalogue: a list of model prices (with time-of-day
 * windows) kept outside the policy, and how it applies to a policy.
 *
 * A catalogue is one YAML or JSON document, {models: [{model, provider?, input_per_mtok,
 * output_per_mtok, cached_input_per_mtok?, windows?}]} (docs/pricing.md). It is checked as
 * strictly as a policy: every problem is reported at once, one per line, each prefixed with
 * the path of its field, and the prices and windows are checked by the policy compiler's own
 * reader (sy_prices_compile), so a price a catalogue accepts is a price a policy accepts.
 *
 * An entry matches the policy models whose upstream_model (which defaults to the model's
 * name) equals its "model"; with "provider" only those of that policy provider. When a
 * model matches an entry with its provider and one without, the one with wins.
 *
 * A parsed catalogue is immutable: any thread may read it; whoever parsed it frees it. This
 * module does no I/O (controlplane/cp_pricing.c loads, refreshes and applies catalogues).
 */
#ifndef SY_PRICING_H
#define SY_PRICING_H

#include <stddef.h>

#include "sy_policy.h"

struct cJSON;

/* Largest catalogue accepted (bytes), from a file or a URL. */
#define SY_PRICING_MAX_BYTES (4u * 1024 * 1024)
/* Most entries in one catalogue. */
#define SY_PRICING_MAX_ENTRIES 10000

struct sy_pricing_entry {
    char *model;    /* compared with the policy models' upstream_model */
    char *provider; /* a policy provider name; NULL = models of any provider */
    struct sy_prices prices;
};

struct sy_pricing {
    struct sy_pricing_entry *entries; /* source order */
    size_t n_entries;
    char sha256[65]; /* SHA-256 of the source bytes, 64 lowercase hex digits */
};

/* Parses the catalogue <src> (<len> bytes, YAML or JSON). Returns a new catalogue (free it
 * with sy_pricing_free), or NULL with *errmsg set (caller frees) to every problem, one per
 * line, e.g. `models[2].windows[0].end: expected a time of day "HH:MM" ...`. Any thread. */
struct sy_pricing *sy_pricing_parse(const char *src, size_t len, char **errmsg);

/* Frees <cat>. Accepts NULL. */
void sy_pricing_free(struct sy_pricing *cat);

/* The entry that prices a policy model with upstream model <upstream_model> served by the
 * policy provider <provider>, or NULL. */
const struct sy_pricing_entry *sy_pricing_find(const struct sy_pricing *cat,
                                               const char *upstream_model, const char *provider);

/* The entries as a JSON list in canonical form (keys in a fixed order, windows resolved),
 * for the admin API. NULL when out of memory. Caller frees with cJSON_Delete. */
struct cJSON *sy_pricing_entries_json(const struct sy_pricing *cat);

/* True when <a> and <b> are the same prices: base prices and windows, in order. */
bool sy_prices_equal(const struct sy_prices *a, const struct sy_prices *b);

/* Applies <cat> to <pol>: every model that an entry matches gets that entry's prices (base
 * prices and windows, replacing its own). When that changes at least one model, *merged is
 * set to the policy as a JSON document (caller frees; it compiles to <pol> with the new
 * prices) and *changed to the names of the changed models in policy order (free with
 * sy_pricing_names_free; *n_changed of them). When nothing changes both are NULL and
 * *n_changed is 0. Returns 0, or -ENOMEM. Any thread. */
int sy_pricing_apply(const struct sy_pricing *cat, const struct sy_policy *pol, char **merged,
                     char ***changed, size_t *n_changed);

/* Frees a name list from sy_pricing_apply. Accepts NULL. */
void sy_pricing_names_free(char **names, size_t n);

#endif
