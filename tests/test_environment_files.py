"""pyproject.toml is the source of truth; environment.yml must list the same packages and versions."""
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def normalise(spec: str) -> tuple[str, str]:
    req = Requirement(spec)
    return req.name.lower().replace("_", "-"), str(req.specifier)


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {normalise(s) for s in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {normalise(s) for s in extra}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {normalise(s) for s in pip_block if not s.startswith("-e")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"
    assert ("torch", "==2.14.1") in wanted and ("torchvision", "==0.29.1") in wanted
