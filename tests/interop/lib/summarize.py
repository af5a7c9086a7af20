#!/usr/bin/env python3
"""Summarise one suite's results against its known-failures allow-list.

Input: a results file with one "OUTCOME<TAB>TEST-NAME" line per test, OUTCOME in
pass/fail/skip (a test reported several times counts as fail if any report failed).
Known-failures file: one test name per line, optional "# reason"; a line ending in
"*" matches by prefix. Prints details and, last, exactly
"<suite>: N passed, M failed, K skipped" where M counts unexpected failures only.
Exit status 1 if M > 0.
"""
import argparse
import sys


def load_known(path):
    exact, prefixes = {}, []
    if not path:
        return exact, prefixes
    try:
        with open(path) as f:
            for line in f:
                name, _, reason = line.partition("#")
                name = name.strip()
                if not name:
                    continue
                if name.endswith("*"):
                    prefixes.append((name[:-1], reason.strip()))
                else:
                    exact[name] = reason.strip()
    except FileNotFoundError:
        pass
    return exact, prefixes


def known_reason(name, exact, prefixes):
    if name in exact:
        return exact[name]
    for p, r in prefixes:
        if name.startswith(p):
            return r
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--known", default=None)
    ap.add_argument("--rc", type=int, default=0, help="exit status of the test runner")
    ap.add_argument("--ok-rcs", default="0,1", help="runner exit statuses that are not a crash")
    ap.add_argument("--crash", action="append", default=[], help="extra synthetic failure (e.g. panic)")
    a = ap.parse_args()

    outcome = {}
    order = []
    try:
        with open(a.results) as f:
            for line in f:
                line = line.rstrip("\n")
                if "\t" not in line:
                    continue
                o, name = line.split("\t", 1)
                if name not in outcome:
                    order.append(name)
                    outcome[name] = o
                elif o == "fail" or (o == "pass" and outcome[name] == "skip"):
                    outcome[name] = o
    except FileNotFoundError:
        pass

    exact, prefixes = load_known(a.known)
    passed = [n for n in order if outcome[n] == "pass"]
    skipped = [n for n in order if outcome[n] == "skip"]
    failed = [n for n in order if outcome[n] == "fail"]
    unexpected = [n for n in failed if known_reason(n, exact, prefixes) is None]
    known = [n for n in failed if known_reason(n, exact, prefixes) is not None]
    fixed = [n for n in passed if known_reason(n, exact, prefixes) is not None]

    crashes = list(a.crash)
    ok_rcs = {int(x) for x in a.ok_rcs.split(",") if x}
    if a.rc not in ok_rcs:
        crashes.append(f"<runner exited with status {a.rc}{' (timeout)' if a.rc == 124 else ''}>")
    elif a.rc != 0 and not failed:
        crashes.append(f"<runner exited with status {a.rc} but reported no failing test>")
    if not order:
        crashes.append("<no test results were reported>")
    unexpected += crashes

    s = a.suite
    for n in known:
        print(f"{s}: known failure: {n}  # {known_reason(n, exact, prefixes)}")
    for n in fixed:
        print(f"{s}: NOTE known failure now passes (remove it from the list): {n}")
    for n in unexpected:
        print(f"{s}: UNEXPECTED FAILURE: {n}")
    if known:
        print(f"{s}: {len(known)} known failures allow-listed")
    print(f"{s}: {len(passed)} passed, {len(unexpected)} failed, {len(skipped)} skipped")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
