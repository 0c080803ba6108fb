// TLS end to end: certificates made with openssl when the suite starts, real
// kanband processes serving TLS (and mutual TLS), and kanbanctl or the C++
// library (client/cpp/tls.h) connecting with the right, the wrong or no
// credentials. A refused connection shows as UNAVAILABLE.
#include "client/cpp/tls.h"

#include <signal.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/support/cli.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::ChildProcess;
using ::kanban::testing::Describe;
using ::kanban::testing::IsRpcError;
using ::kanban::testing::IsUsageError;
using ::kanban::testing::JsonValue;
using ::kanban::testing::Kanband;
using ::kanban::testing::ReadFileOrEmpty;
using ::kanban::testing::RunResult;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;
// kanban::testing::Run is always written out in full: inside a test,
// ::testing::Test::Run would hide it.

constexpr char kOpenssl[] = "/usr/bin/openssl";

// The caller's KANBAN_* settings must not leak into kanbanctl.
const std::vector<std::string> kCleanEnv = {"KANBAN_SERVER", "KANBAN_TLS_CA",
                                            "KANBAN_TLS_CERT", "KANBAN_TLS_KEY",
                                            "KANBAN_TLS_SERVER_NAME"};

// Runs openssl; a failure fails the test with its output.
void Openssl(std::vector<std::string> args) {
  args.insert(args.begin(), kOpenssl);
  RunResult r = kanban::testing::Run(args, {}, "", absl::Seconds(60));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
}

class TlsTest : public ::testing::Test {
 protected:
  // One set of certificates for the whole suite (key generation is the slow
  // part): DIR/NAME.pem and DIR/NAME.key for
  //   ca            the CA kanband's certificates come from;
  //   server        signed by ca, for IP 127.0.0.1 and DNS localhost;
  //   client        signed by ca, for mutual TLS;
  //   other_ca      a self-signed CA nobody trusts;
  //   other_client  signed by other_ca.
  static void SetUpTestSuite() {
    certs_ = new TempDir();
    MakeCa("ca");
    MakeLeaf("server", "ca",
             "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
             "extendedKeyUsage=serverAuth\n");
    MakeLeaf("client", "ca", "extendedKeyUsage=clientAuth\n");
    MakeCa("other_ca");
    MakeLeaf("other_client", "other_ca", "extendedKeyUsage=clientAuth\n");
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }

  static std::string Pem(const std::string& name) { return certs_->File(name + ".pem"); }
  static std::string Key(const std::string& name) { return certs_->File(name + ".key"); }

  static void MakeCa(const std::string& name) {
    Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", Key(name), "-out", Pem(name), "-days", "2", "-subj",
             "/CN=kanban test " + name});
  }
  static void MakeLeaf(const std::string& name, const std::string& ca,
                       const std::string& extensions) {
    const std::string csr = certs_->File(name + ".csr");
    const std::string ext = certs_->File(name + ".ext");
    Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", Key(name), "-out", csr, "-subj",
             "/CN=kanban test " + name});
    std::ofstream(ext) << extensions;
    Openssl({"x509", "-req", "-in", csr, "-CA", Pem(ca), "-CAkey", Key(ca), "-set_serial",
             absl::StrCat(++serial_), "-days", "2", "-extfile", ext, "-out", Pem(name)});
  }

  void SetUp() override {
    if (certs_ == nullptr || ReadFileOrEmpty(Pem("other_client")).empty()) {
      GTEST_FAIL() << "the test certificates could not be made";
    }
  }

  // kanband serving TLS with the server certificate, plus `extra` flags.
  Kanband StartTlsKanband(std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(),
                 {"--tls_cert=" + Pem("server"), "--tls_key=" + Key("server")});
    return StartKanband(KANBAND_PATH, dir_.File("kanban.db"), extra);
  }

  // `kanbanctl --server ADDRESS --json ARGS...` (TLS flags go in `args`).
  static RunResult Ctl(const Kanband& server, std::vector<std::string> args,
                       const std::vector<std::string>& env = kCleanEnv) {
    args.insert(args.begin(), {KANBANCTL_PATH, "--server", server.address, "--json",
                               "--timeout", "20"});
    return kanban::testing::Run(args, env);
  }

  static inline TempDir* certs_ = nullptr;
  static inline int serial_ = 1;
  TempDir dir_;
};

TEST_F(TlsTest, TrustedClientCreatesAndReadsATask) {
  Kanband server = StartTlsKanband();
  ASSERT_TRUE(server.ok());
  EXPECT_TRUE(absl::StrContains(server.Log(), "TLS on")) << server.Log();

  RunResult created = Ctl(server, {"--tls-ca", Pem("ca"), "create", "--title", "secret"});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  const std::string id = JsonValue(created.out, "id");
  ASSERT_FALSE(id.empty()) << created.out;
  RunResult got = Ctl(server, {"get", id, "--tls-ca", Pem("ca")});  // Flag after command.
  ASSERT_EQ(got.exit_code, 0) << Describe(got);
  EXPECT_EQ(JsonValue(got.out, "title"), "secret") << got.out;
}

TEST_F(TlsTest, SettingsComeFromTheEnvironmentToo) {
  Kanband server = StartTlsKanband();
  ASSERT_TRUE(server.ok());
  std::vector<std::string> env = kCleanEnv;
  env.push_back("KANBAN_TLS_CA=" + Pem("ca"));
  env.push_back("KANBAN_TLS_SERVER_NAME=localhost");
  RunResult r = Ctl(server, {"boards"}, env);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(TlsTest, ServerNameOverrideIsChecked) {
  Kanband server = StartTlsKanband();
  ASSERT_TRUE(server.ok());
  RunResult named =
      Ctl(server, {"--tls-ca", Pem("ca"), "--tls-server-name", "localhost", "boards"});
  EXPECT_EQ(named.exit_code, 0) << Describe(named);
  RunResult wrong = Ctl(server, {"--tls-ca", Pem("ca"), "--tls-server-name",
                                 "not-this-server.example", "boards"});
  EXPECT_TRUE(IsRpcError(wrong, "UNAVAILABLE"));
}

TEST_F(TlsTest, PlaintextClientIsRefused) {
  Kanband server = StartTlsKanband();
  ASSERT_TRUE(server.ok());
  EXPECT_TRUE(IsRpcError(Ctl(server, {"boards"}), "UNAVAILABLE"));
}

TEST_F(TlsTest, ClientThatDoesNotTrustTheServersCaIsRefused) {
  Kanband server = StartTlsKanband();
  ASSERT_TRUE(server.ok());
  EXPECT_TRUE(
      IsRpcError(Ctl(server, {"--tls-ca", Pem("other_ca"), "boards"}), "UNAVAILABLE"));
}

TEST_F(TlsTest, TlsClientOfAPlaintextServerIsRefused) {
  Kanband server = StartKanband(KANBAND_PATH, dir_.File("kanban.db"));
  ASSERT_TRUE(server.ok());
  EXPECT_TRUE(absl::StrContains(server.Log(), "TLS off")) << server.Log();
  EXPECT_TRUE(IsRpcError(Ctl(server, {"--tls-ca", Pem("ca"), "boards"}), "UNAVAILABLE"));
}

TEST_F(TlsTest, MutualTlsNeedsACertificateTheClientCaSigned) {
  Kanband server = StartTlsKanband({"--tls_client_ca=" + Pem("ca")});
  ASSERT_TRUE(server.ok());
  EXPECT_TRUE(absl::StrContains(server.Log(), "mutual TLS")) << server.Log();

  EXPECT_TRUE(IsRpcError(Ctl(server, {"--tls-ca", Pem("ca"), "boards"}), "UNAVAILABLE"));
  EXPECT_TRUE(
      IsRpcError(Ctl(server, {"--tls-ca", Pem("ca"), "--tls-cert", Pem("other_client"),
                              "--tls-key", Key("other_client"), "boards"}),
                 "UNAVAILABLE"));
  RunResult ok = Ctl(server, {"--tls-ca", Pem("ca"), "--tls-cert", Pem("client"),
                              "--tls-key", Key("client"), "create", "--title", "mutual"});
  EXPECT_EQ(ok.exit_code, 0) << Describe(ok);
}

// watch opens a channel of its own; it must carry the same credentials.
TEST_F(TlsTest, WatchFollowsTheFeedOverMutualTls) {
  Kanband server = StartTlsKanband({"--tls_client_ca=" + Pem("ca")});
  ASSERT_TRUE(server.ok());
  const std::vector<std::string> tls = {"--tls-ca",    Pem("ca"),   "--tls-cert",
                                        Pem("client"), "--tls-key", Key("client")};
  std::vector<std::string> create = tls;
  create.insert(create.end(), {"create", "--title", "watched"});
  RunResult created = Ctl(server, create);
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  const std::string id = JsonValue(created.out, "id");

  std::vector<std::string> watch = {KANBANCTL_PATH, "--server", server.address, "--json"};
  watch.insert(watch.end(), tls.begin(), tls.end());
  watch.insert(watch.end(), {"watch", "--after", "0"});
  const std::string out = dir_.File("watch.out");
  ChildProcess watcher;
  ASSERT_TRUE(watcher.Start(watch, kCleanEnv, out).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  // Polls the file: nothing signals a write to it.
  while (!absl::StrContains(ReadFileOrEmpty(out), id) && absl::Now() < deadline &&
         watcher.running() && watcher.Wait(absl::Milliseconds(50)) == -1) {
  }
  EXPECT_TRUE(absl::StrContains(ReadFileOrEmpty(out), id)) << ReadFileOrEmpty(out);
  ASSERT_EQ(watcher.Signal(SIGTERM), 0) << ReadFileOrEmpty(out);
  EXPECT_EQ(watcher.Wait(absl::Seconds(10)), 0) << ReadFileOrEmpty(out);
}

// work claims over the TLS channel, and hands the --tls-* settings to the
// command as KANBAN_TLS_* so that it can call kanbanctl back.
TEST_F(TlsTest, WorkRunsOverMutualTlsAndPassesTheSettingsOn) {
  Kanband server = StartTlsKanband({"--tls_client_ca=" + Pem("ca")});
  ASSERT_TRUE(server.ok());
  const std::vector<std::string> tls = {"--tls-ca",          Pem("ca"),   "--tls-cert",
                                        Pem("client"),       "--tls-key", Key("client"),
                                        "--tls-server-name", "localhost"};
  std::vector<std::string> create = tls;
  create.insert(create.end(), {"create", "--title", "worked"});
  RunResult created = Ctl(server, create);
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  const std::string id = JsonValue(created.out, "id");

  std::vector<std::string> work = tls;
  work.insert(work.end(),
              {"work", "--once", "--", "/bin/sh", "-c",
               absl::StrCat("'", KANBANCTL_PATH,
                            "' --json get \"$KANBAN_TASK_ID\" | grep -c worked")});
  RunResult worked = Ctl(server, work);
  ASSERT_EQ(worked.exit_code, 0) << Describe(worked);

  std::vector<std::string> get = tls;
  get.insert(get.end(), {"get", id});
  RunResult task = Ctl(server, get);
  ASSERT_EQ(task.exit_code, 0) << Describe(task);
  EXPECT_EQ(JsonValue(task.out, "status"), "DONE") << task.out;
  EXPECT_EQ(JsonValue(task.out, "result"), "1\\n") << task.out;
}

// The library call that kanbanctl uses, with generated stubs.
TEST_F(TlsTest, LibraryCredentialsWorkWithGeneratedStubs) {
  Kanband server = StartTlsKanband({"--tls_client_ca=" + Pem("ca")});
  ASSERT_TRUE(server.ok());
  const auto list_boards = [&](const client::TlsFiles& files) {
    absl::StatusOr<client::ChannelSecurity> security = client::LoadChannelSecurity(files);
    EXPECT_TRUE(security.ok()) << security.status();
    if (!security.ok()) return grpc::StatusCode::UNKNOWN;
    auto stub = v1::KanbanService::NewStub(
        grpc::CreateCustomChannel(server.address, security->credentials, security->args));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    v1::ListBoardsResponse response;
    return stub->ListBoards(&context, v1::ListBoardsRequest(), &response).error_code();
  };
  EXPECT_EQ(list_boards({Pem("ca"), Pem("client"), Key("client"), "localhost"}),
            grpc::StatusCode::OK);
  EXPECT_EQ(list_boards({Pem("ca"), "", "", ""}), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(list_boards({}), grpc::StatusCode::UNAVAILABLE);  // Plaintext.
}

TEST(TlsFilesTest, ProblemsNameTheSetting) {
  const auto message = [](const client::TlsFiles& files) {
    absl::StatusOr<client::ChannelSecurity> security = client::LoadChannelSecurity(files);
    EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(security.status().message());
  };
  TempDir dir;
  EXPECT_TRUE(absl::StrContains(message({"", "cert.pem", "", ""}), "--tls-key"));
  EXPECT_TRUE(absl::StrContains(message({"", "", "key.pem", ""}), "--tls-cert"));
  EXPECT_TRUE(
      absl::StrContains(message({dir.File("missing.pem"), "", "", ""}), "--tls-ca"));
  // A directory, or a file that holds no PEM block.
  EXPECT_TRUE(absl::StrContains(message({dir.path(), "", "", ""}), "--tls-ca"));
}

TEST_F(TlsTest, KanbanctlRejectsBadTlsFlags) {
  Kanband server = StartTlsKanband();
  ASSERT_TRUE(server.ok());
  EXPECT_TRUE(
      IsUsageError(Ctl(server, {"--tls-cert", Pem("client"), "boards"}), "--tls-key"));
  EXPECT_TRUE(IsUsageError(Ctl(server, {"--tls-ca", dir_.File("none.pem"), "boards"}),
                           "--tls-ca"));
  EXPECT_TRUE(IsUsageError(
      Ctl(server, {"--tls-ca", Pem("ca"), "--tls-cert", dir_.File("none.pem"),
                   "--tls-key", Key("client"), "boards"}),
      "--tls-cert"));
}

TEST_F(TlsTest, KanbandRejectsBadTlsFlags) {
  struct Case {
    std::vector<std::string> flags;
    std::string named;  // The flag the error message must name.
  };
  const std::string missing = dir_.File("missing.pem");
  const std::vector<Case> cases = {
      {{"--tls_cert=" + Pem("server")}, "--tls_key"},
      {{"--tls_key=" + Key("server")}, "--tls_cert"},
      {{"--tls_client_ca=" + Pem("ca")}, "--tls_client_ca"},
      {{"--tls_cert=" + missing, "--tls_key=" + Key("server")}, "--tls_cert"},
      {{"--tls_cert=" + Pem("server"), "--tls_key=" + missing}, "--tls_key"},
      {{"--tls_cert=" + dir_.path(), "--tls_key=" + Key("server")}, "--tls_cert"},
      // A certificate where the key should be.
      {{"--tls_cert=" + Pem("server"), "--tls_key=" + Pem("server")}, "--tls_key"},
      {{"--tls_cert=" + Pem("server"), "--tls_key=" + Key("server"),
        "--tls_client_ca=" + missing},
       "--tls_client_ca"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {KANBAND_PATH, "--listen=127.0.0.1:0",
                                     "--db=" + dir_.File("kanban.db")};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    RunResult r = kanban::testing::Run(argv, {}, "", absl::Seconds(20));
    EXPECT_EQ(r.exit_code, 2) << c.named << ": " << Describe(r);
    EXPECT_TRUE(absl::StrContains(r.err, c.named)) << Describe(r);
  }
}

}  // namespace
}  // namespace kanban
