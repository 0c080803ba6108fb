// The manual-move table, checked exhaustively, and field naming in errors.
#include "storage/rules.h"

#include <map>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kanban::storage {
namespace {

using S = TaskStatus;
using ::testing::HasSubstr;

TEST(RulesTest, ManualMoveTableIsExactlyTheDocumentedOne) {
  const std::map<S, std::set<S>> allowed = {
      {S::kTriage, {S::kTodo, S::kReady, S::kArchived}},
      {S::kTodo, {S::kReady, S::kBlocked, S::kArchived}},
      {S::kReady, {S::kTodo, S::kBlocked, S::kDone, S::kArchived}},
      {S::kRunning, {S::kBlocked, S::kArchived}},
      {S::kBlocked, {S::kReady, S::kTodo, S::kDone, S::kArchived}},
      {S::kReview, {S::kDone, S::kReady, S::kTodo, S::kArchived}},
      {S::kDone, {S::kReady, S::kArchived}},
      {S::kArchived, {}},
  };
  for (int f = 1; f <= kMaxTaskStatus; ++f) {
    for (int t = 0; t <= kMaxTaskStatus; ++t) {
      S from = static_cast<S>(f), to = static_cast<S>(t);
      absl::Status s = CheckManualMove(from, to);
      bool expected = allowed.at(from).count(to) > 0;
      EXPECT_EQ(s.ok(), expected) << StatusName(from) << " -> " << StatusName(to);
      if (!expected) {
        EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_THAT(std::string(s.message()), HasSubstr(std::string(StatusName(from))));
        EXPECT_THAT(std::string(s.message()), HasSubstr(std::string(StatusName(to))));
      }
    }
  }
}

TEST(RulesTest, NoManualMoveEntersRunning) {
  for (int f = 1; f <= kMaxTaskStatus; ++f) {
    EXPECT_FALSE(CheckManualMove(static_cast<S>(f), S::kRunning).ok());
  }
}

TEST(RulesTest, BoardNames) {
  for (const char* good : {"default", "a", "ops_2-x", "0123456789"}) {
    EXPECT_TRUE(ValidateBoardName(good, "board").ok()) << good;
  }
  std::string long_name(65, 'a');
  for (std::string bad : {std::string(""), std::string("Upper"), std::string("sp ace"),
                          std::string("dot.s"), long_name, std::string("ü")}) {
    absl::Status s = ValidateBoardName(bad, "board");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), ::testing::StartsWith("board:"));
  }
  EXPECT_TRUE(ValidateBoardName(std::string(64, 'a'), "board").ok());
}

TEST(RulesTest, LeaseEndReasonIsWhatAHeartbeatReports) {
  auto reason = [](const std::string& kind, const std::string& principal) {
    Event event;
    event.kind = kind;
    event.principal = principal;
    return LeaseEndReason(event);
  };
  EXPECT_EQ(reason("completed", "w"), "completed");
  EXPECT_EQ(reason("failed", "w"), "failed");
  EXPECT_EQ(reason("released", "w"), "released");
  EXPECT_EQ(reason("reclaimed", kServerPrincipal), "reclaimed");
  // Out of attempts: the sweep reclaimed it, or the worker failed it.
  EXPECT_EQ(reason("gave_up", kServerPrincipal), "reclaimed");
  EXPECT_EQ(reason("gave_up", "w"), "failed");
  EXPECT_EQ(reason("moved", "operator"), "cancelled");
  EXPECT_EQ(reason("lease_cancelled", "operator"), "cancelled");
}

TEST(RulesTest, Utf8LengthCountsCodePoints) {
  EXPECT_EQ(Utf8Length("abc"), 3);
  EXPECT_EQ(Utf8Length("é"), 1);
  EXPECT_EQ(Utf8Length("🚀x"), 2);
}

TEST(RulesTest, UpdateAndMoveAndCommentName) {
  TaskUpdate u;
  u.task_id = "t";
  u.title = "";
  EXPECT_THAT(std::string(ValidateTaskUpdate(u).message()),
              ::testing::StartsWith("title:"));
  u.title.reset();
  u.expected_version = -1;
  EXPECT_THAT(std::string(ValidateTaskUpdate(u).message()),
              ::testing::StartsWith("expected_version:"));
  TaskMove m;
  m.task_id = "t";
  EXPECT_THAT(std::string(ValidateTaskMove(m).message()),
              ::testing::StartsWith("to_status:"));
  m.to_status = S::kDone;
  m.reason = std::string(1025, 'r');
  EXPECT_THAT(std::string(ValidateTaskMove(m).message()),
              ::testing::StartsWith("reason:"));
  NewComment c{"t", "me", " "};
  EXPECT_THAT(std::string(ValidateNewComment(c).message()),
              ::testing::StartsWith("body:"));
  EXPECT_THAT(std::string(ValidateTaskId("", "task_id").message()),
              ::testing::StartsWith("task_id:"));
}

// --max_page_size replaces the fixed 1000 and is named.
TEST(RulesTest, PageSizeLimitIsConfigurableAndNamed) {
  TaskFilter filter;
  filter.page_size = kMaxPageSize;
  EXPECT_TRUE(ValidateTaskFilter(filter).ok());
  filter.page_size = kMaxPageSize + 1;
  absl::Status s = ValidateTaskFilter(filter);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "page_size: at most 1000 (--max_page_size), got 1001");
  filter.page_size = 5;
  EXPECT_TRUE(ValidateTaskFilter(filter, 5).ok());
  filter.page_size = 6;
  EXPECT_THAT(std::string(ValidateTaskFilter(filter, 5).message()),
              ::testing::StartsWith("page_size: at most 5 (--max_page_size)"));
  filter.page_size = -1;
  EXPECT_EQ(ValidateTaskFilter(filter).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kanban::storage
