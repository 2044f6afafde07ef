#!/usr/bin/env python3
"""Lists C++ functions longer than a limit, and source files longer than a limit.

A function is a brace-enclosed body, outside any other function, whose head ends in ")" (with
const, override, noexcept, annotations or a trailing return type after it); comments and
literals are skipped. Lambdas and blocks count toward the function that holds them. Test files
are left out of the function limit (a test reads best whole).

  scripts/function_lengths.py [--max_function N] [--max_file N] FILE...

Prints "FILE:LINE NAME: N lines" per function over the limit and "FILE: N lines" per file
over its limit; exits 1 when it printed anything.
"""
import argparse
import re
import sys

def strip(text):
    """Blanks comments and string and character literals, keeping line breaks."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            k = text.find("(", i)
            delimiter = ")" + text[i + 2:k] + '"'
            j = text.find(delimiter, k)
            j = n if j < 0 else j + len(delimiter)
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (min(j, n - 1) - i + 1))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


HEAD = re.compile(r"\)\s*(const\s*)?(override\s*)?(noexcept\s*)?(final\s*)?"
                  r"(ABSL_[A-Z_]+\([^()]*\)\s*)*(->\s*[\w:<>,\s*&]+)?$")
SCOPE = re.compile(r"\b(namespace|class|struct|union|enum)\b[^()]*$|extern\s*$")


def functions(text):
    """Yields (first line number, name, length in lines) for each function body outside
    another function."""
    code = strip(text)
    stack = []  # per open brace: "scope", "function" or "block"
    statement_start = 0
    starts = []
    for i, c in enumerate(code):
        if c == "{":
            head = code[statement_start:i].strip()
            inside_function = any(kind != "scope" for kind in stack)
            if inside_function:
                kind = "block"
            elif SCOPE.search(head) or head.endswith("=") or not head:
                kind = "scope"
            elif HEAD.search(head):
                kind = "function"
            else:
                kind = "block"
            stack.append(kind)
            starts.append((i, head))
            statement_start = i + 1
        elif c == "}":
            if not stack:
                continue
            kind = stack.pop()
            start, head = starts.pop()
            if kind == "function":
                first = code.count("\n", 0, start) + 1
                last = code.count("\n", 0, i) + 1
                name = head.split("(")[0].split()[-1] if "(" in head else head
                yield first, name, last - first + 1
            statement_start = i + 1
        elif c == ";":
            statement_start = i + 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_function", type=int, default=80)
    parser.add_argument("--max_file", type=int, default=800)
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    found = False
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        lines = text.splitlines()
        if len(lines) > args.max_file:
            print(f"{path}: {len(lines)} lines (more than {args.max_file})")
            found = True
        if path.endswith("_test.cc"):
            continue
        for start, name, length in functions(text):
            if length > args.max_function:
                print(f"{path}:{start} {name}: {length} lines (more than {args.max_function})")
                found = True
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
