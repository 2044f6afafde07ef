// End to end: the real splitd, splitctl and splitd-agent binaries over TLS and mutual TLS, with a
// CA, a server certificate for 127.0.0.1 and client certificates made by `openssl` per test run.

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/splitd_processes.h"
#include "tests/testing/subprocess.h"

namespace splitd {
namespace {

using ::splitd::testing::CommandResult;
using ::splitd::testing::IsOk;
using ::splitd::testing::RunCommand;
using ::splitd::testing::RunfilePath;
using ::splitd::testing::Subprocess;
using ::testing::HasSubstr;
using ::testing::Not;

int Lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

// Files of one CA-signed leaf: NAME.pem, NAME.key.
class Pki {
 public:
  explicit Pki(std::string dir) : dir_(std::move(dir)) {}

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // A self-signed CA: NAME.pem, NAME.key.
  void MakeCa(const std::string& name) {
    Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", Path(name + ".key"), "-out", Path(name + ".pem"), "-days", "2", "-subj",
             "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
             "keyUsage=critical,keyCertSign,cRLSign"});
  }

  // A leaf signed by `ca` with the given extensions (subjectAltName, extendedKeyUsage).
  void MakeLeaf(const std::string& name, const std::string& ca, const std::string& extensions) {
    std::ofstream(Path(name + ".ext")) << extensions;
    Openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", Path(name + ".key"), "-out", Path(name + ".csr"), "-subj", "/CN=" + name});
    Openssl({"x509", "-req", "-in", Path(name + ".csr"), "-CA", Path(ca + ".pem"), "-CAkey",
             Path(ca + ".key"), "-CAcreateserial", "-out", Path(name + ".pem"), "-days", "2",
             "-extfile", Path(name + ".ext")});
  }

 private:
  void Openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    auto result = RunCommand(args);
    ASSERT_THAT(result, IsOk());
    ASSERT_EQ(result->exit_code, 0) << result->err;
  }

  std::string dir_;
};

class TlsEndToEndTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/pki");
    ASSERT_EQ(RunCommand({"mkdir", "-p", *dir_})->exit_code, 0);
    Pki pki(*dir_);
    pki.MakeCa("ca");
    pki.MakeLeaf("server", "ca",
                 "subjectAltName=IP:127.0.0.1,DNS:splitd.test\nextendedKeyUsage=serverAuth\n");
    pki.MakeLeaf("client", "ca", "extendedKeyUsage=clientAuth\n");
    pki.MakeCa("rogue-ca");
    pki.MakeLeaf("rogue-client", "rogue-ca", "extendedKeyUsage=clientAuth\n");
  }

  static void TearDownTestSuite() { delete dir_; }

  static std::string File(const std::string& name) { return *dir_ + "/" + name; }

  void TearDown() override {
    testing::TerminateAll(agents_, /*expect_zero_exit=*/true);
    if (daemon_ != nullptr) testing::Terminate(*daemon_, /*expect_zero_exit=*/true);
  }

  void StartDaemon(std::vector<std::string> flags) {
    auto daemon = testing::StartDaemon(::testing::TempDir() + "/splitd.port", flags);
    ASSERT_THAT(daemon, IsOk());
    daemon_ = std::move(daemon->process);
    address_ = daemon->address;
  }

  CommandResult Splitctl(std::vector<std::string> args, absl::Duration timeout = absl::Seconds(60),
                         const std::string& stdin_text = "") {
    args.insert(args.begin(), {"--timeout", "5"});
    return testing::RunSplitctl(address_, args, stdin_text, timeout);
  }

  static std::vector<std::string> TrustCa() { return {"--tls_ca", File("ca.pem")}; }
  static std::vector<std::string> ClientCert(const std::string& name = "client") {
    return {"--tls_ca",          File("ca.pem"), "--tls_cert",
            File(name + ".pem"), "--tls_key",    File(name + ".key")};
  }

  static std::vector<std::string> Concat(std::vector<std::string> a,
                                         const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  static std::string* dir_;
  std::unique_ptr<Subprocess> daemon_;
  std::vector<std::unique_ptr<Subprocess>> agents_;
  std::string address_;
};

std::string* TlsEndToEndTest::dir_ = nullptr;

TEST_F(TlsEndToEndTest, TlsDaemonServesTrustingClientsAndRefusesPlaintextOnes) {
  StartDaemon(
      {"--tls_cert=" + File("server.pem"), "--tls_key=" + File("server.key"), "--log_format=json"});
  EXPECT_THAT(daemon_->Stderr(), HasSubstr("serving TLS"));
  EXPECT_THAT(daemon_->Stderr(), Not(HasSubstr("PLAINTEXT")));

  CommandResult trusted = Splitctl(Concat(TrustCa(), {"get", "clusters", "-o", "json"}));
  EXPECT_EQ(trusted.exit_code, 0) << trusted.err;
  EXPECT_EQ(trusted.out, "[]\n");

  // The certificate also names splitd.test; verifying that name instead of the IP works too.
  CommandResult renamed =
      Splitctl(Concat(TrustCa(), {"--tls_server_name", "splitd.test", "get", "clusters"}));
  EXPECT_EQ(renamed.exit_code, 0) << renamed.err;

  CommandResult plaintext = Splitctl({"get", "clusters"});
  EXPECT_EQ(plaintext.exit_code, 1);
  EXPECT_THAT(plaintext.err, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(Lines(plaintext.err), 1) << plaintext.err;
  EXPECT_EQ(plaintext.out, "");

  // TLS against the system's roots, which do not hold the test CA.
  CommandResult untrusted = Splitctl({"--tls", "get", "clusters"});
  EXPECT_EQ(untrusted.exit_code, 1);
  EXPECT_THAT(untrusted.err, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(Lines(untrusted.err), 1) << untrusted.err;

  CommandResult wrong_name =
      Splitctl(Concat(TrustCa(), {"--tls_server_name", "other.test", "get", "clusters"}));
  EXPECT_EQ(wrong_name.exit_code, 1);
  EXPECT_THAT(wrong_name.err, HasSubstr("UNAVAILABLE"));

  // $SPLITD_TLS_CA stands in for --tls_ca.
  auto from_env =
      RunCommand({"env", "SPLITD_TLS_CA=" + File("ca.pem"), RunfilePath("client/splitctl"),
                  "--addr", address_, "get", "clusters"});
  ASSERT_THAT(from_env, IsOk());
  EXPECT_EQ(from_env->exit_code, 0) << from_env->err;

  // The refused handshakes reach the daemon's log in its own format.
  for (absl::string_view line : absl::StrSplit(daemon_->Stderr(), '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(nlohmann::json::accept(line)) << line;
  }
}

TEST_F(TlsEndToEndTest, PlaintextDaemonRefusesTlsClientsAndWarns) {
  StartDaemon({});
  EXPECT_THAT(daemon_->Stderr(), HasSubstr("PLAINTEXT"));
  CommandResult tls = Splitctl(Concat(TrustCa(), {"get", "clusters"}));
  EXPECT_EQ(tls.exit_code, 1);
  EXPECT_THAT(tls.err, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(Lines(tls.err), 1) << tls.err;
  EXPECT_EQ(Splitctl({"get", "clusters"}).exit_code, 0);
}

TEST_F(TlsEndToEndTest, MutualTlsRequiresAClientCertificateFromTheCa) {
  StartDaemon({"--tls_cert=" + File("server.pem"), "--tls_key=" + File("server.key"),
               "--tls_client_ca=" + File("ca.pem")});
  EXPECT_THAT(daemon_->Stderr(), HasSubstr("mutual TLS"));

  CommandResult anonymous = Splitctl(Concat(TrustCa(), {"get", "clusters"}));
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_THAT(anonymous.err, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(Lines(anonymous.err), 1) << anonymous.err;

  CommandResult rogue = Splitctl(Concat(ClientCert("rogue-client"), {"get", "clusters"}));
  EXPECT_EQ(rogue.exit_code, 1);
  EXPECT_THAT(rogue.err, HasSubstr("UNAVAILABLE"));

  CommandResult applied = Splitctl(Concat(ClientCert(), {"apply", "-f", "-"}), absl::Seconds(60),
                                   "cluster: tls\ndims:\n  - {name: dp, size: 2}\n"
                                   "nodes: {gpus_per_node: 2}\n"
                                   "groups:\n  - {name: dp, dims: [dp]}\n");
  ASSERT_EQ(applied.exit_code, 0) << applied.err;

  for (int index = 0; index < 2; ++index) {
    auto agent = testing::StartOrFail(
        testing::AgentArgv(address_, "tls", "node-0", index, absl::StrCat("agent-", index),
                           Concat({"--nccl_library=", "--timeout_ms=30000"}, ClientCert())));
    ASSERT_NE(agent, nullptr);
    agents_.push_back(std::move(agent));
  }

  CommandResult watched = Splitctl(
      Concat(ClientCert(), testing::WatchStatusArgs("tls", absl::Seconds(90))), absl::Seconds(120));
  const nlohmann::json last = testing::LastJsonLine(watched.out);
  ASSERT_EQ(watched.exit_code, 0) << watched.out << watched.err << agents_[0]->Stderr()
                                  << agents_[1]->Stderr();
  ASSERT_FALSE(last.is_null()) << watched.out;
  const nlohmann::json& status = last;
  EXPECT_EQ(status["state"], "READY");
  ASSERT_EQ(status["members"].size(), 2u);
  for (const nlohmann::json& member : status["members"]) EXPECT_EQ(member["phase"], "READY");
  EXPECT_THAT(agents_[0]->Stderr(), HasSubstr("over TLS"));
}

TEST_F(TlsEndToEndTest, BadFlagsAndFilesExitTwoNamingTheFlag) {
  struct Case {
    std::vector<std::string> argv;
    std::string message;
  };
  const std::string splitd = RunfilePath("daemon/splitd");
  const std::string splitctl = RunfilePath("client/splitctl");
  const std::string agent = RunfilePath("worker/splitd-agent");
  const std::vector<Case> cases = {
      {{splitd, "--listen=0.0.0.0:0"}, "--plaintext"},
      {{splitd, "--tls_cert=" + File("server.pem")}, "--tls_cert needs --tls_key"},
      {{splitd, "--tls_cert=/nonexistent.pem", "--tls_key=" + File("server.key")},
       "--tls_cert /nonexistent.pem: cannot read"},
      {{splitd, "--tls_cert=" + File("server.pem"), "--tls_key=" + File("client.key")},
       "does not match"},
      {{splitd, "--tls_cert=" + File("server.key"), "--tls_key=" + File("server.key")},
       "--tls_cert " + File("server.key") + ": no PEM certificate"},
      {{splitd, "--tls_cert=" + File("server.pem"), "--tls_key=" + File("server.key"),
        "--tls_client_ca=" + File("client.key")},
       "--tls_client_ca"},
      {{splitctl, "--tls_ca", "/nonexistent-ca.pem", "get", "clusters"},
       "--tls_ca /nonexistent-ca.pem: cannot read"},
      {{splitctl, "--plaintext", "--tls_ca", File("ca.pem"), "get", "clusters"},
       "--plaintext conflicts with --tls_ca"},
      {{splitctl, "--tls_cert", File("client.pem"), "get", "clusters"},
       "--tls_cert needs --tls_key"},
      {{agent, "--cluster=x", "--tls_ca=" + File("server.key")}, "--tls_ca"},
      {{agent, "--cluster=x", "--tls_cert=" + File("client.pem"),
        "--tls_key=" + File("server.key")},
       "does not match"},
  };
  for (const Case& c : cases) {
    auto result = RunCommand(c.argv, "", absl::Seconds(30));
    ASSERT_THAT(result, IsOk());
    EXPECT_EQ(result->exit_code, 2) << c.argv[0] << " " << c.argv[1] << "\n" << result->err;
    EXPECT_THAT(result->err, HasSubstr(c.message)) << c.argv[0] << " " << c.argv[1];
  }
}

}  // namespace
}  // namespace splitd
