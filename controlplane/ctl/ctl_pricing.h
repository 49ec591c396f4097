/* controlplane/ctl/ctl_pricing.h - `switchyardctl pricing`: the control plane's pricing
 * catalogue (GET /v1/pricing): where it comes from, when it was loaded, its last error, and
 * its prices.
 *
 * Single-threaded. The print function is split from the request so tests can feed it
 * JSON; see ctl_policy.h for the error convention.
 */
#ifndef CTL_PRICING_H
#define CTL_PRICING_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctl_args.h"

/* Runs the command; returns a process exit code (enum ctl_exit). */
int ctl_pricing(const struct ctl_args *a);

/* Prints the state lines and a table of the entries of a GET /v1/pricing reply. Times are
 * shown relative to <now_ms>; <width> limits the table (see ctl_table_print). Returns 0, or
 * -EINVAL with *errmsg (caller frees) naming the unexpected member. */
int ctl_pricing_print(FILE *out, const cJSON *reply, int64_t now_ms, size_t width, char **errmsg);

#endif
