#!/usr/bin/python3
"""Processes tasks with kanban.Worker until SIGINT/SIGTERM (or --max-tasks).

Each task "works" for --work-seconds (stopping early if its lease is lost)
and completes with a result naming the worker. SIGINT or SIGTERM stops
claiming, lets the current task finish and report, and exits 0; a claim
error that retrying cannot fix (UNAUTHENTICATED, PERMISSION_DENIED,
NOT_FOUND board) is printed and exits 1. Prints one line per worker event:
<event> <task id> <title> [detail].
"""

import argparse
import signal
import sys
import threading

import grpc

import kanban


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=kanban.DEFAULT_ADDRESS)
    parser.add_argument("--token", default=None,
                        help="bearer token for a kanband run with --auth=token "
                             "(default: $KANBAN_TOKEN)")
    parser.add_argument("--board", default="")
    parser.add_argument("--label", action="append", default=[],
                        help="claim only tasks with this label (repeatable)")
    parser.add_argument("--worker-id", default=kanban.default_worker_id())
    parser.add_argument("--lease", type=float, default=30.0, help="seconds")
    parser.add_argument("--work-seconds", type=float, default=0.2)
    parser.add_argument("--max-tasks", type=int, default=0, help="0: no limit")
    parser.add_argument("--exit-when-idle", action="store_true",
                        help="exit when a claim's wait ends with nothing")
    parser.add_argument("--claim-wait", type=float, default=30.0)
    args = parser.parse_args()

    def handle(ctx):
        if ctx.wait_cancelled(args.work_seconds):
            return None  # The lease is gone; the worker reports nothing.
        return "done by %s: %s" % (args.worker_id, ctx.task.title)

    def on_event(event):
        print(" ".join(x for x in (event.kind, event.task_id, event.title,
                                   event.detail) if x), flush=True)

    finished = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: finished.set())
    signal.signal(signal.SIGINT, lambda *_: finished.set())

    client = kanban.connect(args.server, token=args.token)
    worker = kanban.Worker(client, board=args.board, worker_id=args.worker_id,
                           labels=args.label, lease=args.lease,
                           claim_wait=args.claim_wait, on_event=on_event)

    failure = []

    def run():
        try:
            worker.run(handle, max_tasks=args.max_tasks,
                       exit_when_idle=args.exit_when_idle)
        except grpc.RpcError as error:  # A claim error retrying cannot fix.
            failure.append("%s: %s" % (error.code().name, error.details()))
        finally:
            finished.set()

    # The worker runs on a thread of its own so that the signal handlers
    # (which run on the main thread) only set a flag.
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    finished.wait()
    worker.stop()  # Drains: the task in hand is finished and reported.
    thread.join()
    client.close()
    if failure:  # UNAUTHENTICATED (token), NOT_FOUND (board), ...
        print("worker: " + failure[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
