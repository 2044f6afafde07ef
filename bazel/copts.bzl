"""Compiler options shared by every target of our own."""

SPLITD_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror=return-type",
]
