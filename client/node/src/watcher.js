'use strict';
// A resuming watcher of the kanban event feed, as an async iterator: yields
// every matching event exactly once, in seq order, across dropped
// connections and server restarts. The Node.js counterpart of
// client/cpp/watcher.h.
//
//   const watcher = watch(client, { afterSeq: savedPosition });
//   try {
//     for await (const event of watcher) apply(event);
//   } catch (err) {
//     if (err.code === grpc.status.OUT_OF_RANGE) { /* re-list, start over */ }
//   }
//   save(watcher.position);

const { status, Metadata } = require('@grpc/grpc-js');
const { durationFromMs, tokenMetadata } = require('./client');
const { sleep } = require('./util');

// Codes after which the same request from the same position can succeed.
// gRPC reports dropped connections and server shutdown as UNAVAILABLE, and
// some stream resets as INTERNAL; a CANCELLED the watcher did not cause
// comes from the server (it resets stalled watchers, and cancels calls that
// outlive a shutdown's grace period).
const RETRYABLE = new Set([
  status.UNAVAILABLE, status.RESOURCE_EXHAUSTED, status.DEADLINE_EXCEEDED,
  status.ABORTED, status.INTERNAL, status.CANCELLED,
]);

const OLDEST_SEQ_KEY = 'kanban-oldest-seq';

// The server broke the seq order: resuming could not be trusted.
function orderError(seq, position) {
  const err = new Error(`${status.INTERNAL} INTERNAL: WatchEvents sent seq ${seq} after ${position}`);
  err.code = status.INTERNAL;
  err.details = `WatchEvents sent seq ${seq} after ${position}`;
  err.metadata = new Metadata();
  err.broken = true;
  return err;
}

class Watcher {
  #client;
  #options;
  #position;
  #stop = new AbortController();
  #call = null;
  #iterating = false;

  // `client` is what connect() returned. Options (all optional):
  //   afterSeq            yield every event with seq > afterSeq; 0 is the
  //                       start of the retained history; -1 (the default)
  //                       only events committed after the first stream was
  //                       established.
  //   board               '' (default): every board.
  //   taskIds, kinds      only these tasks / kinds ('created', 'moved', ...).
  //   bookmarkIntervalMs  how often an idle stream gets a bookmark, which
  //                       moves `position` past events the filter skipped;
  //                       0 turns them off. Default 10000.
  //   minBackoffMs, maxBackoffMs
  //                       pause before reconnecting: starts at min, doubles
  //                       per failure in a row up to max, randomized to half
  //                       to all of it, reset once a stream delivered
  //                       something. Default 100 and 5000.
  //   signal              an AbortSignal that stops the watcher.
  //   onBookmark(position)  called when a bookmark moved the position.
  //   onRetry(err, delayMs) called before each reconnect; err is the gRPC
  //                       error (code OK when the server ended the stream).
  //   token               bearer token for the stream (kanband
  //                       --auth=token); it wins over connect()'s. Default:
  //                       whatever connect() sends. Throws a TypeError if
  //                       metadata cannot carry it.
  constructor(client, options = {}) {
    this.#client = client;
    tokenMetadata(options.token);  // Throws now, not at the first call.
    this.#options = {
      afterSeq: -1,
      board: '',
      taskIds: [],
      kinds: [],
      bookmarkIntervalMs: 10000,
      minBackoffMs: 100,
      maxBackoffMs: 5000,
      signal: null,
      onBookmark: null,
      onRetry: null,
      token: '',
      ...options,
    };
    const after = Number(this.#options.afterSeq);
    this.#position = Number.isFinite(after) && after >= 0 ? after : -1;
    const { signal } = this.#options;
    if (signal) {
      if (signal.aborted) this.stop();
      else signal.addEventListener('abort', () => this.stop(), { once: true });
    }
  }

  // The resume point: the seq of the last event yielded or bookmark received,
  // whichever is greater; every matching event up to it has been yielded.
  // -1 until the first response of a from-now watch. A new watcher with
  // afterSeq = position continues exactly where this one stopped.
  get position() { return this.#position; }
  get stopping() { return this.#stop.signal.aborted; }

  // Ends the iteration promptly (a pending next() resolves done), cancelling
  // the stream or the backoff. Idempotent. Breaking out of `for await` does
  // the same.
  stop() {
    this.#stop.abort();
    if (this.#call) this.#call.cancel();
  }

  // May be iterated once. The iteration ends after stop() and throws the
  // gRPC error for codes that retrying cannot fix: OUT_OF_RANGE (the resume
  // point is older than the retained history; `err.oldestSeq` is the oldest
  // seq still available), UNAUTHENTICATED (no token, an unknown one, or one
  // revoked while watching), PERMISSION_DENIED, INVALID_ARGUMENT, ...; INTERNAL if the server broke
  // the seq order.
  [Symbol.asyncIterator]() {
    if (this.#iterating) throw new Error('a Watcher can be iterated only once');
    this.#iterating = true;
    return this.#run();
  }

  async *#run() {
    const o = this.#options;
    // A zero backoff would spin against a server that is down.
    const minBackoff = Math.max(1, o.minBackoffMs);
    const maxBackoff = Math.max(minBackoff, o.maxBackoffMs);
    let backoff = minBackoff;
    while (!this.stopping) {
      const metadata = tokenMetadata(o.token);
      const call = metadata
        ? this.#client.stubs.kanban.watchEvents(this.#request(), metadata)
        : this.#client.stubs.kanban.watchEvents(this.#request());
      this.#call = call;
      // The loop below sees every error through the stream's iterator; this
      // listener keeps the CANCELLED that follows a consumer's `break` (the
      // iterator has let go of the stream by then) from being unhandled.
      call.on('error', () => {});
      let received = false;
      let failure = null;
      try {
        let first = true;
        for await (const response of call) {
          received = true;
          for (const event of response.events) {
            if (this.#position >= 0 && event.seq <= this.#position) {
              throw orderError(event.seq, this.#position);
            }
            // Delivered once handed out: a consumer that breaks after
            // handling it resumes after it.
            this.#position = event.seq;
            yield event;
            if (this.stopping) return;
          }
          // The first response always carries a bookmark, even 0 (an empty
          // database); it fixes where a from-now watch starts.
          if (response.bookmarkSeq > 0 || first) {
            this.#position = Math.max(this.#position, response.bookmarkSeq);
            if (o.onBookmark) o.onBookmark(this.#position);
          }
          first = false;
        }
      } catch (err) {
        if (this.stopping) return;
        if (err.broken || !RETRYABLE.has(err.code)) throw withOldestSeq(err);
        failure = err;
      } finally {
        this.#call = null;
        call.cancel();  // No-op once the call has ended.
      }
      if (this.stopping) return;
      // A stream that delivered something was healthy: the next failure in
      // a row starts the backoff over.
      if (received) backoff = minBackoff;
      const delay = backoff * (0.5 + Math.random() / 2);
      backoff = Math.min(backoff * 2, maxBackoff);
      if (o.onRetry) {
        o.onRetry(failure || { code: status.OK, message: 'stream ended by the server' }, delay);
      }
      await sleep(delay, this.#stop.signal);
    }
  }

  #request() {
    const o = this.#options;
    const request = {
      board: o.board,
      taskIds: o.taskIds,
      kinds: o.kinds,
      // Set even when zero: an empty Duration tells the server "never".
      bookmarkInterval: o.bookmarkIntervalMs > 0 ? durationFromMs(o.bookmarkIntervalMs) : {},
    };
    if (this.#position < 0) request.fromNow = true;
    else request.afterSeq = this.#position;
    return request;
  }
}

// Adds `oldestSeq` (a number) to an OUT_OF_RANGE error, from the trailing
// metadata the server sends with it.
function withOldestSeq(err) {
  if (err.code === status.OUT_OF_RANGE && err.metadata) {
    const values = err.metadata.get(OLDEST_SEQ_KEY);
    if (values.length > 0) err.oldestSeq = Number(values[0].toString());
  }
  return err;
}

// A Watcher over `client`'s event feed; see Watcher's constructor for options.
function watch(client, options) {
  return new Watcher(client, options);
}

module.exports = { Watcher, watch, RETRYABLE };
