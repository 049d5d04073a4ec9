"""The apps' layout, checked by parsing imports (nothing is imported or run):

- no module under apps/ imports an entry script (apps/<name>.py);
- data modules (apps/<app>/data.py, and the shared apps/music, apps/audio, apps/common) never
  import a model, training, evaluation or generation module;
- apps/common imports no app folder; apps/music and apps/audio import no app folder either;
- the project's own modules are imported at the top of every module, never inside a function
  body, so the top of a file shows what it depends on (a third-party library that is slow to
  load and used by one function, such as matplotlib, may still be imported there).
"""
from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APPS = os.path.join(ROOT, "apps")
ENTRY_SCRIPTS = sorted(f[:-3] for f in os.listdir(APPS) if f.endswith(".py") and f != "__init__.py")
APP_FOLDERS = sorted(d for d in os.listdir(APPS) if os.path.isdir(os.path.join(APPS, d))
                     and os.path.exists(os.path.join(APPS, d, "__init__.py")))
SHARED = {"common", "music", "audio"}
NOT_FOR_DATA = ("model", "models", "train", "training", "evaluate", "evaluation", "generate",
                "generation", "sample", "judge", "judges")


def _modules():
    for folder in APP_FOLDERS:
        base = os.path.join(APPS, folder)
        for dirpath, _, files in os.walk(base):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(dirpath, f)
                    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    yield rel.removesuffix(".__init__"), path


def _imports(path: str, module: str) -> list[str]:
    """Absolute dotted names this module imports (relative imports resolved)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            names.append(mod)
            names += [f"{mod}.{a.name}" for a in node.names]  # `from apps.x import model`
    return names


MODULES = sorted(_modules())


def test_there_are_app_folders_and_entry_scripts():
    assert {"common", "music", "audio"} <= set(APP_FOLDERS)
    assert "abc_lstm" in ENTRY_SCRIPTS and len(MODULES) > 20


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_no_module_imports_an_entry_script(module, path):
    entries = {f"apps.{e}" for e in ENTRY_SCRIPTS}
    bad = sorted({n for n in _imports(path, module) if n in entries})
    assert not bad, f"{module} imports entry script(s) {bad}: move what it needs into a module"


def _is_data_module(module: str) -> bool:
    parts = module.split(".")
    return parts[1] in SHARED or parts[-1] == "data"


@pytest.mark.parametrize("module,path", [(m, p) for m, p in MODULES if _is_data_module(m)],
                         ids=[m for m, _ in MODULES if _is_data_module(m)])
def test_data_and_shared_modules_import_no_model_side(module, path):
    bad = []
    for name in _imports(path, module):
        parts = name.split(".")
        if parts[0] != "apps" or len(parts) < 3:
            continue
        if parts[-1] in NOT_FOR_DATA or (len(parts) > 2 and parts[2] in NOT_FOR_DATA):
            bad.append(name)
        if module.split(".")[1] in SHARED and parts[1] not in SHARED:
            bad.append(name)  # shared code serves every app and depends on none
    assert not bad, f"{module} (a data or shared module) imports {sorted(set(bad))}"


ALL_MODULES = MODULES + [(f"apps.{e}", os.path.join(APPS, f"{e}.py")) for e in ENTRY_SCRIPTS]


@pytest.mark.parametrize("module,path", ALL_MODULES, ids=[m for m, _ in ALL_MODULES])
def test_project_imports_sit_at_the_top(module, path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    nested = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for n in ast.walk(fn):
            if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").split(".")[0]
                                                  in ("apps", "nnscratch", "benchmarks")):
                nested.append(f"line {n.lineno}")
            elif isinstance(n, ast.Import) and any(a.name.split(".")[0] in ("apps", "nnscratch")
                                                   for a in n.names):
                nested.append(f"line {n.lineno}")
    assert not nested, f"{path} imports project modules inside functions at {nested}"
