// Status propagation helpers. Abseil 20220623 has no ABSL_RETURN_IF_ERROR,
// so kanban keeps these two small macros.
#ifndef KANBAN_STORAGE_STATUS_MACROS_H_
#define KANBAN_STORAGE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define KANBAN_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status kanban_status_ = (expr);          \
    if (!kanban_status_.ok()) return kanban_status_; \
  } while (false)

#define KANBAN_CONCAT_INNER_(a, b) a##b
#define KANBAN_CONCAT_(a, b) KANBAN_CONCAT_INNER_(a, b)

// `KANBAN_ASSIGN_OR_RETURN(T x, StatusOrExpr());` declares/assigns `x` from
// the value of an absl::StatusOr, or returns its status if it is not OK.
#define KANBAN_ASSIGN_OR_RETURN(lhs, expr) \
  KANBAN_ASSIGN_OR_RETURN_IMPL_(KANBAN_CONCAT_(kanban_statusor_, __LINE__), lhs, expr)

#define KANBAN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()

#endif  // KANBAN_STORAGE_STATUS_MACROS_H_
