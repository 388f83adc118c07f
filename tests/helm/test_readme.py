"""README's "Install with Helm" section works as written: its helm commands
run (as client-side dry runs, no cluster) with its values file, the objects
its kubectl commands name exist, its paths exist, and every value in its
table is a real value of the chart."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from conftest import CHART, ROOT

SECTION = "## Install with Helm"


def section() -> str:
    text = (ROOT / "README.md").read_text()
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    body = text.split(SECTION, 1)[1]
    end = re.search(r"^## ", body, re.MULTILINE)
    return body[: end.start()] if end else body


def blocks(lang: str) -> list[str]:
    return [m[1] for m in re.finditer(rf"^\s*```{lang}\n(.*?)^\s*```", section(), re.MULTILINE | re.DOTALL)]


def commands() -> list[list[str]]:
    out = []
    for block in blocks("sh"):
        block = re.sub(r"\\\n\s*", " ", block)
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            argv = shlex.split(line, comments=True)
            if argv and argv[-1] == "&":
                argv = argv[:-1]
            out.append(argv)
    return out


def values_block() -> str:
    found = [b for b in blocks("yaml") if b.startswith("# my-values.yaml")]
    assert len(found) == 1, "one ```yaml block starting with '# my-values.yaml'"
    return found[0]


def dry_run(helm, argv: list[str], values_path: str) -> list[dict]:
    """A README helm install/upgrade command as `helm install --dry-run=client`."""
    args = [values_path if a == "my-values.yaml" else a for a in argv[1:]]
    if args[0] == "upgrade":
        args = ["install"] + [a for a in args[1:] if a != "--install"]
    proc = helm.run(*args, "--dry-run=client")
    manifest = proc.stdout.split("MANIFEST:", 1)[1].split("\nNOTES:", 1)[0]
    return [d for d in yaml.safe_load_all(manifest) if d]


def test_helm_commands_work_as_written(helm, tmp_path):
    values_path = tmp_path / "my-values.yaml"
    values_path.write_text(values_block())
    helm_cmds = [c for c in commands() if c[0] == "helm"]
    subcommands = {c[1] for c in helm_cmds}
    assert {"install", "upgrade", "uninstall"} <= subcommands, subcommands
    objects = set()
    for argv in helm_cmds:
        if argv[1] in ("install", "upgrade"):
            docs = dry_run(helm, argv, str(values_path))
            objects |= {(d["kind"].lower(), d["metadata"]["name"]) for d in docs}
        elif argv[1] == "show":
            helm.run(*argv[1:])
    # Objects the kubectl commands name (deployment/x, service/x) exist.
    for argv in commands():
        if argv[0] != "kubectl":
            continue
        for a in argv:
            m = re.fullmatch(r"(deployment|service)/([-a-z0-9]+)", a)
            if m:
                assert (m[1], m[2]) in objects, f"{a} is not rendered by the README's install"


def test_values_file_is_valid(helm, tmp_path):
    values_path = tmp_path / "my-values.yaml"
    values_path.write_text(values_block())
    helm.run("lint", "--strict", str(CHART), "-f", str(values_path))


def test_paths_exist():
    for argv in commands():
        for a in argv:
            if re.match(r"^(charts|crds|examples)/", a):
                assert (ROOT / a).exists(), a


def _lookup(values: dict, dotted: str):
    node = values
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"{dotted} is not a chart value"
        node = node[part]
    return node


def test_values_table_names_real_values():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = re.findall(r"^\| (`[^|]+) \|", section(), re.MULTILINE)
    assert len(rows) >= 10, rows
    names = {n for row in rows for n in re.findall(r"`([A-Za-z][\w.]*)`", row)}
    for name in names:
        _lookup(values, name)
    for must in ["replicaCount", "watchNamespaces", "image.repository", "serviceMonitor.enabled",
                 "prometheusRule.enabled", "operator.logFormat", "membership.leasePrefix",
                 "membership.leaseDuration", "peerToken.existingSecret", "podDisruptionBudget.enabled"]:
        assert must in names, f"README values table misses {must}"


def test_values_table_defaults_match_values_yaml():
    """Where a row lists one default per value it names (in order), each is
    what values.yaml has."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    checked = 0
    for names_cell, default_cell in re.findall(r"^\| (`[^|]+) \| ([^|]*) \|", section(), re.MULTILINE):
        names = re.findall(r"`([A-Za-z][\w.]*)`", names_cell)
        defaults = re.findall(r"`([^`]*)`", default_cell)
        if not names or len(defaults) != len(names):
            continue
        for name, default in zip(names, defaults):
            want = _lookup(values, name)
            if isinstance(want, (dict, list)):
                continue
            assert yaml.safe_load(default) == want or default == f'"{want}"', (name, default, want)
            checked += 1
    assert checked >= 15, f"only {checked} defaults compared"


@pytest.mark.parametrize("phrase", [
    "first install only",
    "kubectl apply --server-side --force-conflicts -f charts/crypto-operator/crds/cryptoclient.yaml",
    "helm uninstall",
    "kubectl delete crd cryptoclients.crypto.fleet.dev",
])
def test_crd_lifecycle_is_explained(phrase):
    assert phrase in section()
