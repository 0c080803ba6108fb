#!/usr/bin/python3
"""Prints the kanban event feed as it happens, resuming after disconnects
and server restarts without gaps or duplicates.

One line per event (with --json, one JSON object):
    <seq> <kind> <task id> <status> <title>
With --state-file the position is saved there after every event and on exit,
and a later run starts after it. SIGINT/SIGTERM exit 0; a start point older
than the server's retained history (OUT_OF_RANGE) exits 1.
"""

import argparse
import json
import os
import signal
import sys
import threading

import grpc

import kanban
from kanban.v1 import kanban_pb2 as pb


def save(path, position):
    if path and position >= 0:
        with open(path + ".tmp", "w") as out:
            out.write("%d\n" % position)
        os.replace(path + ".tmp", path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=kanban.DEFAULT_ADDRESS)
    parser.add_argument("--token", default=None,
                        help="bearer token for a kanband run with --auth=token "
                             "(default: $KANBAN_TOKEN)")
    parser.add_argument("--board", default="")
    parser.add_argument("--after", type=int, default=None,
                        help="start after this seq (0: all retained history); "
                             "default: from now")
    parser.add_argument("--state-file", default="",
                        help="resume from and save the position in this file")
    parser.add_argument("--kind", action="append", default=[])
    parser.add_argument("--task", action="append", default=[])
    parser.add_argument("--count", type=int, default=0,
                        help="exit after this many events (0: no limit)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    after = args.after
    if args.state_file and os.path.exists(args.state_file):
        with open(args.state_file) as saved:
            after = int(saved.read().strip())

    client = kanban.connect(args.server, token=args.token)
    watcher = kanban.Watcher(client, board=args.board, kinds=args.kind,
                             task_ids=args.task, after_seq=after)
    finished = threading.Event()
    failure = []

    def follow():
        printed = 0
        try:
            for event in watcher:
                status = pb.Status.Name(event.task.status) if event.HasField(
                    "task") else ""
                if args.json:
                    print(json.dumps({
                        "seq": event.seq, "kind": event.kind,
                        "board": event.board, "task_id": event.task_id,
                        "status": status, "title": event.task.title,
                        "reason": event.reason,
                        "principal": event.principal}), flush=True)
                else:
                    print("%d %s %s %s %s" % (event.seq, event.kind,
                                              event.task_id, status,
                                              event.task.title), flush=True)
                save(args.state_file, watcher.position)
                printed += 1
                if args.count and printed >= args.count:
                    break
        except grpc.RpcError as error:
            failure.append("%s: %s" % (error.code().name, error.details()))
        finally:
            finished.set()

    # Signal handlers run on the main thread; they only set a flag, and the
    # main thread closes the watcher.
    signal.signal(signal.SIGTERM, lambda *_: finished.set())
    signal.signal(signal.SIGINT, lambda *_: finished.set())
    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    finished.wait()
    watcher.close()
    thread.join()
    save(args.state_file, watcher.position)
    client.close()
    if failure:
        print("watch: " + failure[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
