"""The Helm chart (charts/crypto-operator), checked with a real Helm v4 CLI:
lint, schema, rendering under several value sets, every rendered document
validated (kubernetes-validate, strict, Kubernetes 1.33), and assertions on
what the operator needs (RBAC, probes, security, ports, flags, replica
membership, the peer token). The rendered `serve` arguments and environment
are also parsed by the real binary (target/debug/crypto-operator)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tomllib

import jsonschema
import pytest
import yaml

from conftest import CHART, NAMESPACE, RELEASE, ROOT, KUBE_VERSION, Helm, values_file
from fake_api import FakeApi
from monitoring_schemas import SCHEMAS as MONITORING_SCHEMAS

FULLNAME = f"{RELEASE}-crypto-operator"

SCENARIOS = {
    "default": [],
    "monitoring": ["monitoring.yaml"],
    "ha-namespaced": ["ha-namespaced.yaml"],
    "everything": ["everything.yaml"],
}

# The operator's API calls (src/controller/): exactly these rules, no more.
CLIENT_RULES = [
    {"apiGroups": ["crypto.fleet.dev"], "resources": ["cryptoclients"],
     "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["crypto.fleet.dev"], "resources": ["cryptoclients/status"],
     "verbs": ["get", "patch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
]


# Every replica's Leases (src/controller/membership.rs, janitor.rs): its own
# <prefix>-replica-<pod> (create, renew, delete on a graceful stop), its
# peers' (list/watch by label selector) and <prefix>-janitor. Pod names are
# not known in advance, so no resourceNames.
LEASE_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "verbs": ["get", "list", "watch", "create", "update", "delete"]},
]
PEER_SECRET = f"{FULLNAME}-peer-token"
PEER_DIR = "/etc/crypto-operator/peer-token"
# The membership flags the chart always passes, with the chart's defaults.
MEMBERSHIP_DEFAULTS = {
    "--lease-prefix": FULLNAME,
    "--lease-duration": "15s",
    "--holder-grace": "10s",
    "--min-hold": "5s",
    "--api-write-qps": "100",
    "--api-write-burst": "500",
}
# Flags, values and objects of the leader-election design, gone with it
# (patterns; --lease-name must not match --lease-namespace).
GONE = [r"--leader-elect", r"--lease-name(?![-\w])", r"--identity", r"leaderElect", r"leaseName",
        r"(?i)leader[- ]election"]
# ... and what only the rendered manifests had.
GONE_RENDERED = [*GONE, r"maxUnavailable: 100%", r"\bRecreate\b"]


def _args(files: list[str]) -> list[str]:
    out = []
    for f in files:
        out += ["-f", values_file(f)]
    return out


@pytest.fixture(scope="session")
def rendered(helm) -> dict[str, list[dict]]:
    """Each scenario rendered once, CRDs included."""
    return {name: helm.render("--include-crds", *_args(files)) for name, files in SCENARIOS.items()}


def find(docs, kind, name=None, namespace=None) -> list[dict]:
    return [
        d for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]


def one(docs, kind, name=None, namespace=None) -> dict:
    found = find(docs, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name or ''} in {namespace or 'any namespace'}, got {len(found)}"
    return found[0]


def container(docs) -> dict:
    dep = one(docs, "Deployment")
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container running crypto-operator serve"
    return containers[0]


def duration_seconds(s: str) -> float:
    m = re.fullmatch(r"([0-9]+)(ms|s|m|h)", s)
    assert m, s
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m[2]]


def flag_values(args: list[str], flag: str) -> list[str]:
    return [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]


def serve_flags() -> set[str]:
    """Every long flag `crypto-operator serve` accepts, read from the clap
    definitions in src/cli (field name in kebab case, or `long = "..."`)."""
    flags = set()
    for path in ["src/cli/serve.rs", "src/cli/mod.rs"]:
        text = (ROOT / path).read_text()
        for m in re.finditer(r"#\[arg\(([^\]]*)\)\]\s*(?:///[^\n]*\s*)*pub (\w+):", text):
            attrs, field = m[1], m[2]
            if not re.search(r"\blong\b", attrs):
                continue
            explicit = re.search(r'long\s*=\s*"([^"]+)"', attrs)
            flags.add("--" + (explicit[1] if explicit else field.replace("_", "-")))
    return flags


def operator_binary() -> str:
    """The operator binary whose `serve` parses the rendered arguments:
    $CRYPTO_OPERATOR_BIN, else target/debug/crypto-operator (tests/run.sh
    builds it before this suite)."""
    path = os.environ.get("CRYPTO_OPERATOR_BIN") or str(ROOT / "target" / "debug" / "crypto-operator")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: cargo build --bin crypto-operator (or set CRYPTO_OPERATOR_BIN)",
                    pytrace=False)
    return path


def help_flags(binary: str) -> set[str]:
    out = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True, timeout=60, check=True).stdout
    return set(re.findall(r"^\s+(?:-\w, )?(--[a-z][-a-z0-9]*)", out, re.MULTILINE)) - {"--help"}


def env_of(c: dict) -> dict[str, dict]:
    env = {}
    for e in c["env"]:
        assert e["name"] not in env, f"{e['name']} is set twice"
        env[e["name"]] = e
    return env


def membership_flags(args: list[str]) -> dict[str, str]:
    out = {}
    for flag in MEMBERSHIP_DEFAULTS:
        values = flag_values(args, flag)
        assert len(values) == 1, f"{flag} passed {len(values)} times: {args}"
        out[flag] = values[0]
    return out


def peer_token_volume(docs) -> tuple[dict, dict, str]:
    """(the volume, its mount, CRYPTO_PEER_TOKEN_FILE) of the operator pod."""
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    c = container(docs)
    (volume,) = [v for v in pod["volumes"] if v["name"] == "peer-token"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "peer-token"]
    return volume, mount, env_of(c)["CRYPTO_PEER_TOKEN_FILE"]["value"]


# ---------------------------------------------------------------- the tools


def test_helm_is_v4(helm):
    version = helm.run("version", "--template", "{{.Version}}").stdout.strip()
    assert version.startswith("v4."), version


# ---------------------------------------------------------------- chart metadata


def test_app_version_is_the_crate_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert chart["apiVersion"] == "v2"
    assert str(chart["appVersion"]) == cargo["package"]["version"]


def test_chart_crd_is_the_repository_crd():
    chart_crd = CHART / "crds" / "cryptoclient.yaml"
    repo_crd = ROOT / "crds" / "cryptoclient.yaml"
    assert chart_crd.read_bytes() == repo_crd.read_bytes(), (
        "charts/crypto-operator/crds/cryptoclient.yaml differs from crds/cryptoclient.yaml: "
        "cp crds/cryptoclient.yaml charts/crypto-operator/crds/"
    )
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == ["cryptoclient.yaml"]


def test_values_yaml_is_commented():
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        if not re.match(r"^[A-Za-z]\w*:", line):
            continue
        before = next((l for l in reversed(lines[:i]) if l.strip()), "")
        after = lines[i + 1] if i + 1 < len(lines) else ""
        if not before.lstrip().startswith("#") and not after.lstrip().startswith("#"):
            undocumented.append(line.split(":")[0])
    assert not undocumented, f"values without a comment: {undocumented}"


# ---------------------------------------------------------------- lint and schema


def test_lint_strict(helm):
    helm.run("lint", "--strict", str(CHART))


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if SCENARIOS[s]])
def test_lint_strict_with_values(helm, scenario):
    helm.run("lint", "--strict", str(CHART), *_args(SCENARIOS[scenario]))


@pytest.mark.parametrize("bad, message", [
    ("wrong-type.yaml", "replicaCount"),
    ("unknown-key.yaml", "replicas"),
    ("bad-enum.yaml", "logFormat"),
    ("bad-duration.yaml", "ackTimeout"),
    ("bad-lease-duration.yaml", "at '/membership/leaseDuration': '1.5s' does not match pattern"),
    ("bad-lease-prefix.yaml", "at '/membership/leasePrefix': 'Crypto_Fleet' does not match pattern"),
    ("bad-write-qps.yaml", "at '/membership/apiWriteQps'"),
    ("bad-write-burst.yaml", "at '/membership/apiWriteBurst'"),
    ("bad-pdb.yaml", "at '/podDisruptionBudget/maxUnavailable'"),
    ("bad-peer-token.yaml", "at '/peerToken/existingSecret'"),
    ("unknown-membership-key.yaml", "additional properties 'leaseName' not allowed"),
    ("old-leader-election.yaml", "additional properties 'leaderElection' not allowed"),
])
def test_schema_rejects_bad_values(helm, bad, message):
    proc = helm.template("-f", values_file(bad), check=False)
    assert proc.returncode != 0, f"{bad} rendered but must fail the schema"
    assert message in proc.stderr, proc.stderr
    lint = helm.run("lint", "--strict", str(CHART), "-f", values_file(bad), check=False)
    assert lint.returncode != 0, f"helm lint accepted {bad}"


@pytest.mark.parametrize("sets, message", [
    (["operator.drainGrace=30s"], "terminationGracePeriodSeconds"),
    (["terminationGracePeriodSeconds=10"], "terminationGracePeriodSeconds"),
    (["tls.enabled=true"], "tls.secretName"),
    (["adminToken.enabled=true"], "adminToken.secretName"),
])
def test_inconsistent_values_fail(helm, sets, message):
    args = [a for s in sets for a in ("--set", s)]
    proc = helm.template(*args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_document_validates(rendered, kube_validate, scenario):
    docs = rendered[scenario]
    assert docs
    errors = []
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            if key in MONITORING_SCHEMAS:
                jsonschema.Draft7Validator(MONITORING_SCHEMAS[key]).validate(doc)
            else:
                kube_validate.validate(doc, KUBE_VERSION, strict=True)
        except jsonschema.ValidationError as e:
            path = ".".join(str(p) for p in e.absolute_path)
            errors.append(f"{where}: {path}: {e.message}")
        except kube_validate.SchemaNotFoundError as e:
            errors.append(f"{where}: {e.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_namespaced_objects_are_in_the_release_namespace(rendered, scenario):
    watched = yaml.safe_load(open(values_file(SCENARIOS[scenario][0]))).get("watchNamespaces", []) \
        if SCENARIOS[scenario] else []
    for doc in rendered[scenario]:
        kind, meta = doc["kind"], doc["metadata"]
        if kind in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"):
            assert "namespace" not in meta
        elif kind in ("Role", "RoleBinding") and not meta["name"].endswith("-leases"):
            assert meta["namespace"] in watched
        else:
            assert meta.get("namespace") == NAMESPACE, f"{kind}/{meta['name']}"


def test_include_crds_renders_the_crd(helm, rendered):
    repo_crd = yaml.safe_load((ROOT / "crds" / "cryptoclient.yaml").read_text())
    assert one(rendered["default"], "CustomResourceDefinition") == repo_crd
    without = helm.render()
    assert not find(without, "CustomResourceDefinition"), "the CRD belongs in crds/, not templates/"


# ---------------------------------------------------------------- RBAC


def lease_role_and_binding(docs, fullname=FULLNAME, sa=FULLNAME) -> None:
    """The Lease rights: exactly LEASE_RULES, in the release namespace, bound
    to the operator's ServiceAccount."""
    role = one(docs, "Role", f"{fullname}-leases", NAMESPACE)
    assert role["rules"] == LEASE_RULES
    binding = one(docs, "RoleBinding", f"{fullname}-leases", NAMESPACE)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": f"{fullname}-leases"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]


def test_rbac_default_is_cluster_wide_and_minimal(rendered):
    docs = rendered["default"]
    role = one(docs, "ClusterRole", FULLNAME)
    assert role["rules"] == CLIENT_RULES
    binding = one(docs, "ClusterRoleBinding", FULLNAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    # Even one replica keeps a Lease: the Lease Role is there, and only it.
    lease_role_and_binding(docs)
    assert len(find(docs, "Role")) == 1 and len(find(docs, "RoleBinding")) == 1
    assert sorted(d["kind"] for d in docs) == sorted([
        "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Deployment", "Role", "RoleBinding",
        "Secret", "Service", "ServiceAccount",
    ])


def test_rbac_namespaced_with_several_replicas(rendered):
    docs = rendered["ha-namespaced"]
    assert not find(docs, "ClusterRole") and not find(docs, "ClusterRoleBinding"), \
        "watching listed namespaces needs no cluster-wide rights"
    for ns in ["team-a", "team-b"]:
        role = one(docs, "Role", FULLNAME, ns)
        assert role["rules"] == CLIENT_RULES
        binding = one(docs, "RoleBinding", FULLNAME, ns)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FULLNAME}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    lease_role_and_binding(docs)
    assert len(find(docs, "Role")) == 3 and len(find(docs, "RoleBinding")) == 3


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_lease_rights_in_every_scenario(rendered, scenario):
    docs = rendered[scenario]
    fullname = one(docs, "Deployment")["metadata"]["name"]
    sa = one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    lease_role_and_binding(docs, fullname, sa)
    lease_rules = [r for d in docs if d["kind"] in ("Role", "ClusterRole")
                   for r in d["rules"] if "leases" in r["resources"]]
    assert lease_rules == LEASE_RULES, "the Lease rights come from one Role only"


def test_rbac_create_false_renders_no_rbac(helm):
    docs = helm.render("--set", "rbac.create=false", "--set", "replicaCount=3")
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}, kinds


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_rights_beyond_the_listed_ones(rendered, scenario):
    allowed = {
        ("crypto.fleet.dev", "cryptoclients"): {"get", "list", "watch", "patch"},
        ("crypto.fleet.dev", "cryptoclients/status"): {"get", "patch"},
        ("events.k8s.io", "events"): {"create", "patch"},
        ("", "secrets"): {"get"},
        ("coordination.k8s.io", "leases"): {"get", "list", "watch", "create", "update", "delete"},
    }
    for doc in rendered[scenario]:
        for rule in doc.get("rules", []) if doc["kind"] in ("Role", "ClusterRole") else []:
            assert "*" not in rule["verbs"] and "nonResourceURLs" not in rule
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    assert set(rule["verbs"]) <= allowed.get((group, res), set()), (group, res, rule["verbs"])
                    if res == "leases":
                        assert doc["kind"] == "Role", "Lease rights are never cluster-wide"
                        assert doc["metadata"]["namespace"] == NAMESPACE, "the Leases live in the release namespace"


# ---------------------------------------------------------------- Deployment


def test_deployment_defaults(rendered):
    docs = rendered["default"]
    dep = one(docs, "Deployment", FULLNAME)
    pod = dep["spec"]["template"]["spec"]
    c = container(docs)
    assert dep["spec"]["replicas"] == 1
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert c["image"] == f"crypto-operator:{chart['appVersion']}"
    assert "command" not in c, "the image's entrypoint is the binary"
    args = c["args"]
    assert args[0] == "serve"
    assert not flag_values(args, "--namespace")
    assert flag_values(args, "--grpc-addr") == ["0.0.0.0:50051"]
    assert flag_values(args, "--http-addr") == ["0.0.0.0:8080"]
    assert flag_values(args, "--log-format") == ["json"]
    assert flag_values(args, "--drain-grace") == ["10s"]
    assert membership_flags(args) == MEMBERSHIP_DEFAULTS
    # Left to their defaults, which the environment below feeds.
    for flag in ["--replica-id", "--advertise-addr", "--lease-namespace", "--peer-token", "--peer-token-file"]:
        assert not flag_values(args, flag) and flag not in args, flag
    assert pod["serviceAccountName"] == FULLNAME
    one(docs, "ServiceAccount", FULLNAME, NAMESPACE)
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    # Only the peer token is mounted by default.
    assert [v["name"] for v in pod["volumes"]] == ["peer-token"]
    assert [m["name"] for m in c["volumeMounts"]] == ["peer-token"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_downward_api_env(rendered, scenario):
    """The defaults of --replica-id ($POD_NAME), --lease-namespace
    ($POD_NAMESPACE) and --advertise-addr ($POD_IP) come from the pod."""
    env = env_of(container(rendered[scenario]))
    for name, field in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"),
                        ("POD_IP", "status.podIP")]:
        assert env[name] == {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}}, env.get(name)


def test_peer_token_secret_made_by_the_chart(rendered):
    for scenario in ["default", "ha-namespaced"]:
        docs = rendered[scenario]
        secret = one(docs, "Secret", PEER_SECRET, NAMESPACE)
        assert secret["type"] == "Opaque"
        assert set(secret["data"]) == {"token"} and "stringData" not in secret
        token = base64.b64decode(secret["data"]["token"], validate=True).decode()
        assert re.fullmatch(r"[A-Za-z0-9]{32}", token), token
        assert secret["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        volume, mount, path = peer_token_volume(docs)
        assert volume["secret"] == {"secretName": PEER_SECRET, "defaultMode": 0o440,
                                    "items": [{"key": "token", "path": "token"}]}
        assert mount == {"name": "peer-token", "mountPath": PEER_DIR, "readOnly": True}
        assert path == f"{PEER_DIR}/token"
        assert len(find(docs, "Secret")) == 1, "the peer token is the only Secret the chart makes"


def test_peer_token_is_random_without_a_cluster(helm):
    tokens = {one(helm.render(), "Secret", PEER_SECRET)["data"]["token"] for _ in range(2)}
    assert len(tokens) == 2, "a fresh install gets a random token, not a fixed one"


def test_peer_token_from_an_existing_secret(rendered):
    docs = rendered["everything"]
    assert not find(docs, "Secret"), "with peerToken.existingSecret the chart makes no Secret"
    volume, mount, path = peer_token_volume(docs)
    assert volume["secret"] == {"secretName": "crypto-peer", "defaultMode": 0o440,
                                "items": [{"key": "peer-token", "path": "peer-token"}]}
    assert mount == {"name": "peer-token", "mountPath": PEER_DIR, "readOnly": True}
    assert path == f"{PEER_DIR}/peer-token"


@pytest.fixture
def helm_against(helm, tmp_path):
    """Helm run against a FakeApi holding `secrets` (an earlier install)."""
    def run(secrets: dict[tuple[str, str], dict[str, str]], *args: str) -> tuple[list[dict], FakeApi]:
        with FakeApi(RELEASE, secrets) as api:
            h = Helm(helm.binary, {**helm.env, "KUBECONFIG": str(api.kubeconfig(tmp_path))})
            docs = h.render("--dry-run=server", "--disable-openapi-validation", *args)
        return docs, api
    return run


def test_peer_token_is_kept_across_upgrades(helm_against):
    kept = base64.b64encode(b"k" * 32).decode()
    docs, api = helm_against({(NAMESPACE, PEER_SECRET): {"token": kept}})
    assert f"/api/v1/namespaces/{NAMESPACE}/secrets/{PEER_SECRET}" in api.requests, api.requests
    assert one(docs, "Secret", PEER_SECRET, NAMESPACE)["data"] == {"token": kept}


def test_peer_token_is_new_when_the_cluster_has_none(helm_against):
    # A Secret of another release and name must not be taken.
    other = base64.b64encode(b"o" * 32).decode()
    docs, api = helm_against({(NAMESPACE, "other-crypto-operator-peer-token"): {"token": other}})
    assert f"/api/v1/namespaces/{NAMESPACE}/secrets/{PEER_SECRET}" in api.requests, api.requests
    token = one(docs, "Secret", PEER_SECRET, NAMESPACE)["data"]["token"]
    assert token != other
    assert re.fullmatch(r"[A-Za-z0-9]{32}", base64.b64decode(token).decode())


def test_peer_token_existing_secret_is_not_looked_up(helm_against):
    docs, api = helm_against({}, "--set", "peerToken.existingSecret=mine")
    assert not find(docs, "Secret")
    assert not [r for r in api.requests if "/secrets/" in r], api.requests
    _, _, path = peer_token_volume(docs)
    assert path == f"{PEER_DIR}/token", "peerToken.key defaults to token"


def test_update_strategy(rendered, helm):
    expected = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    for scenario in SCENARIOS:
        assert one(rendered[scenario], "Deployment")["spec"]["strategy"] == expected, scenario
    docs = helm.render("--set", "updateStrategy.type=Recreate")
    assert one(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}, "updateStrategy overrides"


def test_pod_disruption_budget(rendered, helm):
    assert not find(rendered["default"], "PodDisruptionBudget"), "one replica: no budget"
    for scenario, max_unavailable in [("ha-namespaced", 1), ("everything", 2)]:
        docs = rendered[scenario]
        dep = one(docs, "Deployment")
        pdb = one(docs, "PodDisruptionBudget", dep["metadata"]["name"], NAMESPACE)
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["spec"] == {"maxUnavailable": max_unavailable,
                               "selector": {"matchLabels": dep["spec"]["selector"]["matchLabels"]}}
        assert pdb["spec"]["selector"]["matchLabels"].items() <= \
            dep["spec"]["template"]["metadata"]["labels"].items()
    pdb = one(helm.render("--set", "replicaCount=2", "--set", "podDisruptionBudget.maxUnavailable=50%"),
              "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == "50%"
    assert not find(helm.render("--set", "replicaCount=3", "--set", "podDisruptionBudget.enabled=false"),
                    "PodDisruptionBudget")
    assert not find(helm.render("--set", "replicaCount=0"), "PodDisruptionBudget")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_ports_and_probes(rendered, scenario):
    c = container(rendered[scenario])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": 50051, "http": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_security_context(rendered, scenario):
    docs = rendered[scenario]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    c = container(docs)
    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0 and psc["runAsGroup"] != 0
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc["runAsNonRoot"] is True
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["privileged"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_termination_grace_exceeds_drain_grace(rendered, scenario):
    docs = rendered[scenario]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (drain,) = flag_values(container(docs)["args"], "--drain-grace")
    assert pod["terminationGracePeriodSeconds"] > duration_seconds(drain)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_flag_exists_in_serve(rendered, scenario):
    known = serve_flags()
    assert {"--grpc-addr", "--drain-grace", "--namespace", "--log-format", *MEMBERSHIP_DEFAULTS,
            "--replica-id", "--advertise-addr", "--peer-token-file"} <= known, known
    assert not {"--leader-elect", "--lease-name", "--identity"} & known
    args = container(rendered[scenario])["args"]
    assert args[0] == "serve"
    for arg in args[1:]:
        flag = arg.split("=", 1)[0]
        assert flag in known, f"{flag} is not a flag of crypto-operator serve"


def test_source_flags_are_the_binary_flags():
    """serve_flags() reads src/cli; the binary's --help must list the same
    flags (else the parser misses some, or the binary is older than src/)."""
    binary, source = help_flags(operator_binary()), serve_flags()
    assert binary == source, (
        f"only in the binary: {sorted(binary - source)}; only in src/cli: {sorted(source - binary)} "
        "(a stale binary: cargo build --bin crypto-operator)"
    )


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_binary_accepts_the_rendered_args_and_env(rendered, scenario):
    """`serve <the rendered args> --help`: clap parses every argument and
    every CRYPTO_* environment value (unknown flags, bad durations or numbers
    fail with exit 2) before it prints the help and exits 0."""
    c = container(rendered[scenario])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "POD_NAME": "crypto-operator-0",
           "POD_NAMESPACE": NAMESPACE, "POD_IP": "10.0.0.7"}
    for e in c["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
    proc = subprocess.run([operator_binary(), *c["args"], "--help"], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert proc.returncode == 0, f"{c['args']}\n{proc.stderr}"
    assert "--lease-prefix" in proc.stdout
    bad = [*c["args"], "--lease-duration=1.5s", "--help"]
    proc = subprocess.run([operator_binary(), *bad], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 2 and "--lease-duration" in proc.stderr, "the check itself must be able to fail"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_leader_election_left(helm, rendered, scenario):
    text = helm.template("--include-crds", *_args(SCENARIOS[scenario])).stdout
    for gone in GONE_RENDERED:
        assert not re.search(gone, text), f"{gone!r} is rendered in {scenario}"
    for doc in rendered[scenario]:
        assert "leader" not in doc["metadata"]["name"]


def test_no_leader_election_in_the_chart():
    files = [CHART / "values.yaml", CHART / "values.schema.json", *sorted((CHART / "templates").iterdir())]
    for path in files:
        text = path.read_text()
        for gone in GONE:
            assert not re.search(gone, text), f"{gone!r} in {path.relative_to(ROOT)}"


def test_lease_prefix_follows_the_release(helm):
    """Two releases in one namespace never share Leases (nor Secrets, Roles)."""
    prefixes = {}
    for release in ["blue", "green"]:
        out = helm.run("template", release, str(CHART), "--namespace", NAMESPACE,
                       "--kube-version", KUBE_VERSION).stdout
        docs = [d for d in yaml.safe_load_all(out) if d]
        (prefix,) = flag_values(container(docs)["args"], "--lease-prefix")
        assert prefix == f"{release}-crypto-operator"
        one(docs, "Role", f"{release}-crypto-operator-leases", NAMESPACE)
        one(docs, "Secret", f"{release}-crypto-operator-peer-token", NAMESPACE)
        prefixes[release] = prefix
    assert prefixes["blue"] != prefixes["green"]
    docs = helm.render("--set", "fullnameOverride=fleet")
    assert flag_values(container(docs)["args"], "--lease-prefix") == ["fleet"]
    docs = helm.render("--set", "membership.leasePrefix=shared")
    assert flag_values(container(docs)["args"], "--lease-prefix") == ["shared"]


def test_replicas_and_namespaced_watching(rendered):
    docs = rendered["ha-namespaced"]
    dep = one(docs, "Deployment", FULLNAME)
    assert dep["spec"]["replicas"] == 2
    args = container(docs)["args"]
    assert membership_flags(args) == MEMBERSHIP_DEFAULTS
    assert flag_values(args, "--namespace") == ["team-a", "team-b"]


def test_everything_on(rendered):
    docs = rendered["everything"]
    dep = one(docs, "Deployment", "crypto-operator")
    pod = dep["spec"]["template"]["spec"]
    c = container(docs)
    args = c["args"]
    assert dep["spec"]["replicas"] == 3
    assert c["image"] == "registry.example.com/crypto-operator:0.1.0-test"
    assert c["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert membership_flags(args) == {
        "--lease-prefix": "crypto-fleet",
        "--lease-duration": "20s",
        "--holder-grace": "30s",
        "--min-hold": "2s",
        "--api-write-qps": "2.5",
        # Helm reads numbers as float64: a whole one must not become 1e+06.
        "--api-write-burst": "1000000",
    }
    assert flag_values(args, "--namespace") == ["payments"]
    assert flag_values(args, "--log-format") == ["text"]
    assert flag_values(args, "--log") == ["crypto_operator=debug"]
    assert flag_values(args, "--stale-after") == ["15s"]
    assert flag_values(args, "--dead-after") == ["30s"]
    assert flag_values(args, "--ping-interval") == ["0s"]
    assert args[-1] == "--command-queue=128", "extraArgs come last"
    # TLS from a Secret.
    assert flag_values(args, "--tls-cert") == ["/etc/crypto-operator/tls/tls.crt"]
    assert flag_values(args, "--tls-key") == ["/etc/crypto-operator/tls/tls.key"]
    # Replicas check each other against the Secret's CA and the Service's name.
    assert flag_values(args, "--peer-ca") == ["/etc/crypto-operator/tls/ca.crt"]
    assert flag_values(args, "--peer-tls-name") == [f"crypto-operator.{NAMESPACE}.svc"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert set(volumes) == set(mounts) == {"peer-token", "tls", "admin-token"}
    assert volumes["tls"]["secret"]["secretName"] == "crypto-operator-tls"
    assert mounts["tls"] == {"name": "tls", "mountPath": "/etc/crypto-operator/tls", "readOnly": True}
    # Admin token from a Secret.
    assert volumes["admin-token"]["secret"]["secretName"] == "crypto-operator-admin"
    assert mounts["admin-token"]["readOnly"] is True
    env = env_of(c)
    assert env["CRYPTO_ADMIN_TOKEN_FILE"]["value"] == "/etc/crypto-operator/admin-token/admin-token"
    assert env["CRYPTO_PEER_TOKEN_FILE"]["value"] == f"{PEER_DIR}/peer-token"
    assert env["CRYPTO_REGISTER_TIMEOUT"]["value"] == "5s"
    svc = one(docs, "Service", "crypto-operator")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert "appProtocol" not in svc["spec"]["ports"][0], "TLS gRPC is not h2c"
    assert pod["terminationGracePeriodSeconds"] == 45
    lease_role_and_binding(docs, "crypto-operator", "crypto-operator")
    assert one(docs, "Role", "crypto-operator", "payments")["rules"] == CLIENT_RULES


# ---------------------------------------------------------------- Service


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_service_exposes_grpc_and_http(rendered, scenario):
    docs = rendered[scenario]
    svc = one(docs, "Service")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    assert ports == {"grpc": (50051, "grpc"), "http": (8080, "http")}
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    dep = one(docs, "Deployment")
    assert dep["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]


# ---------------------------------------------------------------- monitoring


def _alerts() -> dict:
    return yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())


def test_monitoring_is_off_by_default(rendered):
    kinds = {d["kind"] for d in rendered["default"]}
    assert "ServiceMonitor" not in kinds and "PrometheusRule" not in kinds


def test_service_monitor_job_matches_the_alert(rendered):
    docs = rendered["monitoring"]
    sm = one(docs, "ServiceMonitor", FULLNAME, NAMESPACE)
    svc = one(docs, "Service", FULLNAME)
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    # The job label Prometheus gets is the Service label named by jobLabel
    # (else the Service name); CryptoOperatorDown must match it.
    job = svc["metadata"]["labels"][sm["spec"]["jobLabel"]]
    down = next(r for g in _alerts()["groups"] for r in g["rules"] if r.get("alert") == "CryptoOperatorDown")
    matcher = re.search(r'job=~"([^"]+)"', down["expr"])[1]
    assert job == "crypto-operator"
    assert re.fullmatch(matcher, job), (matcher, job)
    assert re.fullmatch(matcher, svc["metadata"]["name"]), (matcher, svc["metadata"]["name"])


def test_prometheus_rule_is_the_alert_file(rendered):
    rule = one(rendered["monitoring"], "PrometheusRule", FULLNAME, NAMESPACE)
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == _alerts()["groups"], "the rule must be files/alerts.yaml unchanged"
    summaries = [r["annotations"]["summary"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert any("{{ $labels.client_id }}" in s for s in summaries), "Prometheus templates must reach Prometheus"
    names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert names == {"CryptoClientHeartbeatStale", "CryptoClientDown", "CryptoCommandAckTimeouts", "CryptoOperatorDown"}


# ---------------------------------------------------------------- NOTES


def test_notes_tell_how_to_connect(helm):
    out = helm.run("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client").stdout
    notes = out.split("NOTES:", 1)[1]
    assert "kubectl get cryptoclients" in notes
    assert f"{FULLNAME}.{NAMESPACE}.svc:50051" in notes
    assert f"port-forward service/{FULLNAME} 50051:50051" in notes
    assert "kind: CryptoClient" in notes
    assert "{{" not in notes


def notes(helm, *args: str) -> str:
    out = helm.run("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *args).stdout
    text = out.split("NOTES:", 1)[1]
    assert "{{" not in text and "<no value>" not in text
    return text


def test_notes_with_one_replica(helm):
    text = notes(helm)
    assert "Replicas: 1 active; each is Ready and takes clients" in text
    assert f'Lease prefix "{FULLNAME}" in {NAMESPACE}: {FULLNAME}-replica-<pod> per replica, {FULLNAME}-janitor' in text
    assert "Cross-replica" not in text, "nothing to say about cross-replica calls with one replica"
    assert "leader" not in text.lower()


def test_notes_with_several_replicas(helm):
    text = notes(helm, "-f", values_file("ha-namespaced.yaml"))
    assert "team-a, team-b" in text
    assert "Replicas: 2 active; each is Ready and takes clients for any CryptoClient" in text
    assert f'Lease prefix "{FULLNAME}"' in text
    flat = " ".join(text.split())
    assert "Cross-replica command calls are not available yet" in flat
    assert "answers NOT_FOUND" in flat and "a list shows only the sessions of the replica that answers it" in flat
    assert "leader" not in text.lower()
    text = notes(helm, "-f", values_file("everything.yaml"))
    assert "Replicas: 3 active" in text and 'Lease prefix "crypto-fleet"' in text
