"""One repository, @system, with a cc_library per Debian library, described through pkg-config."""

def _words(text):
    return [w for w in text.replace("\n", " ").split(" ") if w]

def _pkg_config(ctx, flag, modules):
    result = ctx.execute(["pkg-config", flag] + modules)
    if result.return_code != 0:
        fail("pkg-config %s %s failed (is the Debian -dev package installed? run scripts/setup.sh): %s" %
             (flag, " ".join(modules), result.stderr))
    return _words(result.stdout)

def _system_libraries_impl(ctx):
    rules = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, modules_text in ctx.attr.libraries.items():
        modules = _words(modules_text)
        defines = []
        linkopts = []
        if modules:
            for flag in _pkg_config(ctx, "--cflags", modules):
                if flag.startswith("-D"):
                    defines.append(flag[2:])
            linkopts = _pkg_config(ctx, "--libs", modules)
        linkopts = linkopts + _words(ctx.attr.extra_linkopts.get(name, ""))
        rules.append("cc_library(\n    name = %r,\n    defines = %r,\n    linkopts = %r,\n)\n" %
                     (name, defines, linkopts))
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", "\n".join(rules))

system_libraries = repository_rule(
    implementation = _system_libraries_impl,
    attrs = {
        "libraries": attr.string_dict(doc = "target name -> space-separated pkg-config modules"),
        "extra_linkopts": attr.string_dict(doc = "target name -> linker flags pkg-config does not give"),
    },
    local = True,
    doc = "Describes Debian's system libraries once, as @system//:NAME cc_library targets.",
)
