"""Fingerprints: the reuse key of a component output.

fingerprint(node) = sha256(code hash, canonical parameters, parents' fingerprints). The code
hash covers the component's function and, transitively, the project code it references:
module-level functions, classes and plain constants of user modules (not the standard library
or installed packages), found through the code object's names, its globals and closures.
Source is hashed as a normalized AST (``ast.dump`` without positions), so whitespace, comments
and line moves change nothing, and files the function does not reference are never read.
Sources of data are fingerprinted by the content of their files.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import os
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pipelines.errors import PipelineError

__all__ = ["code_hash", "combine", "content_hash", "is_project_module", "params_hash"]

_SIMPLE = (int, float, str, bytes, bool, type(None))


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {sys.base_prefix, sys.prefix + os.sep + "lib"}
    return tuple(sorted(os.path.realpath(r) for r in roots if r))


def is_project_module(module: types.ModuleType | None) -> bool:
    """True for user code: a module with a source file outside the interpreter's libraries."""
    if module is None or module.__name__ in sys.builtin_module_names:
        return False
    path = getattr(module, "__file__", None)
    if not path:
        return False
    real = os.path.realpath(path)
    if "site-packages" in real or "dist-packages" in real:
        return False
    return not any(real.startswith(root + os.sep) for root in _library_roots())


def _normalized_source(obj: Any) -> str:
    """AST dump of ``obj``'s source (positions dropped), or its bytecode when no source."""
    try:
        src = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(src)
        return ast.dump(tree, include_attributes=False)
    except (OSError, TypeError, SyntaxError, IndentationError):
        code = getattr(obj, "__code__", None)
        if code is None:
            return repr(obj)
        return _code_repr(code)


def _code_repr(code: types.CodeType) -> str:
    consts = [(_code_repr(c) if isinstance(c, types.CodeType) else repr(c)) for c in code.co_consts]
    return repr((code.co_code.hex(), consts, code.co_names, code.co_varnames))


def _code_objects(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _code_objects(c)


def _names(obj: Any) -> set[str]:
    """Global names a function (or every method of a class) may reference."""
    names: set[str] = set()
    funcs: list[Any] = []
    if isinstance(obj, type):
        for v in vars(obj).values():
            f = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
            if isinstance(f, property):
                funcs.extend(x for x in (f.fget, f.fset, f.fdel) if x)
            elif inspect.isfunction(f):
                funcs.append(f)
        names.update(b.__name__ for b in obj.__bases__)
    else:
        funcs.append(obj)
    for f in funcs:
        code = getattr(f, "__code__", None)
        if code is not None:
            for c in _code_objects(code):
                names.update(c.co_names)
    return names


def _globals_of(obj: Any) -> Mapping[str, Any]:
    if isinstance(obj, type):
        mod = sys.modules.get(obj.__module__)
        return vars(mod) if mod else {}
    return getattr(obj, "__globals__", {}) or {}


def _is_simple_constant(v: Any, depth: int = 0) -> bool:
    if isinstance(v, _SIMPLE):
        return True
    if depth > 3:
        return False
    if isinstance(v, (list, tuple, frozenset, set)):
        return len(v) <= 1000 and all(_is_simple_constant(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return len(v) <= 1000 and all(
            _is_simple_constant(k, depth + 1) and _is_simple_constant(x, depth + 1) for k, x in v.items()
        )
    return False


def _canonical(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return "NaN"
    if isinstance(v, (set, frozenset)):
        return sorted((_canonical(x) for x in v), key=repr)
    if isinstance(v, (list, tuple)):
        return [_canonical(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _canonical(x) for k, x in sorted(v.items(), key=lambda kv: repr(kv[0]))}
    if isinstance(v, bytes):
        return {"bytes": hashlib.sha256(v).hexdigest()}
    if isinstance(v, _SIMPLE):
        return v
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if callable(v):
        return {"code": code_hash(v)}
    if hasattr(v, "__dataclass_fields__"):
        return {"dataclass": type(v).__qualname__,
                "fields": {k: _canonical(getattr(v, k)) for k in v.__dataclass_fields__}}
    raise PipelineError(
        f"cannot fingerprint parameter value {v!r} of type {type(v).__name__}: use plain values "
        "(numbers, strings, lists, dicts, dataclasses) or functions as component parameters"
    )


def params_hash(params: Mapping[str, Any]) -> str:
    """Hash of parameters by value (order of keys irrelevant)."""
    blob = json.dumps(_canonical(dict(params)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _is_project_object(v: Any) -> bool:
    if isinstance(v, types.ModuleType):
        return is_project_module(v)
    if inspect.isfunction(v) or inspect.isclass(v):
        return is_project_module(sys.modules.get(getattr(v, "__module__", "") or ""))
    return False


def code_hash(fn: Callable[..., Any]) -> str:
    """Hash of ``fn``'s normalized source and of the project code it references, transitively."""
    fn = inspect.unwrap(fn) if inspect.isfunction(fn) else fn
    if isinstance(fn, functools.partial):
        return hashlib.sha256(
            (code_hash(fn.func) + params_hash({"args": list(fn.args), "kw": dict(fn.keywords)})).encode()
        ).hexdigest()
    seen: dict[str, str] = {}
    stack: list[Any] = [fn]
    visited: set[int] = set()
    parts: list[str] = []
    while stack:
        obj = stack.pop()
        if id(obj) in visited:
            continue
        visited.add(id(obj))
        key = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
        seen[key] = _normalized_source(obj)
        g = _globals_of(obj)
        names = _names(obj)
        cells = []
        closure = getattr(obj, "__closure__", None) or ()
        for cell in closure:
            try:
                cells.append(cell.cell_contents)
            except ValueError:
                continue
        for i, value in enumerate(cells):
            if _is_project_object(value):
                stack.append(value)
            elif _is_simple_constant(value):
                parts.append(f"{key}:cell{i}={json.dumps(_canonical(value), sort_keys=True)}")
            elif callable(value) and not inspect.isbuiltin(value):
                parts.append(f"{key}:cell{i}={getattr(value, '__qualname__', type(value).__name__)}")
        for name in sorted(names):
            if name not in g:
                continue
            value = g[name]
            if isinstance(value, types.ModuleType):
                if is_project_module(value):  # module.attr references: follow the attrs named
                    for attr in sorted(names):
                        sub = getattr(value, attr, None)
                        if _is_project_object(sub) and not isinstance(sub, types.ModuleType):
                            stack.append(sub)
                        elif sub is not None and _is_simple_constant(sub):
                            parts.append(f"{value.__name__}.{attr}={json.dumps(_canonical(sub), sort_keys=True)}")
                continue
            if _is_project_object(value):
                stack.append(value)
            elif _is_simple_constant(value) and not isinstance(value, type):
                parts.append(f"{key}:{name}={json.dumps(_canonical(value), sort_keys=True)}")
    blob = json.dumps({"code": seen, "refs": sorted(parts)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def content_hash(paths: Iterable[str | os.PathLike]) -> str:
    """Hash of the bytes of the given files (their names relative to nothing: content only)."""
    h = hashlib.sha256()
    files = sorted(Path(p) for p in paths)
    if not files:
        raise PipelineError("a data source matched no files: check the source path or glob pattern")
    for path in files:
        fh = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    fh.update(block)
        except OSError as e:
            raise PipelineError(f"cannot read data source file {path}: {e.strerror}; check the path") from e
        h.update(fh.digest())
    return h.hexdigest()


def combine(kind: str, code: str, params: str, parents: Mapping[str, str], extra: str = "") -> str:
    """The fingerprint of a node from its parts (parents keyed by input name)."""
    blob = json.dumps(
        {"kind": kind, "code": code, "params": params, "parents": dict(sorted(parents.items())), "extra": extra},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()
