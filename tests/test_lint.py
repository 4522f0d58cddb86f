"""ruff, mypy and the import contracts run with the tests, so the one test command also keeps the code
clean, the core's types consistent and the layers where pyproject.toml says they are."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff comes with the test extra"
    out = subprocess.run([ruff, "check", "desktop_app", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_layers_hold():
    """pyproject.toml's [tool.importlinter] contracts: no layer imports one above it; core has no Qt."""
    lint = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter comes with the test extra"
    out = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr


def test_mypy_is_clean_on_the_core():
    """[tool.mypy] in pyproject.toml: desktop_app/core, strict on the modules others build on."""
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr


MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
# The exceptions, each with its reason. A new long function or module fails the test until it is
# split or given a reason here; one that got shorter fails it too, so the list stays true.
LONG_FUNCTIONS = {
    "desktop_app/cli/chat.py:cmd_chat": "the terminal chat: fit check, load, one answer or a loop, read top to bottom",
    "desktop_app/cli/local.py:cmd_fit": "the fit table's output lines, one after another",
    "desktop_app/core/compare/runner.py:_run_child": "one child process's life: start, drain, watch, read, clean up "
    "(split, the cleanup would sit far from what it cleans)",
    "desktop_app/core/engine/_worker.py:_chat": "the answer loop with its stop, its batched sends and its figures",
    "desktop_app/core/hub/quants.py:repo_quants": "one pass over a repo's files: shards grouped, sizes, predictions",
    "desktop_app/core/hub/remote_header.py:fetch_file_header": "ranged reads that grow until the header parses, "
    "each bounded and checked where it is made",
    "desktop_app/core/hub/search.py:search_models": "the Hub query's arguments and the rows made from its answer",
    "desktop_app/core/memory/hf_config.py:shape_from_hf_config": "a transformers config's keys mapped one by one "
    "to a ModelShape",
    "desktop_app/core/memory/shape.py:model_shape": "GGUF keys mapped one by one to a ModelShape of 22 fields",
    "desktop_app/core/runtime/check_model.py:write_check_model": "writes the check model tensor by tensor: "
    "a recipe, not logic",
}
LONG_MODULES = {
    "desktop_app/core/gguf/reader.py": "one parser of a hostile binary format: every bound beside the read it guards",
    "desktop_app/core/hub/download.py": "the downloader's path, size and redirect checks, reviewed together",
    "desktop_app/core/runtime/selfcheck.py": "the runtime check: ladder, child, verdict and memory of it, one story",
}


def _lengths():
    import ast

    functions, modules = {}, {}
    for path in sorted((ROOT / "desktop_app").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        modules[rel] = text.count("\n")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{rel}:{node.name}"
                functions[name] = max(functions.get(name, 0), node.end_lineno - node.lineno + 1)
    return functions, modules


def test_long_functions_and_modules_are_the_exception_with_a_reason():
    functions, modules = _lengths()
    long_functions = {f"{k} ({n} lines)" for k, n in functions.items() if n > MAX_FUNCTION_LINES}
    long_modules = {f"{k} ({n} lines)" for k, n in modules.items() if n > MAX_MODULE_LINES}
    unexplained = sorted(x for x in long_functions if x.split(" (")[0] not in LONG_FUNCTIONS)
    unexplained += sorted(x for x in long_modules if x.split(" (")[0] not in LONG_MODULES)
    assert not unexplained, "split these, or say in tests/test_lint.py why they are long:\n" + "\n".join(unexplained)
    stale = [k for k in LONG_FUNCTIONS if functions.get(k, 0) <= MAX_FUNCTION_LINES]
    stale += [k for k in LONG_MODULES if modules.get(k, 0) <= MAX_MODULE_LINES]
    assert not stale, f"no longer long: take them off the list in tests/test_lint.py: {stale}"
