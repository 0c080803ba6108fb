// Conversion between kanban.v1 messages and storage's domain types: time
// precision and range, enum range, optional-field presence, and every field
// of a task.
#include "service/convert.h"

#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kanban::service {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
constexpr int64_t kMinSeconds = -62135596800;
constexpr int64_t kMaxSeconds = 253402300799;

google::protobuf::Timestamp Ts(int64_t seconds, int32_t nanos) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(seconds);
  ts.set_nanos(nanos);
  return ts;
}

google::protobuf::Timestamp RoundTrip(const google::protobuf::Timestamp& in) {
  absl::StatusOr<absl::Time> t = TimeFromProto(in, "when");
  EXPECT_TRUE(t.ok()) << t.status();
  google::protobuf::Timestamp out;
  if (t.ok()) TimeToProto(*t, &out);
  return out;
}

// ---- Time ------------------------------------------------------------------

TEST(TimeConvertTest, RoundTripsWholeMicroseconds) {
  for (const auto& ts :
       {Ts(0, 0), Ts(1700000000, 123456000), Ts(-1, 500000000), Ts(-2, 999999000),
        Ts(-1700000000, 1000), Ts(kMinSeconds, 0), Ts(kMaxSeconds, 999999000)}) {
    google::protobuf::Timestamp out = RoundTrip(ts);
    EXPECT_EQ(out.seconds(), ts.seconds()) << ts.DebugString();
    EXPECT_EQ(out.nanos(), ts.nanos()) << ts.DebugString();
  }
}

TEST(TimeConvertTest, FromProtoGivesTheInstant) {
  absl::StatusOr<absl::Time> t = TimeFromProto(Ts(-1, 500000000), "when");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, absl::FromUnixMillis(-500));

  t = TimeFromProto(Ts(1700000000, 250000000), "when");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, absl::FromUnixMillis(1700000000250));
}

TEST(TimeConvertTest, NanosAreTruncatedToMicroseconds) {
  google::protobuf::Timestamp out = RoundTrip(Ts(1700000000, 123456789));
  EXPECT_EQ(out.seconds(), 1700000000);
  EXPECT_EQ(out.nanos(), 123456000);

  // Negative seconds: the fraction still counts forward from `seconds`.
  out = RoundTrip(Ts(-2, 999999999));
  EXPECT_EQ(out.seconds(), -2);
  EXPECT_EQ(out.nanos(), 999999000);

  out = RoundTrip(Ts(-1, 999));
  EXPECT_EQ(out.seconds(), -1);
  EXPECT_EQ(out.nanos(), 0);
}

TEST(TimeConvertTest, ToProtoKeepsNanosNonNegative) {
  google::protobuf::Timestamp out;
  TimeToProto(absl::FromUnixMicros(-1500000), &out);
  EXPECT_EQ(out.seconds(), -2);
  EXPECT_EQ(out.nanos(), 500000000);

  TimeToProto(absl::FromUnixMicros(-1), &out);
  EXPECT_EQ(out.seconds(), -1);
  EXPECT_EQ(out.nanos(), 999999000);

  TimeToProto(absl::FromUnixNanos(1500000123), &out);  // Below a microsecond.
  EXPECT_EQ(out.seconds(), 1);
  EXPECT_EQ(out.nanos(), 500000000);

  TimeToProto(absl::UnixEpoch(), &out);
  EXPECT_EQ(out.seconds(), 0);
  EXPECT_EQ(out.nanos(), 0);
}

TEST(TimeConvertTest, OutOfRangeIsInvalidArgumentNamingTheField) {
  for (const auto& ts :
       {Ts(kMaxSeconds + 1, 0), Ts(kMinSeconds - 1, 999999999), Ts(0, -1),
        Ts(0, 1000000000), Ts(-5, -1), Ts(INT64_MAX, 0), Ts(INT64_MIN, 0)}) {
    absl::StatusOr<absl::Time> t = TimeFromProto(ts, "not_before");
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument)
        << ts.DebugString() << " -> " << t.status();
    EXPECT_THAT(std::string(t.status().message()), StartsWith("not_before"))
        << ts.DebugString();
  }
}

TEST(TimeConvertTest, RangeEndsAreAccepted) {
  EXPECT_TRUE(TimeFromProto(Ts(kMinSeconds, 0), "t").ok());
  EXPECT_TRUE(TimeFromProto(Ts(kMaxSeconds, 999999999), "t").ok());
  EXPECT_TRUE(TimeFromProto(Ts(0, 999999999), "t").ok());
}

// ---- Status enum -----------------------------------------------------------

TEST(StatusConvertTest, AcceptsEveryEnumValue) {
  for (int v = 0; v <= 8; ++v) {
    absl::StatusOr<storage::TaskStatus> s = StatusFromProto(v, "to_status");
    ASSERT_TRUE(s.ok()) << v << ": " << s.status();
    EXPECT_EQ(static_cast<int>(*s), v);
  }
  EXPECT_EQ(*StatusFromProto(v1::READY, "f"), storage::TaskStatus::kReady);
  EXPECT_EQ(*StatusFromProto(v1::ARCHIVED, "f"), storage::TaskStatus::kArchived);
}

TEST(StatusConvertTest, RejectsNumbersOutsideTheEnum) {
  for (int v : {-1, 9, 99, INT32_MIN, INT32_MAX}) {
    absl::StatusOr<storage::TaskStatus> s = StatusFromProto(v, "to_status");
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << v;
    EXPECT_THAT(std::string(s.status().message()), StartsWith("to_status")) << v;
  }
}

// ---- Requests --------------------------------------------------------------

TEST(RequestConvertTest, UpdateLeavesUnsetFieldsEmpty) {
  v1::UpdateTaskRequest r;
  r.set_task_id("t1");
  absl::StatusOr<storage::TaskUpdate> u = FromProto(r);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->task_id, "t1");
  EXPECT_EQ(u->title, std::nullopt);
  EXPECT_EQ(u->body, std::nullopt);
  EXPECT_EQ(u->priority, std::nullopt);
  EXPECT_EQ(u->assignee, std::nullopt);
  EXPECT_FALSE(u->labels.has_value());
  EXPECT_EQ(u->expected_version, 0);
}

TEST(RequestConvertTest, UpdateKeepsSetFieldsEvenWhenEmptyOrZero) {
  v1::UpdateTaskRequest r;
  r.set_task_id("t1");
  r.set_title("");
  r.set_body("");
  r.set_priority(0);
  r.set_assignee("");
  r.mutable_labels();  // Present but empty: clear the labels.
  r.set_expected_version(7);
  absl::StatusOr<storage::TaskUpdate> u = FromProto(r);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->title, std::optional<std::string>(""));
  EXPECT_EQ(u->body, std::optional<std::string>(""));
  EXPECT_EQ(u->priority, std::optional<int32_t>(0));
  EXPECT_EQ(u->assignee, std::optional<std::string>(""));
  ASSERT_TRUE(u->labels.has_value());
  EXPECT_THAT(*u->labels, IsEmpty());
  EXPECT_EQ(u->expected_version, 7);
}

TEST(RequestConvertTest, UpdateCopiesValues) {
  v1::UpdateTaskRequest r;
  r.set_task_id("t1");
  r.set_title("new title");
  r.set_priority(-4);
  r.mutable_labels()->add_values("b");
  r.mutable_labels()->add_values("a");
  absl::StatusOr<storage::TaskUpdate> u = FromProto(r);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->title, std::optional<std::string>("new title"));
  EXPECT_EQ(u->priority, std::optional<int32_t>(-4));
  EXPECT_EQ(u->body, std::nullopt);
  ASSERT_TRUE(u->labels.has_value());
  EXPECT_THAT(*u->labels, ElementsAre("b", "a"));
}

TEST(RequestConvertTest, CreateCopiesEveryField) {
  v1::CreateTaskRequest r;
  r.set_board("ops");
  r.set_title("title");
  r.set_body("body");
  r.set_priority(5);
  r.add_labels("x");
  r.add_labels("y");
  r.set_assignee("ann");
  r.add_parent_ids("p1");
  r.set_max_attempts(7);
  *r.mutable_not_before() = Ts(1700000000, 5000);
  r.set_idempotency_key("key");
  r.set_initial_status(v1::TRIAGE);
  absl::StatusOr<storage::NewTask> t = FromProto(r);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->board, "ops");
  EXPECT_EQ(t->title, "title");
  EXPECT_EQ(t->body, "body");
  EXPECT_EQ(t->priority, 5);
  EXPECT_THAT(t->labels, ElementsAre("x", "y"));
  EXPECT_EQ(t->assignee, "ann");
  EXPECT_THAT(t->parent_ids, ElementsAre("p1"));
  EXPECT_EQ(t->max_attempts, 7);
  EXPECT_EQ(t->not_before,
            std::optional<absl::Time>(absl::FromUnixMicros(1700000000000005)));
  EXPECT_EQ(t->idempotency_key, "key");
  EXPECT_EQ(t->initial_status, storage::TaskStatus::kTriage);
}

TEST(RequestConvertTest, CreateWithoutNotBeforeLeavesItUnset) {
  v1::CreateTaskRequest r;
  r.set_title("t");
  absl::StatusOr<storage::NewTask> t = FromProto(r);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->not_before, std::nullopt);
  EXPECT_EQ(t->initial_status, storage::TaskStatus::kUnspecified);
}

TEST(RequestConvertTest, CreateRejectsBadWireValuesNamingTheField) {
  v1::CreateTaskRequest r;
  r.set_title("t");
  *r.mutable_not_before() = Ts(0, 1000000000);
  absl::StatusOr<storage::NewTask> t = FromProto(r);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), StartsWith("not_before"));

  r.clear_not_before();
  r.set_initial_status(static_cast<v1::Status>(99));
  t = FromProto(r);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), StartsWith("initial_status"));
}

TEST(RequestConvertTest, MoveRejectsUnknownStatus) {
  v1::MoveTaskRequest r;
  r.set_task_id("t1");
  r.set_to_status(static_cast<v1::Status>(9));
  absl::StatusOr<storage::TaskMove> m = FromProto(r);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()), StartsWith("to_status"));

  r.set_to_status(v1::DONE);
  r.set_expected_version(3);
  r.set_reason("because");
  m = FromProto(r);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->task_id, "t1");
  EXPECT_EQ(m->to_status, storage::TaskStatus::kDone);
  EXPECT_EQ(m->expected_version, 3);
  EXPECT_EQ(m->reason, "because");
}

TEST(RequestConvertTest, ListFilterNamesTheBadStatusIndex) {
  v1::ListTasksRequest r;
  r.add_statuses(v1::READY);
  r.add_statuses(static_cast<v1::Status>(42));
  absl::StatusOr<storage::TaskFilter> f = FromProto(r);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(f.status().message()), StartsWith("statuses[1]"));

  r.clear_statuses();
  r.add_statuses(v1::DONE);
  r.set_board("b");
  r.set_assignee("a");
  r.set_label("l");
  r.set_page_size(10);
  r.set_page_token("tok");
  f = FromProto(r);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->board, "b");
  EXPECT_THAT(f->statuses, ElementsAre(storage::TaskStatus::kDone));
  EXPECT_EQ(f->assignee, "a");
  EXPECT_EQ(f->label, "l");
  EXPECT_EQ(f->page_size, 10);
  EXPECT_EQ(f->page_token, "tok");
}

// ---- Responses -------------------------------------------------------------

TEST(ResponseConvertTest, TaskFieldByField) {
  storage::Task t;
  t.id = "01hx";
  t.board = "ops";
  t.title = "title";
  t.body = "body";
  t.status = storage::TaskStatus::kReview;
  t.priority = -3;
  t.labels = {"b", "a"};
  t.assignee = "ann";
  t.parent_ids = {"p1", "p2"};
  t.created_at = absl::FromUnixMicros(1700000000000001);
  t.updated_at = absl::FromUnixMicros(1700000000500002);
  t.version = 9;
  t.attempt = 2;
  t.max_attempts = 5;
  t.not_before = absl::FromUnixMicros(-1500000);
  t.result = "ok";
  t.last_error = "boom";
  t.idempotency_key = "key";

  v1::Task p;
  ToProto(t, &p);
  EXPECT_EQ(p.id(), "01hx");
  EXPECT_EQ(p.board(), "ops");
  EXPECT_EQ(p.title(), "title");
  EXPECT_EQ(p.body(), "body");
  EXPECT_EQ(p.status(), v1::REVIEW);
  EXPECT_EQ(p.priority(), -3);
  EXPECT_THAT(p.labels(), ElementsAre("b", "a"));
  EXPECT_EQ(p.assignee(), "ann");
  EXPECT_THAT(p.parent_ids(), ElementsAre("p1", "p2"));
  EXPECT_EQ(p.created_at().seconds(), 1700000000);
  EXPECT_EQ(p.created_at().nanos(), 1000);
  EXPECT_EQ(p.updated_at().seconds(), 1700000000);
  EXPECT_EQ(p.updated_at().nanos(), 500002000);
  EXPECT_EQ(p.version(), 9);
  EXPECT_EQ(p.attempt(), 2);
  EXPECT_EQ(p.max_attempts(), 5);
  ASSERT_TRUE(p.has_not_before());
  EXPECT_EQ(p.not_before().seconds(), -2);
  EXPECT_EQ(p.not_before().nanos(), 500000000);
  EXPECT_EQ(p.result(), "ok");
  EXPECT_EQ(p.last_error(), "boom");
  EXPECT_EQ(p.idempotency_key(), "key");
}

TEST(ResponseConvertTest, TaskWithoutNotBeforeLeavesItUnset) {
  storage::Task t;
  t.id = "x";
  t.status = storage::TaskStatus::kReady;
  v1::Task p;
  ToProto(t, &p);
  EXPECT_FALSE(p.has_not_before());
  EXPECT_TRUE(p.has_created_at());
  EXPECT_THAT(p.labels(), IsEmpty());
  EXPECT_THAT(p.parent_ids(), IsEmpty());
}

TEST(ResponseConvertTest, BoardCommentAndEvent) {
  v1::Board b;
  ToProto(storage::Board{"ops", "desc", absl::FromUnixSeconds(10)}, &b);
  EXPECT_EQ(b.name(), "ops");
  EXPECT_EQ(b.description(), "desc");
  EXPECT_EQ(b.created_at().seconds(), 10);

  v1::Comment c;
  ToProto(storage::Comment{4, "t1", "ann", "hello", absl::FromUnixSeconds(11)}, &c);
  EXPECT_EQ(c.id(), 4);
  EXPECT_EQ(c.task_id(), "t1");
  EXPECT_EQ(c.author(), "ann");
  EXPECT_EQ(c.body(), "hello");
  EXPECT_EQ(c.created_at().seconds(), 11);

  storage::Event e;
  e.seq = 12;
  e.board = "ops";
  e.kind = "board_created";
  e.time = absl::FromUnixSeconds(13);
  v1::Event pe;
  ToProto(e, &pe);
  EXPECT_EQ(pe.seq(), 12);
  EXPECT_EQ(pe.kind(), "board_created");
  EXPECT_EQ(pe.time().seconds(), 13);
  EXPECT_FALSE(pe.has_task());

  storage::Task t;
  t.id = "t1";
  t.status = storage::TaskStatus::kDone;
  e.task_id = "t1";
  e.kind = "moved";
  e.task = t;
  e.reason = "why";
  pe.Clear();
  ToProto(e, &pe);
  EXPECT_EQ(pe.task_id(), "t1");
  ASSERT_TRUE(pe.has_task());
  EXPECT_EQ(pe.task().id(), "t1");
  EXPECT_EQ(pe.task().status(), v1::DONE);
  EXPECT_EQ(pe.reason(), "why");
}

TEST(ResponseConvertTest, TaskPageKeepsOrderAndToken) {
  storage::TaskPage page;
  page.tasks.resize(2);
  page.tasks[0].id = "a";
  page.tasks[1].id = "b";
  page.next_page_token = "next";
  v1::ListTasksResponse out;
  ToProto(page, &out);
  ASSERT_EQ(out.tasks_size(), 2);
  EXPECT_EQ(out.tasks(0).id(), "a");
  EXPECT_EQ(out.tasks(1).id(), "b");
  EXPECT_EQ(out.next_page_token(), "next");
}

}  // namespace
}  // namespace kanban::service
