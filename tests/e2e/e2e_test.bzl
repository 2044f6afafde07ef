"""cc_test rules for the end-to-end tests: one .cc file driving the real binaries."""

load("//bazel:copts.bzl", "SPLITD_COPTS")

# The binaries most end-to-end tests start.
SPLITD_BINARIES = [
    "//client:splitctl",
    "//daemon:splitd",
    "//worker:splitd-agent",
]

def splitd_e2e_test(name, size, binaries = SPLITD_BINARIES, data = [], deps = []):
    """A cc_test `name` built from `name`.cc with the process helpers of //tests/testing.

    Args:
      name: the test, and the stem of its only source file.
      size: the test's size.
      binaries: the splitd binaries it starts, in its runfiles.
      data: other runfiles.
      deps: libraries beyond the common ones.
    """
    native.cc_test(
        name = name,
        size = size,
        srcs = [name + ".cc"],
        copts = SPLITD_COPTS,
        data = binaries + data,
        deps = deps + [
            "//common:status_matchers",
            "//tests/testing:splitd_processes",
            "//tests/testing:subprocess",
            "@system//:absl",
            "@system//:gtest_main",
        ],
    )
