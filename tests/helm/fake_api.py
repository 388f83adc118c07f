"""A minimal, read-only fake Kubernetes API server for `helm template
--dry-run=server`, so the chart's `lookup` calls can be tested without a
cluster. It answers what Helm asks on that path and nothing more: /version,
discovery (/api, /apis, the group-version resource lists of the kinds the
chart renders), GET of the Secrets it is given (owned by the release, as an
earlier install would have left them), empty Secret lists (Helm's release
storage), and 404 for everything else (so every rendered object "does not
exist yet"). It records each request path.

Not covered: writes (Helm's server dry run of `template` sends none) and
OpenAPI (run helm with --disable-openapi-validation; kubernetes-validate
checks the schemas)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# group -> version -> [(plural, kind, namespaced)]
GROUPS = {
    "apps": {"v1": [("deployments", "Deployment", True)]},
    "rbac.authorization.k8s.io": {"v1": [
        ("roles", "Role", True), ("rolebindings", "RoleBinding", True),
        ("clusterroles", "ClusterRole", False), ("clusterrolebindings", "ClusterRoleBinding", False),
    ]},
    "policy": {"v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)]},
    "coordination.k8s.io": {"v1": [("leases", "Lease", True)]},
}
CORE = [
    ("secrets", "Secret", True), ("services", "Service", True),
    ("serviceaccounts", "ServiceAccount", True), ("namespaces", "Namespace", False),
]
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


def _resource_list(group_version: str, resources) -> dict:
    return {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": [
            {"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": VERBS}
            for plural, kind, namespaced in resources
        ],
    }


class FakeApi:
    """`with FakeApi(release, {(namespace, name): data}) as api:` serves on a
    free loopback port; `api.kubeconfig(dir)` writes a kubeconfig for it."""

    def __init__(self, release: str, secrets: dict[tuple[str, str], dict[str, str]]):
        self.release = release
        self.secrets = dict(secrets)
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> "FakeApi":
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                api.requests.append(path)
                self._send(*api.answer(path))

            def _refuse(self):
                api.requests.append(f"{self.command} {self.path}")
                self._send(405, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "reason": "MethodNotAllowed", "code": 405})

            do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        assert self._server
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, folder: Path) -> Path:
        path = folder / "kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }))
        return path

    def answer(self, path: str) -> tuple[int, dict]:
        if path == "/version":
            return 200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        if path == "/apis":
            groups = []
            for group, versions in GROUPS.items():
                gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
                groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if path == "/api/v1":
            return 200, _resource_list("v1", CORE)
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "apis" and parts[2] in GROUPS.get(parts[1], {}):
            return 200, _resource_list(f"{parts[1]}/{parts[2]}", GROUPS[parts[1]][parts[2]])
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5 and parts[4] == "secrets":
            ns = parts[3]
            if len(parts) == 5:
                return 200, {"apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": []}
            if len(parts) == 6 and (ns, parts[5]) in self.secrets:
                return 200, {
                    "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {
                        "name": parts[5], "namespace": ns,
                        # What Helm checks before it takes an object over.
                        "labels": {"app.kubernetes.io/managed-by": "Helm"},
                        "annotations": {"meta.helm.sh/release-name": self.release,
                                        "meta.helm.sh/release-namespace": ns},
                    },
                    "data": self.secrets[(ns, parts[5])],
                }
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
