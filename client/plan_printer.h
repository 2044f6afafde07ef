#ifndef SPLITD_CLIENT_PLAN_PRINTER_H_
#define SPLITD_CLIENT_PLAN_PRINTER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "splitd/v1/plan.pb.h"

namespace splitd::cli {

// Renders a plan from GetPlan for `splitctl plan`. The JSON and YAML forms are written
// directly, without building a document tree, because a plan of 1M ranks holds millions of
// numbers. Stateless.
class PlanPrinter {
 public:
  // Exactly one JSON object, keys in this order, kinds in plan order:
  // {"cluster": str, "epoch": int, "fingerprint": str, "groups": {KIND: [[rank, ...], ...]}}.
  static std::string Json(const v1::Plan& plan);

  // The same object as YAML.
  static std::string Yaml(const v1::Plan& plan);

  // A summary line, then per kind a header line (`KIND tp  backend cpu:gloo  groups 4 x 2 ...`)
  // and its groups (`[0, 1]  [2, 3]`) in aligned columns wrapped to `width` characters.
  // `rank` is the --rank the plan was asked for, if any.
  static std::string Table(const v1::Plan& plan, std::optional<int64_t> rank, int width = 80);
};

}  // namespace splitd::cli

#endif  // SPLITD_CLIENT_PLAN_PRINTER_H_
