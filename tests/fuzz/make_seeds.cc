// Writes the committed seed corpus (a plain program, not a fuzzer):
//   build-fuzz/make_fuzz_seeds tests/fuzz/corpus
// One small file per example under <dir>/fuzz_requests/ (op byte + message,
// see request_ops.h; "#N" names fixture task N or lease N, see
// store_fixture.h) and <dir>/fuzz_json_text/. Rerun after changing either
// format, and commit the result.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "google/protobuf/duration.pb.h"
#include "google/protobuf/message.h"
#include "kanban/v1/kanban.pb.h"
#include "tests/fuzz/request_ops.h"

namespace kanban::fuzz {
namespace {

std::string out_dir;  // NOLINT: set once in main.

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

void Seed(const std::string& name, Op op, const google::protobuf::Message& m) {
  WriteFile(out_dir + "/fuzz_requests/" + name,
            std::string(1, static_cast<char>(op)) + m.SerializeAsString());
}

void JsonSeed(const std::string& name, const std::string& text) {
  WriteFile(out_dir + "/fuzz_json_text/" + name, text);
}

// Fixture tasks (store_fixture.cc): #0 READY with a comment, #1 TODO child
// of #0, #2 TRIAGE, #3 RUNNING under lease #0 (worker w1), #4 DONE (lease #1,
// ended), #5 ARCHIVED, #6 READY on board b1, #7 TODO child of #3.
void RequestSeeds() {
  {
    v1::CreateBoardRequest r;
    r.set_name("b2");
    r.set_description("another board");
    Seed("create_board", kCreateBoard, r);
    r.set_name("Not A Name");
    Seed("create_board-bad_name", kCreateBoard, r);
  }
  {
    v1::CreateTaskRequest r;
    r.set_title("write the report");
    Seed("create_task", kCreateTask, r);
    r.set_board("b1");
    r.set_body("body\nwith \"quotes\", \\ and \t tabs \xc3\xa9\xf0\x9f\x98\x80");
    r.set_priority(5);
    r.add_labels("x");
    r.add_labels("y");
    r.set_assignee("al");
    r.set_max_attempts(2);
    r.mutable_not_before()->set_seconds(1800000030);
    r.set_idempotency_key("k1");
    Seed("create_task-full", kCreateTask, r);
    v1::CreateTaskRequest child;
    child.set_title("child");
    child.add_parent_ids("#0");
    child.add_parent_ids("#3");
    Seed("create_task-parents", kCreateTask, child);
    v1::CreateTaskRequest triage;
    triage.set_title("maybe");
    triage.set_initial_status(v1::TRIAGE);
    Seed("create_task-triage", kCreateTask, triage);
    v1::CreateTaskRequest bad;
    bad.set_title("  ");
    bad.mutable_not_before()->set_seconds(-62135596801);
    Seed("create_task-invalid", kCreateTask, bad);
  }
  {
    v1::GetTaskRequest r;
    r.set_task_id("#3");
    Seed("get_task", kGetTask, r);
    r.set_task_id("01hzzzzzzzzzzzzzzzzzzzzzzz");
    Seed("get_task-missing", kGetTask, r);
  }
  {
    v1::ListTasksRequest r;
    Seed("list_tasks", kListTasks, r);
    r.set_board("default");
    r.add_statuses(v1::READY);
    r.add_statuses(v1::TODO);
    r.set_page_size(2);
    Seed("list_tasks-filtered", kListTasks, r);
    v1::ListTasksRequest label;
    label.set_label("x");
    label.set_assignee("al");
    Seed("list_tasks-label", kListTasks, label);
    v1::ListTasksRequest token;
    token.set_page_token("#1:0:1800000000000000:3");  // "#": base64 of the rest.
    Seed("list_tasks-token", kListTasks, token);
  }
  {
    v1::UpdateTaskRequest r;
    r.set_task_id("#0");
    r.set_title("renamed");
    r.set_priority(-3);
    r.mutable_labels()->add_values("z");
    Seed("update_task", kUpdateTask, r);
    r.set_expected_version(1);
    Seed("update_task-version", kUpdateTask, r);
    r.set_expected_version(0);
    r.set_task_id("#5");
    Seed("update_task-archived", kUpdateTask, r);
  }
  {
    struct {
      const char* name;
      const char* task;
      v1::Status to;
    } moves[] = {{"move_task-done", "#0", v1::DONE},
                 {"move_task-waiting", "#1", v1::READY},
                 {"move_task-stop_running", "#3", v1::BLOCKED},
                 {"move_task-reopen", "#4", v1::READY},
                 {"move_task-archived", "#5", v1::READY}};
    for (const auto& m : moves) {
      v1::MoveTaskRequest r;
      r.set_task_id(m.task);
      r.set_to_status(m.to);
      r.set_reason("seed");
      Seed(m.name, kMoveTask, r);
    }
  }
  {
    struct {
      const char* name;
      const char* parent;
      const char* child;
    } links[] = {{"link_tasks", "#2", "#0"},
                 {"link_tasks-cycle", "#1", "#0"},
                 {"link_tasks-self", "#0", "#0"},
                 {"link_tasks-boards", "#6", "#0"}};
    for (const auto& l : links) {
      v1::LinkTasksRequest r;
      r.set_parent_id(l.parent);
      r.set_child_id(l.child);
      Seed(l.name, kLinkTasks, r);
    }
    v1::UnlinkTasksRequest r;
    r.set_parent_id("#0");
    r.set_child_id("#1");
    Seed("unlink_tasks", kUnlinkTasks, r);
    r.set_parent_id("#3");
    r.set_child_id("#7");
    Seed("unlink_tasks-running_parent", kUnlinkTasks, r);
  }
  {
    v1::AddCommentRequest r;
    r.set_task_id("#0");
    r.set_author("me");
    r.set_body("looks good");
    Seed("add_comment", kAddComment, r);
    v1::ListCommentsRequest l;
    l.set_task_id("#0");
    Seed("list_comments", kListComments, l);
  }
  {
    v1::ClaimTaskRequest r;
    r.set_worker_id("w3");
    Seed("claim_task", kClaimTask, r);
    r.set_board("b1");
    r.mutable_lease_duration()->set_seconds(5);
    r.set_assignee("al");
    Seed("claim_task-b1", kClaimTask, r);
    v1::ClaimTaskRequest labels;
    labels.set_worker_id("w3");
    labels.add_labels("x");
    labels.mutable_wait()->set_nanos(-1);
    Seed("claim_task-bad_wait", kClaimTask, labels);
  }
  {
    v1::CompleteTaskRequest r;
    r.set_task_id("#");
    r.set_lease_token("#0");
    r.set_result("done");
    Seed("complete_task", kCompleteTask, r);
    r.set_lease_token("#1");
    Seed("complete_task-ended", kCompleteTask, r);
    v1::FailTaskRequest f;
    f.set_task_id("#");
    f.set_lease_token("#0");
    f.set_error("boom");
    f.set_retry(true);
    Seed("fail_task-retry", kFailTask, f);
    f.set_retry(false);
    Seed("fail_task", kFailTask, f);
    v1::ReleaseTaskRequest rel;
    rel.set_task_id("#");
    rel.set_lease_token("#0");
    Seed("release_task", kReleaseTask, rel);
  }
  {
    v1::HeartbeatRequest r;
    r.set_worker_id("#0");
    for (const char* token : {"#0", "#1", "#2"}) {
      v1::HeldLease* l = r.add_leases();
      l->set_task_id("#");
      l->set_lease_token(token);
    }
    Seed("heartbeat", kHeartbeat, r);
    v1::ListWorkersRequest w;
    Seed("list_workers", kListWorkers, w);
    w.set_board("b1");
    Seed("list_workers-b1", kListWorkers, w);
  }
  {
    v1::WatchEventsRequest r;
    r.set_after_seq(3);
    Seed("watch_events", kWatchEvents, r);
    r.set_from_now(true);
    Seed("watch_events-now", kWatchEvents, r);
    v1::WatchEventsRequest f;
    f.set_board("default");
    f.add_kinds("created");
    f.add_task_ids("#0");
    f.mutable_bookmark_interval()->set_seconds(1);
    Seed("watch_events-filter", kWatchEvents, f);
  }
  for (auto [name, seconds] :
       {std::pair{"tick-lease", 61}, std::pair{"tick-days", 8 * 86400},
        std::pair{"tick-backoff", 400}}) {
    google::protobuf::Duration d;
    d.set_seconds(seconds);
    Seed(name, kTick, d);
  }
}

void JsonSeeds() {
  JsonSeed("empty", "[]");
  JsonSeed("two", "[\"a\",\"b\"]");
  JsonSeed("escapes",
           "[ \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\" , \"\\u00e9\\ud83d\\ude00\" ]");
  JsonSeed("values", "label\xC0\xC3\xA9t\xC3\xA9\xC0\x01\x1f\"\\");
  JsonSeed("bad_surrogate", "[\"\\ud800\\u0041\"]");
}

}  // namespace
}  // namespace kanban::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR  (e.g. tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  kanban::fuzz::out_dir = argv[1];
  for (const char* target : {"/fuzz_requests", "/fuzz_json_text"}) {
    std::filesystem::create_directories(kanban::fuzz::out_dir + target);
  }
  kanban::fuzz::RequestSeeds();
  kanban::fuzz::JsonSeeds();
  return 0;
}
