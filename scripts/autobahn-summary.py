#!/usr/bin/env python3
"""Sums up an Autobahn|Testsuite report (`<outdir>/index.json`) for scripts/autobahn.

    scripts/autobahn-summary.py [--mode NAME] [--agent NAME] [--expected FILE] [--details] INDEX_JSON

Prints one line for the run, e.g.

    autobahn server: 517 cases: 510 OK, 3 NON-STRICT, 4 INFORMATIONAL, 0 UNIMPLEMENTED, 0 FAILED

then one line per case that is not OK (behavior or behaviorClose not OK), and last the five
slowest cases. A case counts as FAILED when its behavior or its behaviorClose is FAILED (the line
says which); otherwise it counts under its behavior. With --expected (a file with one case id a
line: what the spec asked for), cases missing from the report are counted and listed as MISSING.
With --details, each listed case also shows the suite's description, expectation and verdict
(result, resultClose) from its per-case report file.

Exit status: 0 when nothing FAILED, was UNIMPLEMENTED or is MISSING; 1 when something did or was;
2 when there is no usable report (missing file, bad JSON, no cases).
"""

import argparse
import json
import os
import sys

BUCKETS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def case_key(case_id):
    """'9.10.2' -> (9, 10, 2), so cases sort as the suite numbers them."""
    parts = []
    for part in case_id.split("."):
        try:
            parts.append(int(part))
        except ValueError:
            parts.append(0)
    return tuple(parts)


def bucket_of(result):
    """The bucket a case counts in, and (for FAILED) why."""
    behavior = result.get("behavior")
    close = result.get("behaviorClose")
    failed = [name for name, value in (("behavior", behavior), ("behaviorClose", close)) if value == "FAILED"]
    if failed:
        return "FAILED", " and ".join(failed)
    if behavior in BUCKETS:
        return behavior, ""
    # Anything else the suite might say (e.g. NO_CLOSE) is not a pass.
    return "FAILED", "behavior %s" % behavior


def load_case_report(index_path, result):
    name = result.get("reportfile")
    if not name:
        return None
    path = os.path.join(os.path.dirname(index_path), name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def one_line(text):
    return " ".join(str(text).split())


def short_events(events, limit=6, width=60):
    """The suite's event list (e.g. [["message", "Hello", false], ["timeout", "A"]]), shortened."""
    if not events:
        return "[]"
    out = []
    for event in events[:limit]:
        text = json.dumps(event)
        out.append(text if len(text) <= width else text[:width] + "...")
    if len(events) > limit:
        out.append("... %d more" % (len(events) - limit))
    return "[" + ", ".join(out) + "]"


def main():
    parser = argparse.ArgumentParser(description="Sum up an Autobahn|Testsuite index.json.")
    parser.add_argument("index", help="path to <outdir>/index.json")
    parser.add_argument("--mode", default="report", help="name printed after 'autobahn' (server, client)")
    parser.add_argument("--agent", help="agent to sum up (default: the only one in the report)")
    parser.add_argument("--expected", help="file with the case ids the run was asked for, one a line")
    parser.add_argument("--details", action="store_true", help="show the suite's reason for each listed case")
    args = parser.parse_args()
    prefix = "autobahn %s:" % args.mode

    try:
        with open(args.index) as f:
            report = json.load(f)
    except OSError:
        print("%s FAILED: no report at %s (the suite did not run or did not finish)" % (prefix, args.index))
        return 2
    except ValueError as e:
        print("%s FAILED: report %s is not valid JSON (%s)" % (prefix, args.index, e))
        return 2
    if not isinstance(report, dict) or not report:
        print("%s FAILED: report %s holds no agents (no case ran)" % (prefix, args.index))
        return 2
    if args.agent:
        if args.agent not in report:
            print("%s FAILED: report %s has no agent %r (agents: %s)"
                  % (prefix, args.index, args.agent, ", ".join(sorted(report))))
            return 2
        agent = args.agent
    elif len(report) == 1:
        agent = next(iter(report))
    else:
        print("%s FAILED: report %s has several agents (%s); pass --agent"
              % (prefix, args.index, ", ".join(sorted(report))))
        return 2
    results = report[agent]
    if not results:
        print("%s FAILED: report %s holds no cases for agent %s" % (prefix, args.index, agent))
        return 2

    expected = None
    if args.expected:
        with open(args.expected) as f:
            expected = [line.strip() for line in f if line.strip()]
    missing = sorted(set(expected) - set(results), key=case_key) if expected is not None else []

    counts = dict.fromkeys(BUCKETS, 0)
    listed = []
    for case_id in sorted(results, key=case_key):
        result = results[case_id]
        bucket, why = bucket_of(result)
        counts[bucket] += 1
        behavior = result.get("behavior")
        close = result.get("behaviorClose")
        if behavior != "OK" or close != "OK":
            listed.append((case_id, bucket, why, result))

    total = len(results) + len(missing)
    line = "%s %d cases: %s" % (prefix, total, ", ".join("%d %s" % (counts[b], b) for b in BUCKETS))
    if missing:
        line += ", %d MISSING" % len(missing)
    close_only = sum(1 for _, bucket, _, r in listed if bucket == "OK")
    if close_only:
        line += " (%d of the OK cases closed with a non-OK behaviorClose, listed below)" % close_only
    print(line)

    for case_id, bucket, why, result in listed:
        note = "FAILED (%s)" % why if bucket == "FAILED" else bucket
        print("  %-8s %-32s behavior=%s behaviorClose=%s"
              % (case_id, note, result.get("behavior"), result.get("behaviorClose")))
        if args.details:
            detail = load_case_report(args.index, result)
            if detail is None:
                print("           (no per-case report file)")
                continue
            for field in ("description", "expectation", "result", "resultClose"):
                print("           %s: %s" % (field, one_line(detail.get(field, ""))))
            for behavior, events in sorted((detail.get("expected") or {}).items()):
                print("           expected for %s: %s" % (behavior, short_events(events)))
            print("           received: %s" % short_events(detail.get("received")))
            print("           close code: %s, reason: %r, wasClean: %s, droppedByMe: %s"
                  % (detail.get("remoteCloseCode"), detail.get("remoteCloseReason"),
                     detail.get("wasClean"), detail.get("droppedByMe")))
    for case_id in missing:
        print("  %-8s MISSING (asked for, but not in the report)" % case_id)

    slowest = sorted(results.items(), key=lambda item: -(item[1].get("duration") or 0))[:5]
    print("%s slowest: %s" % (prefix, ", ".join(
        "%s %s ms" % (case_id, result.get("duration")) for case_id, result in slowest)))

    bad = counts["FAILED"] + counts["UNIMPLEMENTED"] + len(missing)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
