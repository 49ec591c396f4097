/* controlplane/cp_diff.h - line-based unified diff of two texts (policy versions).
 * Stateless; any thread. */
#ifndef CP_DIFF_H
#define CP_DIFF_H

/* Returns a unified diff (3 lines of context) turning <a> into <b>, labelled with
 * <a_name>/<b_name>; "" when they are equal. Caller frees. */
char *cp_diff_unified(const char *a, const char *b, const char *a_name, const char *b_name);

#endif
