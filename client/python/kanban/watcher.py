"""Watcher: a resuming iterator over the kanban event feed (WatchEvents).

    with kanban.Watcher(channel, after_seq=saved) as watcher:
        for event in watcher:          # kanban_pb2.Event, in seq order
            apply(event)
            saved = watcher.position   # a point to resume from later

Every matching event is yielded exactly once, in increasing seq order, across
dropped connections and server restarts: after UNAVAILABLE, CANCELLED (the
server resets stalled watchers), RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED,
ABORTED, INTERNAL or a stream the server ended, the watcher reconnects with
after_seq = position, after an exponential backoff with jitter.
"""

import random
import threading

import grpc

from kanban.client import with_token
from kanban.v1 import kanban_pb2, kanban_pb2_grpc

# Codes after which the same request from the same position can succeed;
# OK is a stream the server ended although it is meant to be endless.
_RETRYABLE = frozenset({
    grpc.StatusCode.OK,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
})

_OLDEST_SEQ_KEY = "kanban-oldest-seq"


class WatchOrderError(RuntimeError):
    """The server sent an event at or before one already delivered."""


def oldest_seq(error):
    """The oldest seq still available, from an OUT_OF_RANGE grpc.RpcError's
    trailing metadata "kanban-oldest-seq"; None if the error has none."""
    metadata = error.trailing_metadata() if hasattr(
        error, "trailing_metadata") else None
    for key, value in metadata or ():
        if key == _OLDEST_SEQ_KEY:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _channel_of(channel_or_client):
    return getattr(channel_or_client, "channel", channel_or_client)


class Watcher:
    """Follows one WatchEvents feed; iterate over it for kanban_pb2.Event.

    Args:
      channel: a grpc.Channel or a kanban.Client.
      board: only this board's events; "" for every board.
      task_ids, kinds: only these tasks' / kinds' events (empty: all).
      after_seq: yield every event with seq > after_seq (0: the whole
        retained history); None: only events committed after the first
        stream is established.
      bookmark_interval: seconds between bookmarks on an idle stream (they
        move `position` past events the filter skipped); 0 turns them off.
      min_backoff, max_backoff: seconds to wait before reconnecting; doubles
        with each failure in a row, randomized to half..whole, and starts
        over once a stream delivers something.
      token: a bearer token for the stream (kanband --auth=token); it wins
        over a token the channel already sends (connect(token=...)). None or
        "": whatever the channel sends. ValueError if metadata cannot carry it.

    Iteration raises the grpc.RpcError of any code that retrying cannot fix:
    OUT_OF_RANGE when the resume point is older than the retained history
    (its details() and oldest_seq(error) name the oldest seq still
    available; list the board again and start a new Watcher from there),
    UNAUTHENTICATED (no token, an unknown one, or one revoked while
    watching), PERMISSION_DENIED (a board the token may not see),
    INVALID_ARGUMENT, ... It raises WatchOrderError if the server broke the
    seq order, and ends (StopIteration) after close().

    Thread-safety: iterate from one thread at a time; close() and position
    may be used from any thread.
    """

    def __init__(self, channel, board="", task_ids=(), kinds=(),
                 after_seq=None, bookmark_interval=10.0, min_backoff=0.1,
                 max_backoff=5.0, token=None):
        channel = _channel_of(channel)
        if token:
            channel = with_token(channel, token)
        self._stub = kanban_pb2_grpc.KanbanServiceStub(channel)
        self._board = board
        self._task_ids = list(task_ids)
        self._kinds = list(kinds)
        self._bookmark_interval = bookmark_interval
        self._min_backoff = max(min_backoff, 0.001)  # Never spin on a dead server.
        self._max_backoff = max(max_backoff, self._min_backoff)
        # Reentrant, so that close() from a signal handler cannot deadlock
        # with the iterating thread it interrupted.
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._call = None  # The stream in flight, cancelled by close().
        self._position = -1 if after_seq is None else max(int(after_seq), 0)

    @property
    def position(self):
        """The resume point: the seq of the last event yielded or bookmark
        received, whichever is greater (-1 until the first response of a
        from-now watch). Every matching event up to it has been yielded, so
        Watcher(after_seq=position) continues exactly here."""
        with self._lock:
            return self._position

    def close(self):
        """Ends the iteration promptly (cancels the stream or the backoff).
        Idempotent; cannot be undone."""
        with self._lock:
            self._closed.set()
            if self._call is not None:
                self._call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __iter__(self):
        backoff = self._min_backoff
        while not self._closed.is_set():
            received = yield from self._follow()
            if self._closed.is_set():
                return
            if received:  # A healthy stream: the next failure starts over.
                backoff = self._min_backoff
            delay = backoff * random.uniform(0.5, 1.0)
            backoff = min(backoff * 2, self._max_backoff)
            if self._closed.wait(delay):
                return

    def _request(self):
        request = kanban_pb2.WatchEventsRequest(
            board=self._board, task_ids=self._task_ids, kinds=self._kinds)
        if self._bookmark_interval > 0:
            request.bookmark_interval.FromNanoseconds(
                int(self._bookmark_interval * 1e9))
        else:
            # Set to zero (not left unset, which means 10 s): no bookmarks.
            request.bookmark_interval.SetInParent()
        if self._position < 0:
            request.from_now = True
        else:
            request.after_seq = self._position
        return request

    def _advance(self, seq):
        with self._lock:
            self._position = max(self._position, seq)

    def _follow(self):
        """Yields the events of one stream; returns whether it received any
        response. Raises what retrying cannot fix."""
        with self._lock:
            if self._closed.is_set():
                return False
            request = self._request()
            call = self._stub.WatchEvents(request)
            self._call = call
        position = request.after_seq if request.HasField("after_seq") else -1
        received = False
        first = True
        try:
            for response in call:
                received = True
                for event in response.events:
                    if position >= 0 and event.seq <= position:
                        raise WatchOrderError(
                            "WatchEvents sent seq %d after %d"
                            % (event.seq, position))
                    position = event.seq
                    # Handed to the caller: counts as delivered from here on.
                    self._advance(position)
                    yield event
                    if self._closed.is_set():
                        return received
                # The first response always carries a bookmark, even 0 (an
                # empty database): it fixes where a from-now watch starts.
                if response.bookmark_seq > 0 or first:
                    position = max(position, response.bookmark_seq)
                    self._advance(position)
                first = False
        except grpc.RpcError as error:
            if self._closed.is_set() or error.code() in _RETRYABLE:
                return received
            raise
        finally:
            # Also runs when the caller abandons the iteration at a yield.
            call.cancel()
            with self._lock:
                self._call = None
        return received
