"""The package's shape: one import name, and the dependency table of docs/architecture.md.

Each layer is imported alone in a fresh interpreter, with every module under it,
and the test checks which other layers came along. A wheel holds `polymodal/`
and nothing else at its top level, and installs without the repository.
"""

import ast
import json
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

LAYERS = ("builders", "baselines", "benchmarks", "leaderboard")
# Which other layers a layer may import (docs/architecture.md). benchmarks.bench runs the whole pipeline, so it
# writes the leaderboard too.
MAY_IMPORT = {
    "builders": set(),
    "baselines": set(),
    "benchmarks": {"builders", "baselines", "leaderboard"},
    "leaderboard": set(),
}
NEVER_THIRD_PARTY = {"builders": {"torch.nn"}, "leaderboard": {"torch"}}
DATASETS = ("xor", "xnor", "symile_m3", "vggsound_plus")

PROBE = """
import importlib, json, pkgutil, sys
layer = sys.argv[1]
package = importlib.import_module("polymodal." + layer)
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if not info.name.endswith(".__main__"):  # that one runs the command
        importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_what_the_table_allows(layer):
    out = subprocess.run([sys.executable, "-c", PROBE, layer], capture_output=True, text=True, check=True, cwd="/")
    modules = set(json.loads(out.stdout))
    pulled = {other for other in LAYERS if other != layer and f"polymodal.{other}" in modules}
    assert pulled <= MAY_IMPORT[layer], f"polymodal.{layer} imports {sorted(pulled - MAY_IMPORT[layer])}"
    assert "polymodal.cli" not in modules  # the version and the registry helper live below the CLI
    assert not NEVER_THIRD_PARTY.get(layer, set()) & modules


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("side", ["builders", "benchmarks/tasks"])
def test_no_dataset_imports_another(side):
    package = "polymodal." + side.replace("/", ".")
    for dataset in DATASETS:
        home = ROOT / side / dataset
        files = sorted(home.rglob("*.py")) if home.is_dir() else [home.with_suffix(".py")]
        for path in files:
            others = {d for d in DATASETS if d != dataset
                      for name in _imports(path) if name == f"{package}.{d}" or name.startswith(f"{package}.{d}.")}
            assert not others, f"{path.relative_to(ROOT)} imports the datasets {sorted(others)}"


def test_the_harness_uses_only_the_builders_public_names():
    """benchmarks reads a dataset package's exports (and builders' schema and machinery), never its inner modules.
    The speed benchmarks in benchmarks/perf/ are exempt: they time a builder's inner steps on purpose."""
    for path in sorted(p for p in (ROOT / "benchmarks").rglob("*.py") if "perf" not in p.parts):
        for name in _imports(path):
            parts = name.split(".")
            if parts[:2] == ["polymodal", "builders"] and len(parts) > 3 and parts[2] in DATASETS:
                pytest.fail(f"{path.relative_to(ROOT)} imports {name}; import from polymodal.builders.{parts[2]}")


def test_a_wheel_holds_polymodal_alone_and_works_without_the_repository(tmp_path):
    # Built from a copy of the tracked files: an in-tree build/ folder could carry modules that no longer exist.
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("polymodal-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"polymodal"} and len(top) == 2, sorted(top)
    for resource in ("polymodal/builders/vggsound_plus/resources/vggsound_classes.csv",
                     "polymodal/builders/symile_m3/resources/babel_imagenet_m3.json",
                     "polymodal/leaderboard/result.schema.json", "polymodal/data_cards/xor.md"):
        assert resource in names

    # A fresh venv that sees the installed dependencies but installs polymodal from the wheel, not editable.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    probe = ("import importlib.util, polymodal.builders, polymodal.leaderboard; "
             "print(polymodal.builders.__file__); print(importlib.util.find_spec('builders'))")
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    location, builders = out.stdout.split()
    assert location.startswith(site), location  # the wheel's copy, not the repository
    assert builders == "None"  # `import builders` fails: the folder names are not import names
