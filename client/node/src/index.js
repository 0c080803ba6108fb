'use strict';
// The kanban Node.js client: connect() for promise-returning stubs (to one
// kanband or several replicas: serverTarget, resolveServerAddress), Worker for
// the claim/heartbeat/complete protocol, watch() for the resuming event feed.

const grpc = require('@grpc/grpc-js');
const address = require('./address');
const client = require('./client');
const worker = require('./worker');
const watcher = require('./watcher');

module.exports = {
  connect: client.connect,
  serverTarget: address.serverTarget,
  resolveServerAddress: address.resolveServerAddress,
  bearerTokenInterceptor: client.bearerTokenInterceptor,
  TOKEN_ENV: client.TOKEN_ENV,
  loadPackage: client.loadPackage,
  durationFromMs: client.durationFromMs,
  durationToMs: client.durationToMs,
  timestampToDate: client.timestampToDate,
  Worker: worker.Worker,
  PermanentError: worker.PermanentError,
  ReleaseError: worker.ReleaseError,
  LeaseLostError: worker.LeaseLostError,
  defaultWorkerId: worker.defaultWorkerId,
  Watcher: watcher.Watcher,
  watch: watcher.watch,
  // gRPC status codes, to compare with err.code: status.INVALID_ARGUMENT, ...
  status: grpc.status,
  grpc,
};
