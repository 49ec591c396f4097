/* controlplane/ctl/ctl_fleet.h - `switchyardctl fleet`: the proxies the control plane
 * knows and the policy version each one runs (GET /v1/fleet).
 *
 * Single-threaded. The print function is split from the request so tests can feed it
 * JSON; see ctl_policy.h for the error convention.
 */
#ifndef CTL_FLEET_H
#define CTL_FLEET_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctl_args.h"

/* Runs the command; returns a process exit code (enum ctl_exit). */
int ctl_fleet(const struct ctl_args *a);

/* Prints a summary line and a table of the reply of GET /v1/fleet. Times are shown
 * relative to <now_ms>; <width> limits the table (see ctl_table_print). Returns 0, or
 * -EINVAL with *errmsg (caller frees) naming the unexpected member. */
int ctl_fleet_print(FILE *out, const cJSON *reply, int64_t now_ms, size_t width, char **errmsg);

#endif
