#!/usr/bin/python3
"""Runs `kanban-bench SCENARIO ... --json` and checks what it printed.

Fails (exit 1) unless the bench exited 0 and its JSON object has ghz's
fields, only OK status codes, a positive RPS, and a positive Check RPS with
its ratio; for modes, the same of both runs plus full_to_normal; with
--idle_watchers=N, that N idle streams subscribed and kanband's memory per
stream was measured.

usage: check_bench_json.py KANBAN_BENCH SCENARIO [FLAGS...]
"""
import json
import subprocess
import sys

GHZ_FIELDS = ("count", "total", "average", "fastest", "slowest", "rps",
              "errorDistribution", "statusCodeDistribution", "latencyDistribution",
              "histogram")


def check_run(name, run, problems):
    for field in GHZ_FIELDS + ("check_rps", "ratio_to_check", "passed"):
        if field not in run:
            problems.append("%s: no %r" % (name, field))
    codes = run.get("statusCodeDistribution", {})
    if set(codes) != {"OK"}:
        problems.append("%s: status codes %s" % (name, codes))
    if run.get("errorDistribution"):
        problems.append("%s: errors %s" % (name, run["errorDistribution"]))
    if not run.get("rps", 0) > 0 or not run.get("count", 0) > 0:
        problems.append("%s: no throughput (count %s, rps %s)" %
                        (name, run.get("count"), run.get("rps")))
    if not run.get("check_rps", 0) > 0 or not run.get("ratio_to_check", 0) > 0:
        problems.append("%s: no Check comparison" % name)
    percentages = [d.get("percentage") for d in run.get("latencyDistribution", [])]
    if 50 not in percentages or 99 not in percentages:
        problems.append("%s: latencyDistribution lacks p50/p99: %s" % (name, percentages))
    if run.get("problems"):
        problems.append("%s: %s" % (name, run["problems"]))


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    command = argv[1:] + ["--json"]
    proc = subprocess.run(command, stdout=subprocess.PIPE, timeout=280)
    out = proc.stdout.decode("utf-8", "replace")
    print(out)
    problems = []
    if proc.returncode != 0:
        problems.append("exit status %d" % proc.returncode)
    try:
        report = json.loads(out)
    except ValueError as e:
        print("FAIL: stdout is not one JSON object: %s" % e)
        return 1
    if argv[2] == "modes":
        for mode in ("normal", "full"):
            check_run(mode, report.get(mode, {}), problems)
        if not report.get("full_to_normal", 0) > 0:
            problems.append("no full_to_normal")
    else:
        check_run(argv[2], report, problems)
    for flag in argv[3:]:
        if flag.startswith("--idle_watchers="):
            idle = int(flag.split("=", 1)[1])
            if report.get("idle_watchers") != idle:
                problems.append("idle_watchers %r, asked for %d" %
                                (report.get("idle_watchers"), idle))
            each = report.get("idle_watch_rss_kib_each")
            if not isinstance(each, (int, float)):
                problems.append("no idle_watch_rss_kib_each figure: %r" % (each,))
    for p in problems:
        print("FAIL: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
