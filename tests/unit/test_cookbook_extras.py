"""Every cookbook script declares extras that cover what it imports.

``bash scripts/quickstart.sh NAME`` installs only the extras ``cookbook/NAME.py`` declares in its
PEP 723 block (``# /// script`` ... ``# ///``), so a script that imports a package none of them
brings fails on a fresh clone, and would pass tests/e2e/test_docs.py, whose environment has every
extra. Here each block is read as PEP 723 specifies, its extras are resolved through
pyproject.toml to distribution names, and every third-party module the script imports (anywhere,
lazily inside a function too) must come from one of them, as must what the script reaches
through this package (``PACKAGE_EXTRAS``, checked against the package's own imports) and the
framework features known to need an extra (``FEATURE_EXTRAS``).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import pathlib
import re
import sys
import types
import typing

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

ROOT = pathlib.Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "dashscope_embeddings"
COOKBOOK = sorted((ROOT / "cookbook").glob("*.py"))
PROJECT = "dashscope-embeddings"
PACKAGE = "dashscope_embeddings"

# PEP 723's reference regular expression for an inline metadata block
BLOCK = r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$"

# The extras each part of this package needs at run time, besides the core (httpx, pydantic);
# the longest matching module name wins. A name in a subpackage's ``_LAZY`` table is loaded from
# the module it names there (``from dashscope_embeddings.langchain import
# DashScopeSparseEmbeddings`` loads ``dashscope_embeddings.langchain._qdrant``).
# test_package_extras_match_the_package_imports checks this against the package's imports.
PACKAGE_EXTRAS: dict[str, frozenset[str]] = {
    PACKAGE: frozenset(),
    f"{PACKAGE}.batch": frozenset(),
    f"{PACKAGE}.resources": frozenset(),
    f"{PACKAGE}.cli": frozenset({"cli"}),
    f"{PACKAGE}.emulator": frozenset({"emulator"}),
    f"{PACKAGE}.langchain": frozenset({"langchain"}),
    f"{PACKAGE}.langchain._qdrant": frozenset({"langchain", "qdrant"}),
    f"{PACKAGE}.langchain._milvus": frozenset({"langchain", "milvus"}),
    f"{PACKAGE}.llama_index": frozenset({"llama-index"}),
    f"{PACKAGE}.llama_index._milvus": frozenset({"llama-index", "milvus"}),
    f"{PACKAGE}.ray": frozenset({"ray"}),
}

# Framework features that need a package their framework does not depend on, so no import in
# the script shows it: (module, name imported from it) -> the distribution it needs.
FEATURE_EXTRAS: dict[tuple[str, str], str] = {
    # similarity search imports numpy when it runs (langchain_core.vectorstores.utils), and
    # langchain-core does not depend on numpy
    ("langchain_core.vectorstores", "InMemoryVectorStore"): "numpy",
    ("langchain_core.vectorstores.in_memory", "InMemoryVectorStore"): "numpy",
}


def _normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _toml(text: str) -> dict[str, typing.Any]:
    data: dict[str, typing.Any] = tomllib.loads(text)
    return data


@functools.cache
def _pyproject() -> dict[str, typing.Any]:
    return _toml((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _optional() -> dict[str, list[str]]:
    optional: dict[str, list[str]] = _pyproject()["project"]["optional-dependencies"]
    return optional


def script_metadata(text: str) -> dict[str, typing.Any] | None:
    """The ``script`` block of ``text`` as PEP 723's reference implementation reads it."""
    matches = [m for m in re.finditer(BLOCK, text) if m.group("type") == "script"]
    if len(matches) > 1:
        raise ValueError("multiple script blocks found")
    if not matches:
        return None
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in matches[0].group("content").splitlines(keepends=True)
    )
    return _toml(content)


def declared_extras(script: pathlib.Path) -> list[str]:
    """The extras of this package that ``script`` declares; fails on anything else."""
    metadata = script_metadata(script.read_text(encoding="utf-8"))
    assert metadata is not None, f"{script.name}: no '# /// script' block (PEP 723)"
    assert metadata.get("requires-python") == ">=3.10", f"{script.name}: requires-python"
    dependencies = metadata.get("dependencies")
    assert isinstance(dependencies, list) and dependencies, f"{script.name}: no dependencies"
    extras: list[str] = []
    for dependency in dependencies:
        requirement = Requirement(dependency)
        assert _normalise(requirement.name) == PROJECT, (
            f"{script.name}: {dependency!r} is not {PROJECT}[extras]; put what the script needs "
            f"in an extra of pyproject.toml"
        )
        extras += sorted(requirement.extras)
    unknown = sorted(set(extras) - set(_optional()))
    assert not unknown, f"{script.name}: extras {unknown} are not in pyproject.toml"
    return extras


def distributions(extras: typing.Iterable[str]) -> frozenset[str]:
    """The distributions the core and ``extras`` name, through self-references, normalised."""
    names: set[str] = set()
    seen: set[str] = set()
    requirements = list(_pyproject()["project"]["dependencies"])
    todo = list(extras)
    while todo or requirements:
        if requirements:
            requirement = Requirement(requirements.pop())
            if _normalise(requirement.name) == PROJECT:
                todo += sorted(requirement.extras)
            else:
                names.add(_normalise(requirement.name))
            continue
        extra = todo.pop()
        if extra not in seen:
            seen.add(extra)
            requirements += _optional()[extra]
    return frozenset(names)


def _imports(tree: ast.AST, *, run_time_only: bool = False) -> list[tuple[str, list[str]]]:
    """``(module, [names imported from it])`` for every absolute import in ``tree``.

    With ``run_time_only``, only what runs when the module is imported: not function bodies,
    nor ``if TYPE_CHECKING:`` blocks.
    """
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        if run_time_only:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                for statement in node.orelse:
                    visit(statement)
                return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in sys.stdlib_module_names and top != PACKAGE


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


@functools.cache
def _files_of(distribution: str) -> tuple[str, ...]:
    return tuple(str(f) for f in importlib.metadata.distribution(distribution).files or ())


def providers(module: str) -> frozenset[str]:
    """The installed distributions that provide ``module`` (normalised names).

    A namespace package (``llama_index``) comes from several; then the ones whose files hold the
    longest part of the module's path are its providers.
    """
    parts = module.split(".")
    candidates = _packages_distributions().get(parts[0], [])
    if len(candidates) > 1:
        for size in range(len(parts), 1, -1):
            prefix = "/".join(parts[:size])
            owners = [
                d
                for d in candidates
                if any(f == f"{prefix}.py" or f.startswith(f"{prefix}/") for f in _files_of(d))
            ]
            if owners:
                candidates = owners
                break
    return frozenset(_normalise(d) for d in candidates)


def _lazy_names(package: str) -> dict[str, str]:
    """A subpackage's ``_LAZY`` table (name -> module that defines it), read from its source."""
    init = SRC.joinpath(*package.split(".")[1:], "__init__.py")
    if not init.is_file():
        return {}
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and [ast.unparse(t) for t in node.targets] == ["_LAZY"]
            and isinstance(node.value, ast.Dict)
        ):
            table: dict[str, str] = ast.literal_eval(node.value)
            return table
    return {}


def package_extras(module: str) -> frozenset[str]:
    """The extras ``module`` of this package needs (the longest ``PACKAGE_EXTRAS`` entry)."""
    key = max((k for k in PACKAGE_EXTRAS if module == k or module.startswith(f"{k}.")), key=len)
    return PACKAGE_EXTRAS[key]


def uncovered(script: pathlib.Path, extras: typing.Iterable[str]) -> list[str]:
    """What ``script`` imports or uses that ``extras`` do not bring, one sentence each."""
    extras = sorted(extras)
    have = distributions(extras)
    problems = []
    for module, names in _imports(ast.parse(script.read_text(encoding="utf-8"))):
        if _third_party(module):
            owners = providers(module)
            if not owners:
                problems.append(
                    f"imports {module}, which is not installed here to tell its package"
                )
            elif not owners & have:
                problems.append(
                    f"imports {module} (from {', '.join(sorted(owners))}), which none of its "
                    f"extras {extras} brings"
                )
            for name in names:
                need = FEATURE_EXTRAS.get((module, name))
                if need is not None and _normalise(need) not in have:
                    problems.append(
                        f"uses {module}.{name}, which needs {need}; none of its extras "
                        f"{extras} brings {need}"
                    )
        elif module.split(".")[0] == PACKAGE:
            lazy = _lazy_names(module)
            for target in {module, *(lazy[n] for n in names if n in lazy)}:
                missing = sorted(package_extras(target) - set(extras))
                if missing:
                    problems.append(
                        f"uses {target}, which needs the extras {missing}; it declares {extras}"
                    )
    return [f"cookbook/{script.name}: {p}" for p in dict.fromkeys(problems)]


def test_there_are_cookbook_scripts() -> None:
    assert len(COOKBOOK) >= 5


@pytest.mark.parametrize("script", COOKBOOK, ids=lambda p: p.name)
def test_script_declares_the_extras_it_imports(script: pathlib.Path) -> None:
    problems = uncovered(script, declared_extras(script))
    assert not problems, "\n".join(problems)


def test_a_missing_extra_is_caught(tmp_path: pathlib.Path) -> None:
    original = (ROOT / "cookbook" / "quickstart.py").read_text(encoding="utf-8")
    script = tmp_path / "quickstart.py"
    script.write_text(original.replace("langchain,numpy,emulator", "langchain,emulator"))
    assert uncovered(script, declared_extras(script)) == [
        "cookbook/quickstart.py: uses langchain_core.vectorstores.InMemoryVectorStore, which "
        "needs numpy; none of its extras ['emulator', 'langchain'] brings numpy"
    ]
    script.write_text(original.replace("langchain,numpy,emulator", "numpy,emulator"))
    problems = uncovered(script, declared_extras(script))
    assert any("imports langchain_core.documents (from langchain-core)" in p for p in problems)
    assert any(
        f"uses {PACKAGE}.langchain, which needs the extras ['langchain']" in p for p in problems
    )


def test_lazy_imports_inside_functions_count(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "lazy.py"
    script.write_text(
        '# /// script\n# requires-python = ">=3.10"\n'
        '# dependencies = ["dashscope-embeddings[emulator]"]\n# ///\n'
        "def helper():\n    import numpy as np\n    return np\n"
    )
    [problem] = uncovered(script, declared_extras(script))
    assert "imports numpy (from numpy)" in problem


def test_a_bad_block_fails(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("print('no block')\n")
    with pytest.raises(AssertionError, match="no '# /// script' block"):
        declared_extras(script)
    script.write_text(
        '# /// script\n# requires-python = ">=3.10"\n'
        '# dependencies = ["dashscope-embeddings[no-such-extra]"]\n# ///\n'
    )
    with pytest.raises(AssertionError, match=r"extras \['no-such-extra'\] are not in"):
        declared_extras(script)
    script.write_text(
        '# /// script\n# requires-python = ">=3.10"\n# dependencies = ["numpy"]\n# ///\n'
    )
    with pytest.raises(AssertionError, match="is not dashscope-embeddings"):
        declared_extras(script)


def test_every_subpackage_is_in_the_table() -> None:
    subpackages = {f"{PACKAGE}.{p.parent.name}" for p in SRC.glob("*/__init__.py")}
    assert subpackages <= set(PACKAGE_EXTRAS)
    assert set(_optional()) >= {e for extras in PACKAGE_EXTRAS.values() for e in extras}


@pytest.mark.parametrize("package", sorted(k for k in PACKAGE_EXTRAS if k != PACKAGE))
def test_package_extras_match_the_package_imports(package: str) -> None:
    """What each module imports when it is imported comes with the extras the table names."""
    problems = []
    folder = SRC.joinpath(*package.split(".")[1:])
    files = sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]
    for path in files:
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        extras = package_extras(module)
        have = distributions(extras)
        for imported, _ in _imports(
            ast.parse(path.read_text(encoding="utf-8")), run_time_only=True
        ):
            if _third_party(imported) and not providers(imported) & have:
                problems.append(f"{module} imports {imported}, not brought by {sorted(extras)}")
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_lazy_names_are_read() -> None:
    assert _lazy_names(f"{PACKAGE}.langchain")["DashScopeSparseEmbeddings"] == (
        f"{PACKAGE}.langchain._qdrant"
    )
    assert package_extras(f"{PACKAGE}.langchain._qdrant") == {"langchain", "qdrant"}
    assert package_extras(f"{PACKAGE}.llama_index.sparse") == {"llama-index"}


def _quickstart_reader() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_script_extras", ROOT / "scripts" / "_script_extras.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", COOKBOOK, ids=lambda p: p.name)
def test_quickstart_sh_reads_the_same_extras(script: pathlib.Path) -> None:
    """scripts/quickstart.sh's reader agrees with the reference, with and without tomllib."""
    reader = _quickstart_reader()
    assert sorted(reader.extras(script)) == sorted(declared_extras(script))
    toml = reader.block(script.read_text(encoding="utf-8"))
    reference = script_metadata(script.read_text(encoding="utf-8"))
    assert reference is not None
    assert reader.dependencies_without_tomllib(toml) == reference["dependencies"]
