#include "common/tls_credentials.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string WriteTemp(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << contents;
  return path;
}

TEST(IsLoopbackAddressTest, LoopbackHostsOnly) {
  for (const char* address : {"127.0.0.1:7070", "127.1.2.3:0", "[::1]:7070", "localhost:7070",
                              "unix:/run/splitd.sock", "::1", "127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackAddress(address)) << address;
  }
  for (const char* address : {"0.0.0.0:7070", "[::]:7070", "10.0.0.1:7070", "splitd:7070",
                              "dns:///localhost:7070", "[::1:7070", "128.0.0.1:1", ""}) {
    EXPECT_FALSE(IsLoopbackAddress(address)) << address;
  }
}

TEST(MakeServerSecurityTest, PlaintextOnLoopbackWithoutFlags) {
  auto security = MakeServerSecurity({}, "127.0.0.1:0");
  ASSERT_THAT(security, IsOk());
  EXPECT_TRUE(security->plaintext);
  EXPECT_NE(security->credentials, nullptr);
}

TEST(MakeServerSecurityTest, NonLoopbackNeedsTlsOrPlaintext) {
  EXPECT_THAT(MakeServerSecurity({}, "0.0.0.0:7070"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--listen 0.0.0.0:7070"), HasSubstr("--plaintext"))));
  ServerTlsOptions plaintext;
  plaintext.plaintext = true;
  auto security = MakeServerSecurity(plaintext, "0.0.0.0:7070");
  ASSERT_THAT(security, IsOk());
  EXPECT_TRUE(security->plaintext);
}

TEST(MakeServerSecurityTest, FlagCombinationsNameTheFlag) {
  ServerTlsOptions cert_only;
  cert_only.cert_file = "/x.pem";
  EXPECT_THAT(
      MakeServerSecurity(cert_only, "127.0.0.1:0"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls_cert needs --tls_key")));
  ServerTlsOptions ca_only;
  ca_only.client_ca_file = "/ca.pem";
  EXPECT_THAT(MakeServerSecurity(ca_only, "127.0.0.1:0"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls_client_ca needs")));
  ServerTlsOptions both;
  both.cert_file = "/x.pem";
  both.key_file = "/x.key";
  both.plaintext = true;
  EXPECT_THAT(MakeServerSecurity(both, "127.0.0.1:0"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--plaintext conflicts")));
}

TEST(MakeServerSecurityTest, UnreadableAndInvalidFilesNameTheFlagAndFile) {
  ServerTlsOptions missing;
  missing.cert_file = "/nonexistent/cert.pem";
  missing.key_file = "/nonexistent/key.pem";
  EXPECT_THAT(
      MakeServerSecurity(missing, "127.0.0.1:0"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("--tls_cert /nonexistent/cert.pem"), HasSubstr("cannot read"))));
  ServerTlsOptions garbage;
  garbage.cert_file = WriteTemp("garbage.pem", "not a certificate\n");
  garbage.key_file = WriteTemp("garbage.key", "not a key\n");
  EXPECT_THAT(MakeServerSecurity(garbage, "127.0.0.1:0"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--tls_cert"), HasSubstr("no PEM certificate"))));
  ServerTlsOptions empty;
  empty.cert_file = WriteTemp("empty.pem", "");
  empty.key_file = garbage.key_file;
  EXPECT_THAT(MakeServerSecurity(empty, "127.0.0.1:0"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

TEST(MakeClientSecurityTest, LoopbackPlaintextElsewhereTls) {
  grpc::ChannelArguments args;
  auto loopback = MakeClientSecurity({}, "127.0.0.1:7070", &args);
  ASSERT_THAT(loopback, IsOk());
  EXPECT_TRUE(loopback->plaintext);
  auto remote = MakeClientSecurity({}, "splitd:7070", &args);
  ASSERT_THAT(remote, IsOk());
  EXPECT_FALSE(remote->plaintext);
  ClientTlsOptions plaintext;
  plaintext.plaintext = true;
  auto forced = MakeClientSecurity(plaintext, "splitd:7070", &args);
  ASSERT_THAT(forced, IsOk());
  EXPECT_TRUE(forced->plaintext);
  ClientTlsOptions tls;
  tls.tls = true;
  auto forced_tls = MakeClientSecurity(tls, "127.0.0.1:7070", &args);
  ASSERT_THAT(forced_tls, IsOk());
  EXPECT_FALSE(forced_tls->plaintext);
}

TEST(MakeClientSecurityTest, ConflictsAndBadFilesNameTheFlag) {
  grpc::ChannelArguments args;
  ClientTlsOptions conflict;
  conflict.plaintext = true;
  conflict.ca_file = "/ca.pem";
  EXPECT_THAT(MakeClientSecurity(conflict, "127.0.0.1:7070", &args),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--plaintext conflicts with --tls_ca")));
  ClientTlsOptions key_only;
  key_only.key_file = "/k.pem";
  EXPECT_THAT(
      MakeClientSecurity(key_only, "127.0.0.1:7070", &args),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls_key needs --tls_cert")));
  ClientTlsOptions bad_ca;
  bad_ca.ca_file = WriteTemp("bad-ca.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
  EXPECT_THAT(
      MakeClientSecurity(bad_ca, "127.0.0.1:7070", &args),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("--tls_ca " + bad_ca.ca_file), HasSubstr("no PEM certificate"))));
}

TEST(WithEnvironmentDefaultsTest, FlagsWinThenTlsVariablesThenPlaintext) {
  ASSERT_EQ(setenv("SPLITD_TLS_CA", "/env/ca.pem", 1), 0);
  ASSERT_EQ(setenv("SPLITD_PLAINTEXT", "1", 1), 0);
  ClientTlsOptions flags;
  flags.ca_file = "/flag/ca.pem";
  EXPECT_EQ(WithEnvironmentDefaults(flags).ca_file, "/flag/ca.pem");
  ClientTlsOptions none;
  ClientTlsOptions from_env = WithEnvironmentDefaults(none);
  EXPECT_EQ(from_env.ca_file, "/env/ca.pem");
  EXPECT_FALSE(from_env.plaintext) << "a CA asks for TLS; $SPLITD_PLAINTEXT does not apply";
  ClientTlsOptions plaintext;
  plaintext.plaintext = true;
  EXPECT_TRUE(WithEnvironmentDefaults(plaintext).ca_file.empty());

  ASSERT_EQ(unsetenv("SPLITD_TLS_CA"), 0);
  EXPECT_TRUE(WithEnvironmentDefaults(none).plaintext);
  ASSERT_EQ(setenv("SPLITD_PLAINTEXT", "0", 1), 0);
  EXPECT_FALSE(WithEnvironmentDefaults(none).plaintext);
  ASSERT_EQ(unsetenv("SPLITD_PLAINTEXT"), 0);
}

}  // namespace
}  // namespace splitd
