#!/usr/bin/env python3
"""bench/perf-attrib.py - attributes a perf profile to the program's own functions.

    perf script -i perf.data -F comm,tid,ip,sym,dso | bench/perf-attrib.py [--dso NAME]

Reads `perf script` output recorded with call graphs (--call-graph dwarf) and prints:
  1. inclusive share of every function of the program's own DSO (default
     switchyard-proxy): the samples with that function anywhere on the stack;
  2. "owned" share: each sample goes to the innermost own function on its stack, so the
     time spent in libc, libcurl, cJSON, libevent and the kernel on behalf of that function
     counts for it (samples with no own frame at all go to "(outside: <leaf dso>)");
  3. for the top owners, which libraries that owned time went to.
"""
import argparse
import collections
import re
import sys

FRAME = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def short_dso(d):
    d = d.rsplit("/", 1)[-1]
    if d.startswith("[kernel"):
        return "kernel"
    return re.sub(r"\.so[.0-9]*$", "", d)


def short_sym(s):
    s = re.sub(r"\+0x[0-9a-f]+$", "", s)
    return s if s and s != "[unknown]" else "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dso", default="switchyard-proxy")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()

    samples = []
    cur = None
    for line in sys.stdin:
        if not line.strip():
            if cur is not None:
                samples.append(cur)
                cur = None
            continue
        m = FRAME.match(line)
        if m:
            if cur is not None:
                cur.append([short_sym(m.group(2)), short_dso(m.group(3)), m.group(1)])
        else:
            if cur is not None:
                samples.append(cur)
            cur = []
    if cur is not None:
        samples.append(cur)
    samples = [s for s in samples if s]
    # An inlined frame belongs to the real frame at the same address (listed after it).
    # perf sometimes shows only the inlined name (libc's malloc, free, memcpy, tcache_*:
    # only libc ships inline debug info here): then it goes with its callee, or to libc.
    for st in samples:
        for i in range(len(st) - 1, -1, -1):
            if st[i][1] != "inlined":
                continue
            if i + 1 < len(st) and st[i + 1][2] == st[i][2] and st[i + 1][1] != "inlined":
                st[i][1] = st[i + 1][1]
            elif i > 0 and st[i - 1][1] != "inlined":
                st[i][1] = st[i - 1][1]
            else:
                st[i][1] = "libc"
    n = len(samples)
    if not n:
        sys.exit("perf-attrib: no samples with call chains")

    own = short_dso(args.dso)
    incl = collections.Counter()
    owned = collections.Counter()
    owned_by_dso = collections.defaultdict(collections.Counter)
    for st in samples:
        seen = set()
        for sym, dso, _ in st:
            if dso == own and sym not in seen:
                seen.add(sym)
                incl[sym] += 1
        owner = next((sym for sym, dso, _ in st if dso == own), None)
        leaf_dso = st[0][1]
        if owner is None:
            owner = "(outside: %s)" % leaf_dso
        owned[owner] += 1
        owned_by_dso[owner][leaf_dso] += 1

    print("samples: %d" % n)
    print()
    print("inclusive (own function anywhere on the stack)")
    for sym, c in incl.most_common(args.top):
        print("  %6.2f%%  %s" % (100.0 * c / n, sym))
    print()
    print("owned (innermost own function; includes the libraries and kernel it calls)")
    for sym, c in owned.most_common(args.top):
        parts = ", ".join("%s %.1f%%" % (d, 100.0 * k / n)
                          for d, k in owned_by_dso[sym].most_common(5))
        print("  %6.2f%%  %-32s [%s]" % (100.0 * c / n, sym, parts))


if __name__ == "__main__":
    main()
