"""The C++ rules of our own code, in the shape most of them share.

A library `x` is built from x.cc with x.h as its header, a test or binary `x` from x.cc, all with
SPLITD_COPTS, and a test gets gtest's main. Rules that differ pass srcs, hdrs, copts or test_main
explicitly; every other attribute (visibility, testonly, size, tags, data, linkopts, args, ...)
goes through to the native rule as it is.
"""

load("//bazel:copts.bzl", "SPLITD_COPTS")

def splitd_cc_library(name, deps = [], srcs = None, hdrs = None, copts = SPLITD_COPTS, **kwargs):
    """A cc_library `name` built from `name`.cc with the header `name`.h.

    Args:
      name: the library, and the stem of its source and header.
      deps: its dependencies.
      srcs: its sources, when not [name + ".cc"] (pass [] for a header-only library).
      hdrs: its headers, when not [name + ".h"].
      copts: its compiler options.
      **kwargs: any other cc_library attribute.
    """
    native.cc_library(
        name = name,
        srcs = [name + ".cc"] if srcs == None else srcs,
        hdrs = [name + ".h"] if hdrs == None else hdrs,
        copts = copts,
        deps = deps,
        **kwargs
    )

def splitd_cc_test(
        name,
        deps = [],
        srcs = None,
        copts = SPLITD_COPTS,
        test_main = "@system//:gtest_main",
        **kwargs):
    """A cc_test `name` built from `name`.cc, linked with gtest's main.

    Args:
      name: the test, and the stem of its source.
      deps: its dependencies, beyond test_main.
      srcs: its sources, when not [name + ".cc"].
      copts: its compiler options.
      test_main: the library that provides main(), added to deps; None when the test's own
        sources or deps provide it.
      **kwargs: any other cc_test attribute.
    """
    native.cc_test(
        name = name,
        srcs = [name + ".cc"] if srcs == None else srcs,
        copts = copts,
        deps = deps + ([test_main] if test_main else []),
        **kwargs
    )

def splitd_cc_binary(name, deps = [], srcs = None, copts = SPLITD_COPTS, **kwargs):
    """A cc_binary `name` built from `name`.cc.

    Args:
      name: the binary, and the stem of its source.
      deps: its dependencies.
      srcs: its sources, when not [name + ".cc"].
      copts: its compiler options.
      **kwargs: any other cc_binary attribute.
    """
    native.cc_binary(
        name = name,
        srcs = [name + ".cc"] if srcs == None else srcs,
        copts = copts,
        deps = deps,
        **kwargs
    )
