"""User models by entry point (group ``polymodal.models``), and ``module:Class`` from the current folder.

The unit tests stand fake distributions, real dist-info folders in tmp_path, in for whatever is installed; the
last test installs examples/my_model into a throwaway venv and benches it by name, as a user would.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import venv
from importlib import metadata

import pytest
import torch

from polymodal.baselines.models import MODELS, model_class, resolve_model
from polymodal.cli import main
from tests.helpers import ROOT

EXAMPLE = ROOT / "examples" / "my_model"


def installed(monkeypatch, tmp_path, distributions: dict[str, dict[str, str]]) -> None:
    """Make ``{distribution: {entry point: "module:Class"}}`` the only installed ``polymodal.models`` entry points."""
    found = []
    for name, entries in distributions.items():
        info = tmp_path / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(
            "[polymodal.models]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
        found.extend(metadata.PathDistribution(info).entry_points)
    monkeypatch.setattr(metadata, "entry_points", lambda **select: metadata.EntryPoints(found).select(**select))
    monkeypatch.syspath_prepend(str(EXAMPLE))  # where my_model imports from


def test_an_installed_model_resolves_by_name(monkeypatch, tmp_path):
    installed(monkeypatch, tmp_path, {"my-model": {"my-model": "my_model:MyModel"}})
    cls = resolve_model("my-model")
    assert cls.__name__ == "MyModel" and model_class("my-model") is cls
    model = cls({"a": 2, "b": 2, "c": 2}, width=4)
    assert model.loss(model({m: torch.randn(3, 2) for m in model.modalities})).ndim == 0
    assert resolve_model("clip") is MODELS["clip"]  # built-ins still come first


def test_an_entry_point_named_as_a_built_in_is_refused(monkeypatch, tmp_path):
    installed(monkeypatch, tmp_path, {"impostor": {"clip": "my_model:MyModel"}})
    with pytest.raises(ValueError, match=re.escape("model 'clip' is both a built-in model and the entry point "
                                                   "clip = my_model:MyModel of distribution impostor")):
        resolve_model("clip")
    assert resolve_model("symile") is MODELS["symile"]


def test_a_name_two_distributions_declare_is_refused(monkeypatch, tmp_path):
    installed(monkeypatch, tmp_path, {"one": {"my-model": "my_model:MyModel"}, "two": {"my-model": "my_model:MyModel"}})
    with pytest.raises(ValueError, match="'my-model' is declared twice: .* distribution one; .* distribution two"):
        resolve_model("my-model")


@pytest.mark.parametrize(("value", "why"), [
    ("polymodal_no_such_module:Model", "cannot be loaded: ModuleNotFoundError: No module named"),
    ("polymodal_raising_model:Model", "cannot be loaded: RuntimeError: needs a GPU"),  # any error its import raises
    ("my_model:MyMissing", "cannot be loaded: AttributeError"),
    ("my_model:F", "is not a class"),
    ("collections:OrderedDict", "must be an nn.Module implementing encode, loss, score, card"),
])
def test_a_broken_entry_point_is_one_line_naming_it_and_its_distribution(monkeypatch, tmp_path, capsys, value, why):
    (tmp_path / "polymodal_raising_model.py").write_text('raise RuntimeError("needs a GPU")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    installed(monkeypatch, tmp_path, {"broken-dist": {"bad": value}})
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--task", "xor", "--models", "bad", "--out", str(tmp_path / "bench")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"argument --models: model 'bad' (entry point bad = {value} of distribution broken-dist) {why}" in err


def test_an_unknown_name_lists_the_built_in_and_the_installed_models(monkeypatch, tmp_path):
    installed(monkeypatch, tmp_path, {"mine": {"my-model": "my_model:MyModel", "other-model": "my_model:MyModel"}})
    built_in = ", ".join(sorted(MODELS))
    with pytest.raises(ValueError, match=re.escape(f"unknown model 'nope': expected a built-in ({built_in}), "
                                                   "an installed one (my-model, other-model) or 'package.module:")):
        resolve_model("nope")


def test_module_class_imports_from_the_current_folder_searched_last(monkeypatch, tmp_path):
    shutil.copy(EXAMPLE / "my_model.py", tmp_path / "polymodal_cwd_model.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert resolve_model("polymodal_cwd_model:MyModel").__name__ == "MyModel"
    assert sys.path[-1] == str(tmp_path)


def test_an_installed_package_s_model_benches_by_name(tmp_path):
    # A copy: building the package writes build/ and an egg-info beside its sources.
    source = shutil.copytree(EXAMPLE, tmp_path / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    venv.create(tmp_path / "venv", system_site_packages=True, with_pip=False)  # pip and setuptools come from outside
    python = str(tmp_path / "venv" / "bin" / "python")
    env = os.environ | {"PYTHONPATH": str(ROOT)}  # this checkout's polymodal; my_model comes from the venv alone
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", str(source)], check=True, capture_output=True, env=env)
    proc = subprocess.run([python, "-m", "polymodal", "bench", "--task", "xor", "--models", "my-model", "--out", "out",
                           "--no-progress", "--workers", "1", "--dim", "2", "--p-hat", "1", "--train", "200",
                           "--val", "100", "--test", "100", "--test-draws", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out" / "results" / "xor" / "p_hat=1" / "my-model.json").read_text())
    assert (result["model"]["name"], result["model"]["source"]) == ("my-model", "my-model")
