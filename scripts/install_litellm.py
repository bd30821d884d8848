"""Install a LiteLLM proxy of a given version, and this project beside it, into the running Python.

    python scripts/install_litellm.py [VERSION]      (VERSION defaults to NEWEST)

Up to 1.106 this is `pip install litellm[proxy]==VERSION`. From 1.108 on, the proxy extra pins
`litellm-proxy-extras` and `litellm-enterprise` versions that the package index here does not
serve (0.4.110.post1 / 0.4.113 and 0.1.82.post1), so the extra cannot be resolved: the script
installs `litellm==VERSION`, then the extra's other requirements as LiteLLM itself declares them
(importlib.metadata.requires), with each of those two pinned to the version the index serves
that is closest below the pin (`pip index versions`). The project goes in editable, without
letting pip re-resolve `litellm[proxy]` (it would downgrade LiteLLM to one whose extra resolves),
with its other requirements and the dev extra.
Used by ./run (LITELLM_VERSION=...) and so by .ci/run.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

NEWEST = "1.109.3"  # the newest LiteLLM that installs here and passes the suite (README)
EXTRA_FROM = (1, 108)  # the first release whose proxy extra does not resolve on the index
PINNED_ELSEWHERE = ("litellm-proxy-extras", "litellm-enterprise")
ROOT = Path(__file__).resolve().parent.parent


def pip(*args: str) -> str:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    print("install-litellm: pip " + " ".join(args), file=sys.stderr)
    done = subprocess.run(cmd, check=False, text=True, stdout=subprocess.PIPE)
    if done.returncode != 0:
        sys.exit(f"install-litellm: pip {args[0]} failed ({done.returncode})")
    return done.stdout


def release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def served_versions(name: str) -> list[str]:
    out = pip("index", "versions", name)
    match = re.search(r"Available versions:\s*(.+)", out)
    return [v.strip() for v in match.group(1).split(",")] if match else []


def served_pin(name: str, pinned: str) -> str:
    """The pinned version if the index serves it, else the newest it serves below it."""
    from packaging.version import Version

    served = served_versions(name)
    if pinned in served:
        return pinned
    below = sorted((Version(v) for v in served if Version(v) <= Version(pinned)), reverse=True)
    if not below:
        sys.exit(f"install-litellm: the index serves no {name} at or below {pinned}")
    print(f"install-litellm: {name}=={pinned} is not served: using {below[0]}", file=sys.stderr)
    return str(below[0])


def proxy_requirements() -> list[str]:
    """The installed LiteLLM's `proxy` extra, with the unserved pins replaced by served versions."""
    from packaging.requirements import Requirement

    importlib.invalidate_caches()
    wanted: list[str] = []
    for line in importlib.metadata.requires("litellm") or []:
        req = Requirement(line)
        if req.marker is None or not req.marker.evaluate({"extra": "proxy"}):
            continue
        if req.marker.evaluate({"extra": ""}):  # a base requirement: installed with LiteLLM
            continue
        req.marker = None
        name = req.name.lower().replace("_", "-")
        pins = [s.version for s in req.specifier if s.operator == "=="]
        if name in PINNED_ELSEWHERE and pins:
            wanted.append(f"{name}=={served_pin(name, pins[0])}")
        else:
            wanted.append(str(req))
    return wanted


def project_requirements() -> list[str]:
    """pyproject's dependencies but LiteLLM (installed above), and the dev extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = [r for r in project["dependencies"] if not re.match(r"litellm\b", r)]
    return base + list(project["optional-dependencies"]["dev"])


def main() -> None:
    version = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else NEWEST
    pip("install", "--quiet", "--upgrade", "pip", "packaging")
    if release(version) < EXTRA_FROM:
        pip("install", "--quiet", f"litellm[proxy]=={version}")
    else:
        pip("install", "--quiet", f"litellm=={version}")
        pip("install", "--quiet", f"litellm=={version}", *proxy_requirements())
    pip("install", "--quiet", "--no-deps", "-e", str(ROOT))
    pip("install", "--quiet", f"litellm=={version}", *project_requirements())
    importlib.invalidate_caches()
    installed = importlib.metadata.version("litellm")
    if installed != version:
        sys.exit(f"install-litellm: asked for LiteLLM {version}, pip left {installed}")
    print(f"install-litellm: LiteLLM {installed} and the project installed", file=sys.stderr)


if __name__ == "__main__":
    main()
