"""C++ message and gRPC code from .proto files, with Debian's protoc and grpc_cpp_plugin."""

def cc_proto_grpc_library(name, srcs, import_root, grpc = True, headers_only = False, deps = [],
                          imports = [], **kwargs):
    """Generates C++ code for `srcs` and wraps it in a cc_library named `name`.

    Args:
      name: the cc_library.
      srcs: .proto labels; their paths below `import_root` are their import paths.
      import_root: directory (as Bazel sees it: "proto", "external/grpc_proto") the
        imports are relative to.
      grpc: also run grpc_cpp_plugin for the services.
      headers_only: compile none of the generated code, because a system library already
        holds it (linking it twice aborts protobuf's descriptor registration).
      deps: cc_library targets of imported .proto files.
      imports: the imported .proto files themselves, so that protoc finds them in the sandbox.
      **kwargs: passed to the cc_library (visibility, ...).
    """
    relative = []
    for src in srcs:
        path = src.split(":")[-1]
        if not path.endswith(".proto"):
            fail("%s: %s is not a .proto file" % (name, src))
        relative.append(path[:-len(".proto")])

    hdrs = [p + ".pb.h" for p in relative]
    cc_srcs = [p + ".pb.cc" for p in relative]
    if grpc:
        hdrs += [p + ".grpc.pb.h" for p in relative]
        cc_srcs += [p + ".grpc.pb.cc" for p in relative]

    grpc_flags = ""
    if grpc:
        grpc_flags = "--grpc_out=$(@D) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin"
    native.genrule(
        name = name + "_codegen",
        srcs = srcs + imports,
        outs = hdrs + cc_srcs,
        cmd = ("protoc -I%s -Iproto -Iexternal/grpc_proto -I/usr/include --cpp_out=$(@D) %s %s" %
               (import_root, grpc_flags, " ".join(["$(location %s)" % src for src in srcs]))),
    )
    native.cc_library(
        name = name,
        srcs = [] if headers_only else cc_srcs,
        hdrs = hdrs,
        includes = ["."],
        deps = deps + ["@system//:grpc"],
        **kwargs
    )
