// kanband: serves the kanban task board over gRPC from one SQLite file.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>  // TLS: reading PEM files.
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/log.h"
#include "service/migrate_command.h"
#include "service/server.h"
#include "service/token_command.h"
#include "storage/durability.h"
#include "storage/postgres/connection.h"
#include "storage/sqlite/restore.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7300",
          "host:port to serve gRPC on; port 0 picks a free port");
ABSL_FLAG(std::string, db, "./data/kanban.db",
          "SQLite database file; its directory is created if missing");
ABSL_FLAG(std::string, synchronous, "",
          "full or normal; overrides KANBAN_SYNCHRONOUS_MODE (default normal)");
ABSL_FLAG(std::string, port_file, "",
          "write the bound port to this file once serving (for tests and scripts)");
ABSL_FLAG(int, readers, 2, "read-only SQLite connections (reader threads)");
ABSL_FLAG(int, max_batch, 1024, "most mutations the writer commits in one transaction");
ABSL_FLAG(absl::Duration, sweep_interval, absl::Seconds(1),
          "how often expired leases are reclaimed (e.g. 1s, 250ms)");
ABSL_FLAG(absl::Duration, backoff_base, absl::Seconds(1),
          "retry delay after the first failed or expired attempt; doubles each time");
ABSL_FLAG(absl::Duration, backoff_cap, absl::Minutes(5), "longest retry delay");
ABSL_FLAG(absl::Duration, event_retention, absl::Hours(24 * 7),
          "delete events older than this (e.g. 168h)");
ABSL_FLAG(int64_t, event_retention_count, 10000000, "keep at most this many events");
ABSL_FLAG(int64_t, event_ring, 65536,
          "events kept in memory for watchers; slower watchers read the database");
ABSL_FLAG(absl::Duration, watch_stall_timeout, absl::Minutes(5),
          "end a WatchEvents stream whose client takes no response for this long");
ABSL_FLAG(bool, check_at_open, true,
          "run PRAGMA quick_check on the database before serving (reads it once)");
ABSL_FLAG(int, quarantine_keep, 3,
          "copies of a database found corrupt at start to keep (<db>.corrupt-<time>)");
ABSL_FLAG(std::string, restore_from, "",
          "restore the database (--db) from this backup, then exit: the backup is "
          "checked first and the replaced files are kept in <db>.before-restore-<time>");
ABSL_FLAG(int, shutdown_grace_seconds, 10,
          "on SIGTERM, how long calls in flight may take before they are cancelled");
// ---- Metrics and logs ----
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port to serve Prometheus metrics on (/metrics); port 0 picks a free "
          "port; empty: no metrics");
ABSL_FLAG(
    std::string, metrics_port_file, "",
    "write the bound metrics port to this file once serving (for tests and scripts)");
ABSL_FLAG(std::string, log_format, "text",
          "text (human-readable lines) or json (one JSON object per line)");
ABSL_FLAG(bool, log_rpcs, false,
          "log one line per RPC: method, status code, latency, peer (never contents)");
// ---- end metrics and logs ----
// ---- The HTTP door ----
ABSL_FLAG(std::string, http_listen, "",
          "host:port to serve the JSON API (/api/v1/), its event stream and the web "
          "board (/) on; port 0 picks a free port; empty: off");
ABSL_FLAG(std::string, http_port_file, "",
          "write the bound HTTP port to this file once serving (for tests and scripts)");
ABSL_FLAG(int, http_max_event_streams, 40,
          "HTTP event streams (/api/v1/events) open at once; more get 429");
ABSL_FLAG(absl::Duration, http_request_timeout, absl::Seconds(10),
          "an HTTP request's headers and body must arrive within this of the "
          "connection opening (or of its previous answer, plus --http_idle_timeout); "
          "else the connection is closed");
ABSL_FLAG(absl::Duration, http_idle_timeout, absl::Seconds(15),
          "close an HTTP connection that sends and is sent nothing this long (whole "
          "seconds; event streams waiting for events are not idle)");
ABSL_FLAG(int, http_max_connections, 1024,
          "HTTP connections open at once; beyond, new ones are closed at once");
ABSL_FLAG(int, http_max_connections_per_peer, 128,
          "HTTP connections open at once from one client address (a proxy in front "
          "counts as one); beyond, new ones from it are closed at once");
// ---- TLS ----
ABSL_FLAG(
    std::string, tls_cert, "",
    "PEM server certificate (chain); with --tls_key, serve TLS instead of plaintext");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificate(s): require clients to present a certificate they signed "
          "(mutual TLS); needs --tls_cert and --tls_key");
// ---- each refusal names its flag. ----
ABSL_FLAG(int, max_request_bytes, 4 << 20,
          "largest request message accepted (bytes); bigger ones get RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_page_size, 1000, "largest ListTasks page_size accepted");
ABSL_FLAG(absl::Duration, max_claim_wait, absl::Seconds(30),
          "longest ClaimTask wait accepted");
ABSL_FLAG(int64_t, max_watch_streams, 10000,
          "WatchEvents streams open at once (all clients); more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, max_writer_queue, 10000,
          "writes queued for the writer; more get UNAVAILABLE with a retry pushback");
ABSL_FLAG(int64_t, max_watch_streams_per_token, 100,
          "WatchEvents streams one token may hold open; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(bool, worker_streams, true,
          "serve WorkerService.Work; false answers UNIMPLEMENTED (clients fall back to "
          "ClaimTask and Heartbeat)");
ABSL_FLAG(
    int, watch_wake_threads, 0,
    "threads that wake parked WatchEvents streams when events commit; 0: one per CPU");
// ---- end limits ----
// ---- Several replicas on one PostgreSQL database ----
ABSL_FLAG(std::string, replica_id, "",
          "this kanband's name in GetServerInfo and its log (default: HOST:PORT, the "
          "machine's host name and the port it serves)");
// ---- Authentication ----
ABSL_FLAG(std::string, auth, "none",
          "token: every call but health and reflection needs a bearer token (make the "
          "first with `kanband token create`); none: no authentication");
ABSL_FLAG(bool, insecure_no_auth, false,
          "allow --auth=none on an address other than loopback (anyone who reaches it "
          "can do anything)");

namespace {

using kanban::service::LogError;
using kanban::service::LogInfo;
using kanban::service::LogWarning;

// Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad configuration,
// 3 corrupt database (restarting cannot help: systemd's
// RestartPreventExitStatus should name 2 and 3).
constexpr int kExitConfig = 2;
constexpr int kExitFailure = 1;
constexpr int kExitCorrupt = 3;

// Lets flags be written --like-this as well as --like_this.
std::vector<char*> NormalizeFlagNames(int argc, char** argv,
                                      std::vector<std::string>& storage) {
  storage.reserve(argc);
  std::vector<char*> out;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i > 0 && arg.rfind("--", 0) == 0) {
      size_t end = arg.find('=');
      std::string name = arg.substr(0, end);
      arg = absl::StrReplaceAll(name.substr(2), {{"-", "_"}});
      arg =
          "--" + arg + (end == std::string::npos ? "" : std::string(argv[i]).substr(end));
    }
    storage.push_back(arg);
  }
  for (std::string& s : storage) out.push_back(s.data());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, which leaves Mutex deadlock
  // detection on: a global graph update on every lock, measurable on the
  // writer's hot path. The lock order is simple and reviewed; turn it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "kanband: the kanban task-board server.\n"
      "Usage: kanband [--listen=127.0.0.1:7300] [--db=./data/kanban.db] "
      "[--synchronous=normal|full] [--auth=none|token]\n"
      "       kanband token create --db=PATH|URI --role=admin [--name=NAME]\n"
      "       kanband migrate --from=SQLITE_FILE --to=postgresql://USER@HOST/DB\n"
      "Environment: KANBAN_SYNCHRONOUS_MODE=full turns on synchronous=FULL and "
      "wal_autocheckpoint=100.");
  // `kanband token create ...`: its own arguments, not the server's flags.
  if (argc > 1 && std::string(argv[1]) == "token") {
    return kanban::service::RunTokenCommand(argc - 1, argv + 1);
  }
  // `kanband migrate --from=FILE --to=URI`: SQLite into PostgreSQL.
  if (argc > 1 && std::string(argv[1]) == "migrate") {
    return kanban::service::RunMigrateCommand(argc - 1, argv + 1);
  }
  std::vector<std::string> arg_storage;
  std::vector<char*> args = NormalizeFlagNames(argc, argv, arg_storage);
  std::vector<char*> rest =
      absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  if (rest.size() > 1) {
    LogError(absl::StrCat("unexpected argument: ", rest[1]));
    return kExitConfig;
  }
  // ---- Logs: the format holds from the first line on. ----
  {
    kanban::service::LogFormat format;
    if (!kanban::service::ParseLogFormat(absl::GetFlag(FLAGS_log_format), &format)) {
      LogError("--log_format: must be text or json");
      return kExitConfig;
    }
    kanban::service::SetLogFormat(format);
    // gRPC's own lines would break one-object-per-line.
    if (format == kanban::service::LogFormat::kJson) kanban::service::RouteGrpcLogs();
  }

  // Block the stop signals before any thread starts, so every thread inherits
  // the mask and only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<kanban::storage::DurabilitySettings> durability =
      kanban::storage::DurabilityFromEnvironment(absl::GetFlag(FLAGS_synchronous));
  if (!durability.ok()) {
    LogError(std::string(durability.status().message()));
    return kExitConfig;
  }
  if (!durability->warning.empty()) LogWarning(durability->warning);

  const std::string db_path = absl::GetFlag(FLAGS_db);
  const bool postgres = kanban::storage::IsPostgresTarget(db_path);
  // What logs may show of --db: a PostgreSQL target loses its password.
  const std::string db_shown =
      postgres ? kanban::storage::RedactPostgresTarget(db_path) : db_path;
  std::filesystem::path dir =
      postgres ? std::filesystem::path() : std::filesystem::path(db_path).parent_path();
  if (!dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) {
      LogError(absl::StrCat("db: cannot create directory ", dir.string(), ": ",
                            error.message()));
      return kExitConfig;
    }
  }

  if (const std::string backup = absl::GetFlag(FLAGS_restore_from); !backup.empty()) {
    if (postgres) {
      LogError(absl::StrCat(
          "restore: --restore_from restores SQLite files; ", db_shown,
          " is PostgreSQL: restore it with the server's own tools (pg_restore from a "
          "pg_dump, or a pg_basebackup with its WAL)"));
      return kExitConfig;
    }
    absl::StatusOr<std::string> aside =
        kanban::storage::RestoreFromBackup(backup, db_path, absl::Now());
    if (!aside.ok()) {
      LogError(
          absl::StrCat("restore: ", aside.status().ToString(), "; nothing was changed"));
      return aside.status().code() == absl::StatusCode::kFailedPrecondition ? kExitFailure
                                                                            : kExitConfig;
    }
    LogInfo(absl::StrCat("restored ", db_path, " from ", backup,
                         aside->empty()
                             ? std::string(" (there was no database before)")
                             : absl::StrCat("; the files it replaced are in ", *aside)));
    return 0;
  }

  kanban::service::Server::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.replica_id = absl::GetFlag(FLAGS_replica_id);
  options.store.path = db_path;
  options.store.durability = *durability;
  options.store.reader_threads = absl::GetFlag(FLAGS_readers);
  options.store.max_batch = absl::GetFlag(FLAGS_max_batch);
  options.store.sweep_interval = absl::GetFlag(FLAGS_sweep_interval);
  options.store.retry.backoff_base = absl::GetFlag(FLAGS_backoff_base);
  options.store.retry.backoff_cap = absl::GetFlag(FLAGS_backoff_cap);
  options.store.event_retention = absl::GetFlag(FLAGS_event_retention);
  options.store.event_retention_count = absl::GetFlag(FLAGS_event_retention_count);
  options.store.event_ring =
      static_cast<size_t>(std::max<int64_t>(1, absl::GetFlag(FLAGS_event_ring)));
  options.watch_stall_timeout = absl::GetFlag(FLAGS_watch_stall_timeout);
  options.store.check_at_open = absl::GetFlag(FLAGS_check_at_open);
  options.store.quarantine_keep = absl::GetFlag(FLAGS_quarantine_keep);
  options.store.on_fenced = [](const absl::Status& status) {
    LogError(absl::StrCat("database: ", status.message()));
  };
  if (options.store.event_retention_count < 0 ||
      options.store.event_retention <= absl::ZeroDuration() ||
      options.watch_stall_timeout <= absl::ZeroDuration()) {
    LogError(
        "event_retention and watch_stall_timeout must be positive, "
        "event_retention_count not negative");
    return kExitConfig;
  }
  if (options.store.sweep_interval <= absl::ZeroDuration() ||
      options.store.retry.backoff_base <= absl::ZeroDuration() ||
      options.store.retry.backoff_cap < options.store.retry.backoff_base) {
    LogError(
        "sweep_interval and backoff_base must be positive, and backoff_cap at least "
        "backoff_base");
    return kExitConfig;
  }
  // ---- TLS: read the PEM files named by --tls_*; a problem with
  // any of them is a configuration error that names the flag. ----
  {
    const std::string cert = absl::GetFlag(FLAGS_tls_cert);
    const std::string key = absl::GetFlag(FLAGS_tls_key);
    const std::string client_ca = absl::GetFlag(FLAGS_tls_client_ca);
    if (cert.empty() != key.empty()) {
      LogError(cert.empty() ? "--tls_key needs --tls_cert"
                            : "--tls_cert needs --tls_key");
      return kExitConfig;
    }
    if (!client_ca.empty() && cert.empty()) {
      LogError("--tls_client_ca needs --tls_cert and --tls_key");
      return kExitConfig;
    }
    // The whole file if it exists and holds a PEM block whose label contains
    // `label`; else logs why and returns "". gRPC would only say that the
    // port cannot be added.
    const auto read_pem = [](const char* flag, const std::string& path,
                             const char* label) -> std::string {
      std::ifstream in(path, std::ios::binary);
      std::ostringstream read;
      read << in.rdbuf();  // Sets failbit, rather than throwing, on a directory.
      const std::string text = read.str();
      const size_t begin = text.find("-----BEGIN ");
      const std::string header = begin == std::string::npos
                                     ? ""
                                     : text.substr(begin, text.find('\n', begin) - begin);
      if (header.find(label) == std::string::npos) {
        LogError(absl::StrCat("--", flag, ": cannot read a PEM ", label, " from ", path));
        return "";
      }
      return text;
    };
    if (!cert.empty()) {
      options.tls.cert_pem = read_pem("tls_cert", cert, "CERTIFICATE");
      options.tls.key_pem = read_pem("tls_key", key, "PRIVATE KEY");
      if (options.tls.cert_pem.empty() || options.tls.key_pem.empty()) return kExitConfig;
      if (!client_ca.empty()) {
        options.tls.client_ca_pem = read_pem("tls_client_ca", client_ca, "CERTIFICATE");
        if (options.tls.client_ca_pem.empty()) return kExitConfig;
      }
      LogInfo(client_ca.empty() ? absl::StrCat("TLS on (certificate ", cert,
                                               "); client certificates "
                                               "not requested")
                                : absl::StrCat("TLS on (certificate ", cert,
                                               "); mutual TLS: clients "
                                               "must present a certificate signed by ",
                                               client_ca));
    } else {
      LogInfo("TLS off: serving plaintext (see --tls_cert)");
    }
  }
  // Limits.
  options.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  options.store.max_page_size = absl::GetFlag(FLAGS_max_page_size);
  options.max_claim_wait = absl::GetFlag(FLAGS_max_claim_wait);
  if (options.max_request_bytes < 1 || options.store.max_page_size < 1 ||
      options.max_claim_wait < absl::ZeroDuration() ||
      absl::GetFlag(FLAGS_max_watch_streams) < 1 ||
      absl::GetFlag(FLAGS_max_writer_queue) < 1) {
    LogError(
        "max_request_bytes, max_page_size, max_watch_streams and max_writer_queue must "
        "be positive, max_claim_wait not negative");
    return kExitConfig;
  }
  options.max_watch_streams = static_cast<size_t>(absl::GetFlag(FLAGS_max_watch_streams));
  if (absl::GetFlag(FLAGS_max_watch_streams_per_token) < 1) {
    LogError("max_watch_streams_per_token must be positive");
    return kExitConfig;
  }
  options.max_watch_streams_per_token =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_watch_streams_per_token));
  if (absl::GetFlag(FLAGS_watch_wake_threads) < 0 ||
      absl::GetFlag(FLAGS_watch_wake_threads) > 256) {
    LogError("watch_wake_threads must be between 0 (one per CPU) and 256");
    return kExitConfig;
  }
  options.watch_wake_threads = absl::GetFlag(FLAGS_watch_wake_threads);
  options.worker_streams = absl::GetFlag(FLAGS_worker_streams);
  options.store.max_writer_queue =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_writer_queue));
  // ---- end limits ----
  // ---- Metrics and logs. ----
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.log_rpcs = absl::GetFlag(FLAGS_log_rpcs);
  if (options.metrics_listen.empty() && !absl::GetFlag(FLAGS_metrics_port_file).empty()) {
    LogError("--metrics_port_file needs --metrics_listen");
    return kExitConfig;
  }
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.http_max_event_streams = absl::GetFlag(FLAGS_http_max_event_streams);
  options.http_request_timeout = absl::GetFlag(FLAGS_http_request_timeout);
  options.http_idle_timeout = absl::GetFlag(FLAGS_http_idle_timeout);
  options.http_max_connections = absl::GetFlag(FLAGS_http_max_connections);
  options.http_max_connections_per_peer =
      absl::GetFlag(FLAGS_http_max_connections_per_peer);
  if (options.http_max_connections < 1 || options.http_max_connections_per_peer < 1) {
    LogError("--http_max_connections and --http_max_connections_per_peer: must be >= 1");
    return kExitConfig;
  }
  if (options.http_max_event_streams < 1 ||
      options.http_max_event_streams > options.http_max_connections) {
    LogError(
        "--http_max_event_streams: must be between 1 and --http_max_connections (each "
        "stream is a connection)");
    return kExitConfig;
  }
  if (options.http_request_timeout <= absl::ZeroDuration() ||
      options.http_idle_timeout < absl::Seconds(1)) {
    LogError(
        "--http_request_timeout: must be positive; --http_idle_timeout: at least 1s");
    return kExitConfig;
  }
  // Each HTTP connection is a descriptor: raise the soft limit (often 1024)
  // toward the hard one, so that --http_max_connections can be reached
  // before accept fails for want of descriptors.
  if (!options.http_listen.empty()) {
    rlimit limit{};
    const rlim_t wanted = static_cast<rlim_t>(options.http_max_connections) + 1024;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < wanted) {
      limit.rlim_cur = std::min(wanted, limit.rlim_max);
      setrlimit(RLIMIT_NOFILE, &limit);
      if (limit.rlim_cur < wanted) {
        LogWarning(absl::StrCat("--http_max_connections=", options.http_max_connections,
                                ": only ", limit.rlim_cur,
                                " file descriptors allowed (ulimit -n / LimitNOFILE)"));
      }
    }
  }
  if (options.http_listen.empty() && !absl::GetFlag(FLAGS_http_port_file).empty()) {
    LogError("--http_port_file needs --http_listen");
    return kExitConfig;
  }
  if (!options.http_listen.empty() && !options.tls.cert_pem.empty()) {
    // The door calls the services in process: gRPC's TLS does not cover it.
    LogWarning(absl::StrCat(
        "--http_listen=", options.http_listen, " serves plain HTTP",
        options.tls.client_ca_pem.empty() ? "" : " without client certificates",
        "; put a TLS-terminating proxy in front of it off loopback"));
  }
  // ---- Authentication: off only on loopback, unless told otherwise. ----
  {
    const std::string auth = absl::GetFlag(FLAGS_auth);
    if (auth != "none" && auth != "token") {
      LogError("--auth: must be none or token");
      return kExitConfig;
    }
    options.auth = auth == "token";
    // gRPC and the HTTP door give the same powers: the same rule for both.
    for (const auto& [flag, address] : {std::pair{"listen", options.listen},
                                        std::pair{"http_listen", options.http_listen}}) {
      if (options.auth || address.empty() ||
          kanban::service::IsLoopbackAddress(address)) {
        continue;
      }
      if (!absl::GetFlag(FLAGS_insecure_no_auth)) {
        LogError(absl::StrCat(
            "--", flag, "=", address,
            " is not a loopback address and --auth=none: anyone who can reach it could "
            "do anything. Use --auth=token (see `kanband token create`), or "
            "--insecure_no_auth if the network itself is trusted"));
        return kExitConfig;
      }
      LogWarning(absl::StrCat("INSECURE: no authentication on ", address,
                              " (--insecure_no_auth): anyone who can reach it can "
                              "create, change and delete work"));
    }
  }
  absl::StatusOr<std::unique_ptr<kanban::service::Server>> server =
      kanban::service::Server::Start(options);
  if (!server.ok()) {
    LogError(absl::StrCat("cannot start: ", server.status().ToString()));
    return server.status().code() == absl::StatusCode::kDataLoss ? kExitCorrupt
                                                                 : kExitFailure;
  }
  if (options.auth) {
    const size_t tokens = (*server)->active_tokens();
    if (tokens == 0) {
      LogWarning(absl::StrCat(
          "--auth=token but the database has no tokens: every call will be refused. "
          "Run: kanband token create --db=",
          postgres ? "'<the same --db>'" : db_path, " --role=admin"));
    } else {
      LogInfo(absl::StrCat("auth: bearer tokens required (", tokens, " active)"));
    }
  } else {
    LogInfo("auth: none (loopback only unless --insecure_no_auth; see --auth)");
  }
  const kanban::storage::DurabilityInfo& info = (*server)->store().durability();
  if (postgres) {
    LogInfo(absl::StrCat("database ", db_shown, " (PostgreSQL ", info.server_version,
                         ", schema ", info.schema_version, ")"));
    LogInfo(absl::StrCat(
        "durability: synchronous_commit=", info.synchronous, " (from ",
        durability->source == "default" ? "the server's setting" : durability->source,
        ")"));
  } else {
    LogInfo(absl::StrCat("database ", db_path, " (schema ", info.schema_version,
                         ", journal_mode=", info.journal_mode, ")"));
    LogInfo(absl::StrCat("durability: synchronous=", info.synchronous,
                         " wal_autocheckpoint=", info.wal_autocheckpoint, " (from ",
                         durability->source, ")"));
  }
  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  LogInfo(absl::StrCat("kanband ", KANBAN_VERSION, " listening on ", host, ":",
                       (*server)->port(), " as replica ", (*server)->replica_id()));

  // ---- Metrics: a port file of its own; --port_file is gRPC's,
  // written after this one so that it still means "all is ready". ----
  if ((*server)->metrics_port() != 0) {
    const std::string metrics_host =
        options.metrics_listen.substr(0, options.metrics_listen.rfind(':'));
    LogInfo(absl::StrCat("metrics on http://", metrics_host, ":",
                         (*server)->metrics_port(), "/metrics"));
    if (const std::string file = absl::GetFlag(FLAGS_metrics_port_file); !file.empty()) {
      std::string tmp = file + ".tmp";
      { std::ofstream(tmp) << (*server)->metrics_port() << "\n"; }
      std::filesystem::rename(tmp, file);
    }
  }
  // ---- The HTTP door: its own port file, also before --port_file. ----
  if ((*server)->http_port() != 0) {
    const std::string http_host =
        options.http_listen.substr(0, options.http_listen.rfind(':'));
    LogInfo(absl::StrCat("http on http://", http_host.empty() ? "0.0.0.0" : http_host,
                         ":", (*server)->http_port(), "/ (JSON API under /api/v1/)"));
    if (const std::string file = absl::GetFlag(FLAGS_http_port_file); !file.empty()) {
      std::string tmp = file + ".tmp";
      { std::ofstream(tmp) << (*server)->http_port() << "\n"; }
      std::filesystem::rename(tmp, file);
    }
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    // Write then rename, so a reader never sees a half-written file.
    std::string tmp = port_file + ".tmp";
    { std::ofstream(tmp) << (*server)->port() << "\n"; }
    std::filesystem::rename(tmp, port_file);
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  LogInfo(absl::StrCat("received ", strsignal(signal_number),
                       "; finishing calls in flight and queued writes"));
  (*server)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds)));
  const int64_t batches = (*server)->store().writer_batches();
  const int64_t writes = (*server)->store().writer_mutations();
  LogInfo(absl::StrFormat("writer: %d writes in %d commits (%.1f per commit)", writes,
                          batches,
                          batches > 0 ? static_cast<double>(writes) / batches : 0.0));
  server->reset();
  LogInfo("database closed; bye");
  return 0;
}
