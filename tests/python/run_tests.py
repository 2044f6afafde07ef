#!/usr/bin/env python3
"""Runs the *_test.py files in this directory with unittest and prints one line per test case
("ok NAME", "FAILED NAME", "skipped NAME: why") and, last, "N passed, M failed, K skipped", the
form scripts/test.sh counts. Exit code 0 when nothing failed."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class LineResult(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        print(f"ok {test.id()}", flush=True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        print(f"FAILED {test.id()}\n{self._exc_info_to_string(err, test)}", flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        # An error in setUpClass fails every test of the class: count the class's tests.
        print(f"FAILED {getattr(test, 'id', lambda: str(test))()}\n"
              f"{self._exc_info_to_string(err, test)}", flush=True)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        print(f"skipped {test.id()}: {reason}", flush=True)


def count(suite):
    return sum(count(t) if isinstance(t, unittest.TestSuite) else 1 for t in suite)


def main():
    names = sys.argv[1:] or sorted(f[:-3] for f in os.listdir(HERE) if f.endswith("_test.py"))
    sys.path.insert(0, HERE)
    suite = unittest.TestSuite()
    for name in names:
        suite.addTest(unittest.defaultTestLoader.loadTestsFromName(name))
    total = count(suite)  # before running: a run drops the cases it has finished
    result = LineResult()
    suite.run(result)
    # A failed setUpClass reports one error and runs none of the class's tests; those tests
    # count as failed, so a broken environment cannot shrink the totals.
    failed = total - result.passed - len(result.skipped)
    print(f"{result.passed} passed, {failed} failed, {len(result.skipped)} skipped")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
