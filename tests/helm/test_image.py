"""The Dockerfile, checked statically (no Docker engine on these machines):
multi-stage, one plain cargo build command, dependencies in their own layer,
a non-root runtime stage holding only the binary, the operator's ports."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path


from conftest import ROOT

# The only compile command the image runs; the same cargo build of the same
# crate and lockfile happens in the test suite (cargo test --locked).
DOCKER_BUILD_COMMAND = "cargo build --release --locked --bin crypto-operator"
BINARY = "/usr/local/bin/crypto-operator"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    out, pending = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends in a continuation line"
    return out


def stages() -> list[dict]:
    result = []
    for word, rest in instructions():
        if word == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert m, rest
            result.append({"image": m[1], "name": m[2], "steps": []})
        elif result:
            result[-1]["steps"].append((word, rest))
    return result


def dockerignore() -> list[str]:
    return [
        l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
        if l.strip() and not l.strip().startswith("#")
    ]


def ignored(path: str) -> bool:
    for pat in dockerignore():
        pat = pat.rstrip("/")
        if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
            return True
    return False


def test_multi_stage():
    s = stages()
    assert len(s) >= 2, "a build stage and a runtime stage"
    assert s[0]["name"] and "rust" in s[0]["image"]
    assert "rust" not in s[-1]["image"], "the runtime image is not the toolchain image"
    assert "distroless" in s[-1]["image"] or s[-1]["image"] == "scratch"


def test_build_commands_are_plain_cargo_builds():
    build = stages()[0]
    runs = [rest for word, rest in build["steps"] if word == "RUN"]
    cargo = [r for r in runs if "cargo" in r]
    assert cargo == [DOCKER_BUILD_COMMAND, DOCKER_BUILD_COMMAND], \
        "one dependency build (stub sources) and one real build, both exactly the known command"
    for r in runs:
        for part in re.split(r"&&|;", r):
            argv = shlex.split(part)
            assert argv and argv[0] in {"cargo", "mkdir", "echo", "touch"}, f"not a plain command: {part!r}"


def test_dependencies_have_their_own_layer():
    steps = stages()[0]["steps"]
    copies = [i for i, (w, _) in enumerate(steps) if w == "COPY"]
    builds = [i for i, (w, r) in enumerate(steps) if w == "RUN" and r == DOCKER_BUILD_COMMAND]
    src_copy = next(i for i in copies if steps[i][1].split()[0] == "src")
    assert builds[0] < src_copy < builds[1], "dependencies are built before src/ is copied"
    for i in copies:
        if i < builds[0]:
            assert "src" not in steps[i][1].split()[:-1], "the dependency layer must not depend on src/"


def test_copied_sources_exist_and_are_not_ignored():
    for word, rest in stages()[0]["steps"]:
        if word != "COPY" or rest.startswith("--from"):
            continue
        for src in rest.split()[:-1]:
            assert (ROOT / src).exists(), f"COPY {src}: missing"
            assert not ignored(src), f"COPY {src}: excluded by .dockerignore"
    for must in ["target", ".git", ".cache"]:
        assert ignored(must), f".dockerignore must exclude {must}/"


def test_every_cargo_target_is_in_the_build_context():
    """Cargo reads every explicitly declared target at build time (a missing
    bench file fails `cargo build --bin`)."""
    copied = {
        src.rstrip("/")
        for word, rest in stages()[0]["steps"] if word == "COPY" and not rest.startswith("--from")
        for src in rest.split()[:-1]
    }
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    defaults = {"bin": "src/bin", "bench": "benches", "example": "examples", "test": "tests"}
    for kind, default_dir in defaults.items():
        for target in manifest.get(kind, []):
            path = target.get("path") or f"{default_dir}/{target['name']}.rs"
            top = path.split("/")[0]
            assert top in copied, f"[[{kind}]] {target['name']} ({path}) is not copied into the build stage"
    bins = [b["name"] for b in manifest.get("bin", [])]
    assert "crypto-operator" in bins
    # Cargo reads every workspace member's manifest, even to build one bin.
    for member in manifest.get("workspace", {}).get("members", []):
        assert member in copied, f"workspace member {member} is not copied into the build stage"


def test_sources_include_nothing_outside_the_context():
    copied = {"src", "proto", "benches"}
    for rs in (ROOT / "src").rglob("*.rs"):
        for m in re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"', rs.read_text()):
            target = (rs.parent / m[1]).resolve()
            rel = target.relative_to(ROOT).as_posix()
            assert rel.split("/")[0] in copied, f"{rs.relative_to(ROOT)} includes {rel}, not in the image build"


def test_runtime_stage_is_non_root_with_only_the_binary():
    runtime = stages()[-1]
    steps = runtime["steps"]
    copies = [rest for w, rest in steps if w == "COPY"]
    assert copies == [f"--from=build /src/target/release/crypto-operator {BINARY}"]
    assert not [w for w, _ in steps if w == "RUN"], "nothing runs in the runtime stage"
    (user,) = [rest for w, rest in steps if w == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (runAsNonRoot can check it)"
    assert uid == "65532", "the chart's runAsUser"
    (expose,) = [rest for w, rest in steps if w == "EXPOSE"]
    assert expose.split() == ["50051", "8080"]
    (entry,) = [rest for w, rest in steps if w == "ENTRYPOINT"]
    assert json.loads(entry) == [BINARY]
    (cmd,) = [rest for w, rest in steps if w == "CMD"]
    assert json.loads(cmd) == ["serve"]


def test_chart_runs_as_the_image_user():
    import yaml

    values = yaml.safe_load((ROOT / "charts/crypto-operator/values.yaml").read_text())
    (user,) = [rest for w, rest in stages()[-1]["steps"] if w == "USER"]
    assert str(values["podSecurityContext"]["runAsUser"]) == user.split(":")[0]


def test_no_remote_fetches():
    assert not [r for w, r in instructions() if w == "ADD"], "ADD can fetch URLs; use COPY"
