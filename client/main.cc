// splitctl: the operator CLI of splitd (see `splitctl --help`).

#include <iostream>
#include <string>
#include <vector>

#include "client/splitctl_commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return splitd::cli::RunSplitctl(args, std::cout, std::cerr);
}
