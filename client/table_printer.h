#ifndef SPLITD_CLIENT_TABLE_PRINTER_H_
#define SPLITD_CLIENT_TABLE_PRINTER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace splitd::cli {

// Lays out rows under upper-case headers in aligned columns, two spaces apart, like kubectl.
// The last column is not padded, so no line ends in spaces. Widths count UTF-8 characters.
// Not thread-safe; build, render, discard.
class TablePrinter {
 public:
  explicit TablePrinter(std::vector<std::string> headers);

  // Adds a row; missing cells are empty, extra cells are dropped.
  void AddRow(std::vector<std::string> cells);

  // The table, one line per row after the header line, each line starting with `indent`.
  std::string Render(absl::string_view indent = "") const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace splitd::cli

#endif  // SPLITD_CLIENT_TABLE_PRINTER_H_
