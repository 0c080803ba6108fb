'use strict';
// Small helpers shared by the worker and the watcher.

// Resolves after `ms`, or as soon as `signal` aborts (never rejects), so a
// caller can sleep "unless stopped" and then check why it woke.
function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal && signal.aborted) {
      resolve();
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      if (signal) signal.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    if (signal) signal.addEventListener('abort', onAbort, { once: true });
  });
}

module.exports = { sleep };
