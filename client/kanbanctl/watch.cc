#include "client/kanbanctl/watch.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/cpp/channel.h"
#include "client/cpp/watcher.h"
#include "client/kanbanctl/print.h"
#include "client/kanbanctl/signals.h"
#include "grpcpp/support/channel_arguments.h"

namespace kanban::client {
namespace {

absl::StatusOr<WatchOptions> BuildWatchOptions(const ParsedArgs& args) {
  WatchOptions options;
  options.board = args.Get("board");
  options.task_ids = args.GetAll("task");
  options.kinds = args.GetAll("kind");
  if (args.Has("after") && args.Has("from-now")) {
    return absl::InvalidArgumentError("give --after or --from-now, not both");
  }
  options.after_seq = -1;  // The watcher's "from now".
  if (args.Has("after")) {
    options.after_seq = args.GetInt64("after").value_or(-1);
    if (options.after_seq < 0) {
      return absl::InvalidArgumentError("--after must not be negative");
    }
  }
  options.bookmark_interval =
      args.GetDuration("bookmark-interval").value_or(options.bookmark_interval);
  return options;
}

// A channel of its own: gRPC's default reconnect backoff grows to two
// minutes, too slow to notice a restarted server; this one retries within
// 5 s. The one-second floor is how long a single connect attempt may take.
absl::StatusOr<std::shared_ptr<grpc::Channel>> WatchChannel(const Invocation& in) {
  ChannelSecurity security = in.security;
  security.args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  security.args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  security.args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  return CreateChannel(in.server, security, in.token);
}

}  // namespace

int RunWatch(const Invocation& in) {
  absl::StatusOr<WatchOptions> options = BuildWatchOptions(in.args);
  if (!options.ok()) return UsageFailure(&in.command, options.status().message(), in.err);
  const bool verbose = in.args.Has("verbose");

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = WatchChannel(in);
  if (!channel.ok()) return UsageFailure(&in.command, channel.status().message(), in.err);
  Watcher watcher(*std::move(channel), *std::move(options));
  // Set by a callback that stopped the watcher because the output failed;
  // callbacks run on this thread, so no lock is needed.
  absl::Status output_error;
  const auto on_event = [&](const v1::Event& event) {
    if (in.json) {
      absl::StatusOr<std::string> json = ToJson(event);
      if (!json.ok()) {
        output_error = json.status();
        watcher.Stop();
        return;
      }
      in.out << *json << "\n";
    } else {
      PrintEvent(event, in.out);
    }
    // Whoever reads the output (a pipe, a file being tailed) sees each event
    // when it happens, not when a buffer fills.
    in.out.flush();
    if (!in.out) {
      output_error = absl::UnknownError("cannot write to stdout");
      watcher.Stop();
    }
  };
  const auto on_bookmark = [&](int64_t seq) {
    if (verbose) in.err << "bookmark seq=" << seq << std::endl;
  };

  StopSignals stop_signals([&watcher] { watcher.Stop(); });
  if (absl::Status status = stop_signals.Install(); !status.ok()) {
    return RpcFailure(in, status);
  }
  absl::Status status = watcher.Run(on_event, on_bookmark);
  if (!output_error.ok()) {
    in.err << "error: " << output_error.message() << "\n";
    return kExitRpcFailed;
  }
  if (!status.ok()) return RpcFailure(in, status);
  return kExitOk;
}

}  // namespace kanban::client
