#!/usr/bin/python3
"""Validates rendered Kubernetes manifests offline, against the API's own object models.

The schema is the one Debian's python3-kubernetes (22.6, Kubernetes 1.22) was generated from: for
every object, apiVersion and kind must name a resource of that API group (it has a create call in
the group's API class), and every field, recursively, must exist in the model (by its JSON name)
with a value of the model's type; fields the model marks required must be present. Fields newer
than 1.22 that the manifests use are checked against SUPPLEMENT, copied from the Kubernetes API
reference and reported on every run. On top, a few checks the API server or kubelet would make
across objects: selectors match their pod templates, Services select pods and name their ports,
volumes, ConfigMaps and $(VAR) references exist, probes target a declared port.

Usage: check_manifests.py FILE...     rendered YAML (kubectl kustomize output), "-" for stdin
       check_manifests.py --self-test FILE
                                      breaks FILE's objects in known ways; each must be refused
Prints "ok <check>" / "FAILED <check>: <why>" lines; exits 1 when any failed.
"""

import copy
import os
import re
import sys

import yaml

try:
    import kubernetes.client as k8s
except ImportError:  # Debian's package lives in /usr/lib/python3/dist-packages.
    print("FAILED manifests: python3-kubernetes is missing (run with /usr/bin/python3 after "
          "scripts/setup.sh)")
    sys.exit(1)

# Fields added to the API after the models' version (1.22). Each entry: model -> JSON field ->
# type, and definitions of the new types (fields, required). From the Kubernetes API reference.
SUPPLEMENT = {
    "fields": {
        # Probe.grpc: gRPC health checking (alpha 1.23, GA 1.27).
        "V1Probe": {"grpc": "V1GRPCAction"},
    },
    "types": {
        # GRPCAction: port (int32, required), service (string, the grpc.health.v1 service name).
        "V1GRPCAction": {"fields": {"port": "int", "service": "str"}, "required": ["port"]},
    },
}
# Quantity fields: the models type them as strings; the API also takes numbers.
QUANTITY_FIELDS = {("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
                   ("V1EmptyDirVolumeSource", "sizeLimit")}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

_config = k8s.Configuration()
_config.client_side_validation = True
supplements_used = set()


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def resource_model(api_version, kind):
    """The model class of apiVersion/kind and whether it is namespaced, or an error string."""
    group, _, version = api_version.rpartition("/")
    version_part = version[:1].upper() + version[1:]
    group_part = "".join(p.capitalize() for p in group.replace(".k8s.io", "").split(".")) or "Core"
    api = getattr(k8s, f"{group_part}{version_part}Api", None)
    if api is None:
        return None, None, f"unknown apiVersion {api_version!r}"
    if hasattr(api, f"create_namespaced_{snake(kind)}"):
        namespaced = True
    elif hasattr(api, f"create_{snake(kind)}"):
        namespaced = False
    else:
        return None, None, f"{api_version} has no kind {kind!r}"
    model = getattr(k8s, f"{version_part}{kind}", None)
    if model is None:
        return None, None, f"no model for {api_version} {kind}"
    return model, namespaced, None


def model_fields(type_name):
    """JSON name -> (python name or None, type) and the required JSON names of a model."""
    if type_name in SUPPLEMENT["types"]:
        spec = SUPPLEMENT["types"][type_name]
        return {k: (None, t) for k, t in spec["fields"].items()}, set(spec["required"])
    cls = getattr(k8s, type_name)
    fields = {cls.attribute_map[py]: (py, t) for py, t in cls.openapi_types.items()}
    for json_name, t in SUPPLEMENT["fields"].get(type_name, {}).items():
        fields.setdefault(json_name, (None, t))
    required = set()
    probe = cls.__new__(cls)
    probe.local_vars_configuration = _config
    for json_name, (py, _) in fields.items():
        if py is None:
            continue
        try:
            setattr(probe, py, None)
        except ValueError:  # The generated setter refuses None: a required field.
            required.add(json_name)
    return fields, required


def check_value(value, type_name, path, errors, owner=None, field=None):
    if value is None:
        return
    if (owner, field) in QUANTITY_FIELDS and type_name.startswith("dict("):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map of quantities, got {type(value).__name__}")
            return
        for key, item in value.items():
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                errors.append(f"{path}.{key}: expected a quantity, got {item!r}")
        return
    if (owner, field) in QUANTITY_FIELDS and type_name == "str":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            errors.append(f"{path}: expected a quantity, got {value!r}")
        return
    if type_name == "object":
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check_value(item, type_name[5:-1], f"{path}[{i}]", errors)
        return
    if type_name.startswith("dict("):
        item_type = type_name[type_name.index(",") + 1:-1].strip()
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append(f"{path}: map key {key!r} is not a string")
            check_value(item, item_type, f"{path}.{key}", errors)
        return
    scalar = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str,
              "date": str}
    if type_name in scalar:
        bad_bool = type_name in ("int", "float") and isinstance(value, bool)
        if bad_bool or not isinstance(value, scalar[type_name]):
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    check_model(value, type_name, path, errors)


def check_model(value, type_name, path, errors):
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name}), got {type(value).__name__}")
        return
    fields, required = model_fields(type_name)
    for key, item in value.items():
        if key not in fields:
            errors.append(f"{path}.{key}: unknown field (not in {type_name})")
            continue
        py, field_type = fields[key]
        if py is None and type_name in SUPPLEMENT["fields"]:
            supplements_used.add(f"{type_name}.{key}")
        check_value(item, field_type, f"{path}.{key}", errors, type_name, key)
    for key in sorted(required):
        if value.get(key) is None:
            errors.append(f"{path}.{key}: required field missing")


def pod_templates(obj):
    """(path, pod template) pairs of a workload object."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [("spec.template", spec.get("template") or {})]
    if kind == "CronJob":
        return [("spec.jobTemplate.spec.template",
                 ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {})]
    if kind == "Pod":
        return [("", obj)]
    return []


def check_pod_spec(pod_path, pod_spec, claim_names, names, errors):
    prefix = f"{pod_path}.spec" if pod_path else "spec"
    volumes = {v.get("name"): v for v in pod_spec.get("volumes") or []}
    volumes.update({name: {} for name in claim_names})  # a StatefulSet's volumeClaimTemplates
    for name, volume in volumes.items():
        config_map = volume.get("configMap")
        if config_map and not config_map.get("optional") and \
                config_map.get("name") not in names.get("ConfigMap", set()):
            errors.append(f"{prefix}.volumes[{name}]: ConfigMap {config_map.get('name')!r} "
                          "is not among the rendered objects")
    seen = set()
    for group in ("initContainers", "containers"):
        for i, container in enumerate(pod_spec.get(group) or []):
            where = f"{prefix}.{group}[{i}]"
            name = container.get("name", "")
            if not DNS_LABEL.match(name):
                errors.append(f"{where}.name: {name!r} is not a DNS label")
            if name in seen:
                errors.append(f"{where}.name: duplicate container name {name!r}")
            seen.add(name)
            for mount in container.get("volumeMounts") or []:
                if mount.get("name") not in volumes:
                    errors.append(f"{where}.volumeMounts: no volume named {mount.get('name')!r}")
            env = {e.get("name") for e in container.get("env") or []}
            for word in (container.get("command") or []) + (container.get("args") or []):
                for var in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(word)):
                    if var not in env:
                        errors.append(f"{where}: $({var}) is not an env var of the container")
            ports = container.get("ports") or []
            numbers = {p.get("containerPort") for p in ports}
            port_names = {p.get("name") for p in ports if p.get("name")}
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(probe_name) or {}
                for action in ("grpc", "httpGet", "tcpSocket"):
                    port = (probe.get(action) or {}).get("port")
                    if port is not None and port not in numbers and port not in port_names:
                        errors.append(f"{where}.{probe_name}.{action}.port: {port!r} is not a "
                                      "declared container port")


def check_relations(objs, errors_of):
    names = {}
    for obj in objs:
        names.setdefault(obj.get("kind"), set()).add((obj.get("metadata") or {}).get("name"))
    pods = []  # (namespace, labels, containers) of every pod template
    for obj in objs:
        namespace = (obj.get("metadata") or {}).get("namespace")
        for path, template in pod_templates(obj):
            spec = template.get("spec") or {}
            labels = (template.get("metadata") or {}).get("labels") or {}
            pods.append((namespace, labels, spec.get("containers") or []))
            claims = [(c.get("metadata") or {}).get("name")
                      for c in (obj.get("spec") or {}).get("volumeClaimTemplates") or []]
            check_pod_spec(path, spec, claims, names, errors_of(obj))
            selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels")
            if obj.get("kind") != "Job" and path and selector is not None and \
                    any(labels.get(k) != v for k, v in selector.items()):
                errors_of(obj).append(f"spec.selector.matchLabels {selector} does not match "
                                      f"{path}.metadata.labels {labels}")
        if obj.get("kind") == "StatefulSet":
            service = (obj.get("spec") or {}).get("serviceName")
            if service not in names.get("Service", set()):
                errors_of(obj).append(f"spec.serviceName: no Service {service!r} rendered")
    for obj in objs:
        if obj.get("kind") != "Service":
            continue
        spec = obj.get("spec") or {}
        selector = spec.get("selector")
        if not selector:
            continue
        namespace = (obj.get("metadata") or {}).get("namespace")
        selected = [c for ns, labels, c in pods
                    if ns == namespace and all(labels.get(k) == v for k, v in selector.items())]
        if not selected:
            errors_of(obj).append(f"spec.selector {selector} selects no rendered pod template")
            continue
        port_names = {p.get("name") for cs in selected for c in cs for p in c.get("ports") or []}
        for i, port in enumerate(spec.get("ports") or []):
            target = port.get("targetPort")
            if isinstance(target, str) and target not in port_names:
                errors_of(obj).append(f"spec.ports[{i}].targetPort: no container port named "
                                      f"{target!r} in the selected pods")


def validate(objs):
    """Errors per object, keyed by "Kind/name" in document order."""
    results = {}
    def key_of(obj):
        return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
    for obj in objs:
        errors = results.setdefault(key_of(obj), [])
        if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
            errors.append("not an object with apiVersion and kind")
            continue
        model, namespaced, problem = resource_model(obj["apiVersion"], obj["kind"])
        if problem:
            errors.append(problem)
            continue
        check_model(obj, model.__name__, obj["kind"], errors)
        metadata = obj.get("metadata") or {}
        name = metadata.get("name") or ""
        pattern = DNS_LABEL if obj["kind"] in ("Service", "Namespace") else DNS_SUBDOMAIN
        if not pattern.match(name):
            errors.append(f"metadata.name: {name!r} is not a valid {obj['kind']} name")
        if not namespaced and metadata.get("namespace"):
            errors.append(f"metadata.namespace: {obj['kind']} is not namespaced")
    try:
        check_relations([o for o in objs if isinstance(o, dict)],
                        lambda obj: results.setdefault(key_of(obj), []))
    except (AttributeError, TypeError, KeyError) as error:
        # Only a value of the wrong shape gets here, and the schema check has reported it.
        results.setdefault("cross-object checks", []).append(
            f"stopped at a malformed value ({error})")
    return results


def load(path):
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def first(objs, kind):
    return next(o for o in objs if o.get("kind") == kind)


def container_of(objs, kind, index=0):
    return first(objs, kind)["spec"]["template"]["spec"]["containers"][index]


# Breakages the check must refuse: (name, mutation, text the error must contain).
BREAKAGES = [
    ("unknown-field", lambda o: container_of(o, "StatefulSet").update(imagePullPolicyy="Always"),
     "imagePullPolicyy: unknown field"),
    ("misplaced-field", lambda o: first(o, "StatefulSet")["spec"].update(containers=[]),
     "spec.containers: unknown field"),
    ("wrong-type", lambda o: first(o, "StatefulSet")["spec"].update(replicas="one"),
     "spec.replicas: expected int"),
    ("wrong-list-type", lambda o: container_of(o, "StatefulSet").update(args="--x"),
     ".args: expected a list"),
    ("required-missing", lambda o: container_of(o, "StatefulSet").pop("name"),
     ".name: required field missing"),
    ("required-missing-grpc-port",
     lambda o: container_of(o, "StatefulSet").update(readinessProbe={"grpc": {}}),
     "grpc.port: required field missing"),
    ("kind-not-in-group", lambda o: first(o, "StatefulSet").update(apiVersion="v1"),
     "v1 has no kind 'StatefulSet'"),
    ("unknown-api-version", lambda o: first(o, "Service").update(apiVersion="apps/v9"),
     "unknown apiVersion"),
    ("selector-mismatch",
     lambda o: first(o, "StatefulSet")["spec"]["selector"]["matchLabels"].update(x="y"),
     "does not match"),
    ("service-selects-nothing", lambda o: first(o, "Service")["spec"].update(selector={"a": "b"}),
     "selects no rendered pod template"),
    ("undefined-env-reference",
     lambda o: container_of(o, "StatefulSet").setdefault("args", []).append("--x=$(NOPE)"),
     "$(NOPE) is not an env var"),
    ("probe-port-undeclared",
     lambda o: container_of(o, "StatefulSet").update(livenessProbe={"grpc": {"port": 1}}),
     "is not a declared container port"),
    ("volume-missing",
     lambda o: next(x["spec"]["template"]["spec"] for x in o if x.get("kind") == "StatefulSet"
                    and x["spec"]["template"]["spec"].get("volumes")).pop("volumes"),
     "no volume named"),
    ("config-map-missing", lambda o: o.remove(first(o, "ConfigMap")),
     "is not among the rendered objects"),
    ("bad-name", lambda o: first(o, "Service")["metadata"].update(name="Bad_Name"),
     "is not a valid Service name"),
]


def self_test(path):
    good = load(path)
    failed = 0
    baseline = [k for k, errs in validate(copy.deepcopy(good)).items() if errs]
    if baseline:
        print(f"FAILED manifests-self-test: {path} is not valid to start with: {baseline}")
        return 1
    for name, mutate, expected in BREAKAGES:
        objs = copy.deepcopy(good)
        mutate(objs)
        found = [e for errs in validate(objs).values() for e in errs]
        if any(expected in e for e in found):
            print(f"ok manifests-self-test-{name}")
        else:
            print(f"FAILED manifests-self-test-{name}: expected an error containing "
                  f"{expected!r}, got {found}")
            failed = 1
    return failed


def main(argv):
    if len(argv) == 3 and argv[1] == "--self-test":
        return self_test(argv[2])
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    failed = 0
    for path in argv[1:]:
        label = os.path.basename(path)
        try:
            objs = load(path)
        except (OSError, yaml.YAMLError) as error:
            print(f"FAILED manifests {path}: {error}")
            failed = 1
            continue
        if not objs:
            print(f"FAILED manifests {path}: no objects")
            failed = 1
        for key, errors in validate(objs).items():
            if errors:
                failed = 1
                print(f"FAILED manifests {label} {key}:")
                for error in errors:
                    print(f"    {error}")
            else:
                print(f"ok manifests {label} {key}")
    for used in sorted(supplements_used):
        print(f"note: {used} is newer than the models (Kubernetes 1.22) and was checked against "
              "this script's SUPPLEMENT")
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv))
