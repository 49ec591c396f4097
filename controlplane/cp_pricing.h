/* controlplane/cp_pricing.h - the pricing catalogue (--pricing FILE|URL): load it, refresh
 * it, and keep the active policy's prices in line with it (docs/pricing.md).
 *
 * One thread of its own does all the blocking work: it reads the file or fetches the URL
 * (libcurl, bounded in time and size) at start and every refresh_s seconds, and reconciles
 * whenever the catalogue changes or the active policy version does. Reconciling applies the
 * catalogue's prices to the active policy and, when that changes the policy, pushes the
 * result as a new version through cp_policies and activates it. A catalogue that cannot be
 * read or does not parse changes nothing: the previous one stays, and the error is kept for
 * GET /v1/pricing.
 *
 * Threads: cp_pricing_new/start/free on the main thread; cp_pricing_state_json and the admin
 * handler on any thread (the admin loop); everything else runs on the pricing thread.
 */
#ifndef CP_PRICING_H
#define CP_PRICING_H

#include <stdbool.h>

struct cJSON;
struct cp_policies;
struct cp_pricing;
struct sy_http_req;

#define CP_PRICING_DEFAULT_REFRESH_S 300
#define CP_PRICING_MAX_REFRESH_S 86400

/* A follower of the catalogue at <source>: an http:// or https:// URL, else a file path
 * (both borrowed, copied). <ps> is borrowed and must outlive the result. Nothing is read
 * before cp_pricing_start. Returns NULL when <refresh_s> is outside 1 ..
 * CP_PRICING_MAX_REFRESH_S. */
struct cp_pricing *cp_pricing_new(const char *source, unsigned refresh_s, struct cp_policies *ps);

/* Starts the pricing thread, which loads the catalogue at once. Returns 0 or -errno. */
int cp_pricing_start(struct cp_pricing *pr);

/* Stops the thread (an HTTP fetch in progress is aborted) and frees <pr>. Accepts NULL. */
void cp_pricing_free(struct cp_pricing *pr);

/* The state shown by GET /v1/pricing (docs/admin-api.md, Pricing): source, refresh_s,
 * loaded_unix_ms, last_attempt_unix_ms, sha256, last_error, models, and the last
 * reconcile's outcome. Caller frees with cJSON_Delete. */
struct cJSON *cp_pricing_state_json(struct cp_pricing *pr);

/* The admin API's handler for /v1/pricing (cp_admin_add_route); <arg> is the struct
 * cp_pricing, or NULL when no catalogue is configured (then 404 pricing_not_configured). */
void cp_pricing_on_admin(struct sy_http_req *req, const char *rest, void *arg);

#endif
