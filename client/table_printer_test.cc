#include "client/table_printer.h"

#include "gtest/gtest.h"

namespace splitd::cli {
namespace {

TEST(TablePrinterTest, AlignsColumnsTwoSpacesApart) {
  TablePrinter table({"NAME", "WORLD", "STATE"});
  table.AddRow({"llama-serve", "8", "READY"});
  table.AddRow({"x", "1048576", "PENDING"});
  EXPECT_EQ(table.Render(),
            "NAME         WORLD    STATE\n"
            "llama-serve  8        READY\n"
            "x            1048576  PENDING\n");
}

TEST(TablePrinterTest, HeaderOnlyWhenNoRows) {
  TablePrinter table({"KIND", "GROUPS"});
  EXPECT_EQ(table.Render(), "KIND  GROUPS\n");
}

TEST(TablePrinterTest, IndentsEveryLineAndLeavesNoTrailingSpaces) {
  TablePrinter table({"RANK", "REASON"});
  table.AddRow({"0", ""});
  table.AddRow({"12", "lease expired"});
  EXPECT_EQ(table.Render("  "),
            "  RANK  REASON\n"
            "  0\n"
            "  12    lease expired\n");
}

TEST(TablePrinterTest, PadsMissingCellsAndDropsExtraOnes) {
  TablePrinter table({"A", "B"});
  table.AddRow({"1"});
  table.AddRow({"2", "3", "ignored"});
  EXPECT_EQ(table.Render(), "A  B\n1\n2  3\n");
}

TEST(TablePrinterTest, CountsUtf8CharactersNotBytes) {
  TablePrinter table({"N", "X"});
  table.AddRow({"é", "1"});
  table.AddRow({"ab", "2"});
  EXPECT_EQ(table.Render(), "N   X\né   1\nab  2\n");
}

}  // namespace
}  // namespace splitd::cli
