"""Fixtures for the chart tests: a real Helm v4 CLI (see tools.py) run with
HOME and every Helm directory in a temporary folder and no kubeconfig, and
kubernetes-validate. A missing tool fails the tests; it never skips them."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tools  # noqa: E402

ROOT = tools.ROOT
CHART = ROOT / "charts" / "crypto-operator"
VALUES_DIR = Path(__file__).resolve().parent / "values"
RELEASE = "crypto"
NAMESPACE = "crypto-system"
KUBE_VERSION = "1.33.0"


@dataclass
class Helm:
    binary: Path
    env: dict

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def template(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(
            "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--kube-version", KUBE_VERSION, *args, check=check,
        )

    def render(self, *args: str) -> list[dict]:
        """`helm template` output as a list of documents (empty ones dropped)."""
        out = self.template(*args).stdout
        return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="session")
def helm(tmp_path_factory) -> Helm:
    try:
        binary = tools.ensure_helm()
    except Exception as e:  # noqa: BLE001 - any failure to get helm fails the run
        pytest.fail(f"cannot get the Helm CLI: {e}", pytrace=False)
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        # Never a real cluster: no kubeconfig at all.
        "KUBECONFIG": str(home / "no-kubeconfig"),
        "TMPDIR": str(home),
    }
    h = Helm(binary, env)
    version = h.run("version", "--template", "{{.Version}}").stdout.strip()
    if not version.startswith("v4."):
        pytest.fail(f"expected a Helm v4 CLI, got {version!r}", pytrace=False)
    return h


@pytest.fixture(scope="session")
def kube_validate():
    try:
        import kubernetes_validate  # noqa: F401
        from kubernetes_validate import utils
    except ImportError as e:
        pytest.fail(f"kubernetes-validate is not installed ({e}); run tests/helm/run.sh", pytrace=False)
    return utils


def values_file(name: str) -> str:
    path = VALUES_DIR / name
    assert path.is_file(), path
    return str(path)
