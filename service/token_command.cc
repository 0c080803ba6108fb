#include "service/token_command.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/auth.h"
#include "service/command_flags.h"
#include "storage/durability.h"
#include "storage/postgres/connection.h"
#include "storage/rules.h"
#include "storage/store.h"

namespace kanban::service {
namespace {

constexpr char kUsage[] =
    "usage: kanband token create --db=PATH --role=admin|producer|worker|viewer\n"
    "           [--name=NAME] [--board=B[,B...]]... [--worker-id=W]\n"
    "Makes a token in the database (kanband must be stopped) and prints its secret\n"
    "once. NAME defaults to the role. Running servers: kanbanctl token create.\n";

int Usage(const std::string& problem) {
  std::cerr << "kanband token: " << problem << "\n" << kUsage;
  return 2;
}

std::optional<storage::Role> ParseRole(absl::string_view name) {
  for (storage::Role role : {storage::Role::kAdmin, storage::Role::kProducer,
                             storage::Role::kWorker, storage::Role::kViewer}) {
    if (name == storage::RoleName(role)) return role;
  }
  return std::nullopt;
}

}  // namespace

int RunTokenCommand(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) != "create") {
    return Usage(argc < 2 ? "missing command"
                          : absl::StrCat("unknown command ", argv[1]));
  }
  std::string db, role_name, name;
  storage::TokenRecord token;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> flags =
      ParseCommandFlags(argc, argv, 2);
  if (!flags.ok()) return Usage(std::string(flags.status().message()));
  for (const auto& [flag, value] : *flags) {
    if (flag == "db") {
      db = value;
    } else if (flag == "role") {
      role_name = value;
    } else if (flag == "name") {
      name = value;
    } else if (flag == "board") {
      for (absl::string_view b : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        token.boards.emplace_back(b);
      }
    } else if (flag == "worker-id") {
      token.worker_id = value;
    } else {
      return Usage(absl::StrCat("unknown flag --", flag));
    }
  }
  if (db.empty()) return Usage("--db is required");
  std::optional<storage::Role> role = ParseRole(role_name);
  if (!role.has_value()) return Usage("--role must be admin, producer, worker or viewer");
  token.role = *role;
  token.name = name.empty() ? role_name : name;
  const std::string secret = Auth::NewSecret();
  token.secret_hash = Auth::HashSecret(secret);
  if (absl::Status s = storage::ValidateNewToken(token); !s.ok()) {
    return Usage(std::string(s.message()));
  }

  storage::Store::Options options;
  options.path = db;
  options.sweep_interval = absl::ZeroDuration();  // Change nothing else.
  absl::StatusOr<storage::DurabilitySettings> durability =
      storage::DurabilityFromEnvironment("");
  if (durability.ok()) options.durability = *durability;
  absl::StatusOr<std::unique_ptr<storage::Store>> store =
      storage::Store::Open(std::move(options));
  if (!store.ok()) {
    std::cerr << "kanband token: cannot open "
              << (storage::IsPostgresTarget(db) ? storage::RedactPostgresTarget(db) : db)
              << ": " << store.status().message()
              << (store.status().code() == absl::StatusCode::kFailedPrecondition
                      ? "\n(is kanband running on it? then use kanbanctl token create)"
                      : "")
              << "\n";
    return 1;
  }
  absl::StatusOr<storage::TokenRecord> created = storage::Await<storage::TokenRecord>(
      [&](auto done) { (*store)->CreateToken(token, done); });
  (*store)->Close();
  if (!created.ok()) {
    std::cerr << "kanband token: " << created.status().message() << "\n";
    return created.status().code() == absl::StatusCode::kAlreadyExists ? 2 : 1;
  }
  std::cout << secret << std::endl;
  std::cerr
      << "kanband token: created " << storage::RoleName(created->role) << " token \""
      << created->name << "\"; the secret above is shown only now. Send it as "
      << "\"authorization: Bearer <secret>\" (kanbanctl --token or KANBAN_TOKEN).\n";
  return 0;
}

}  // namespace kanban::service
