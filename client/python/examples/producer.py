#!/usr/bin/python3
"""Creates a small pipeline of dependent tasks and prints them.

    fetch ──> build-a ──┐
          └─> build-b ──┴─> release

build-a and build-b wait (TODO) until fetch is done; release waits for both
builds. Each task has an idempotency key made from --tag, so running again
with the same tag returns the same tasks instead of creating new ones.

Prints one line per task (with --json, one JSON object):
    <id> <status> <title> parents=<ids>
"""

import argparse
import json
import uuid

import grpc

import kanban
from kanban.v1 import kanban_pb2 as pb


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=kanban.DEFAULT_ADDRESS)
    parser.add_argument("--token", default=None,
                        help="bearer token for a kanband run with --auth=token "
                             "(default: $KANBAN_TOKEN)")
    parser.add_argument("--board", default="",
                        help="board (created if missing); default: default")
    parser.add_argument("--tag", default=uuid.uuid4().hex[:8],
                        help="names this pipeline in titles and idempotency keys")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with kanban.connect(args.server, token=args.token) as client:
        if args.board:
            try:
                client.kanban.CreateBoard(pb.CreateBoardRequest(name=args.board))
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise

        def create(name, parents=(), priority=0):
            return client.kanban.CreateTask(pb.CreateTaskRequest(
                board=args.board, title="%s %s" % (args.tag, name),
                priority=priority, parent_ids=[p.id for p in parents],
                labels=["pipeline"], idempotency_key="%s/%s" % (args.tag, name)),
                timeout=10)

        fetch = create("fetch", priority=5)
        build_a = create("build-a", [fetch])
        build_b = create("build-b", [fetch])
        # Dependencies can also be added later: release waits for build-a
        # from its creation and for build-b from this link on.
        release = create("release", [build_a])
        release = client.kanban.LinkTasks(
            pb.LinkTasksRequest(parent_id=build_b.id, child_id=release.id),
            timeout=10)

        for task in (fetch, build_a, build_b, release):
            # Re-read: an earlier task may have moved since it was created.
            task = client.kanban.GetTask(pb.GetTaskRequest(task_id=task.id),
                                         timeout=10)
            status = pb.Status.Name(task.status)
            if args.json:
                print(json.dumps({"id": task.id, "title": task.title,
                                  "status": status,
                                  "parents": list(task.parent_ids)}), flush=True)
            else:
                print("%s %s %s parents=%s" % (task.id, status, task.title,
                                               ",".join(task.parent_ids)),
                      flush=True)


if __name__ == "__main__":
    main()
