"""Pasted copies of the course's own implementations: a structural comparison of a student's exercise cell with the
reference implementations that answer it (tools/grading/references.py), for the instructor's review.

The release ships ``utils``, readable, because later lessons run on it (docs/instructor-guide.md says why it is not
hidden). Calling or importing a reference is caught by the scan (tools/grading/scan.py); this catches the copy:
each function or class the cell defines is compared with each reference, both reduced to the shape of their syntax
tree: docstrings, comments, annotations, formatting and every name the code chooses itself (functions, arguments,
variables) are dropped, while the library calls (attributes such as ``binary_cross_entropy_with_logits``, ``sum``),
operators and numbers stay. Two shapes whose similarity (difflib's ratio of their token sequences) reaches
:data:`COPY_SIMILARITY` are flagged in the gradebook's review column; the grade itself is left alone, because a
student who writes the textbook answer writes code close to the course's too: the flag asks for a reading.
"""
from __future__ import annotations

import ast
import difflib
from functools import cache

import nbformat

from tools.build_notebooks import CELL_METADATA_KEY, BuiltLesson
from tools.grading.plan import find_student_cell
from tools.grading.references import REFERENCE_IMPLEMENTATIONS
from tools.grading.results import Flag, NotebookResult
from utils.paths import REPO_ROOT

COPY_SIMILARITY = 0.85
# Below this many tokens a definition is too small to compare (a bare `return x`).
MIN_TOKENS = 8


class _Shape(ast.NodeVisitor):
    """The tokens of a definition's shape: node types, library attribute names, operators, numbers; the names the
    code chose itself become their order of first appearance (so renaming changes nothing)."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.names: dict[str, str] = {}

    def _own(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self.tokens.append(type(node).__name__)
            self._own(node.name)
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body = body[1:]  # the docstring
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for argument in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                    self.tokens.append(self._own(argument.arg))
                for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
                    self.visit(default)
            else:
                for base in node.bases:
                    self.visit(base)
            for statement in body:
                self.visit(statement)
            return
        if isinstance(node, ast.Name):
            self.tokens.append(node.id if node.id in _LIBRARY_NAMES else self._own(node.id))
            return
        if isinstance(node, ast.Attribute):
            self.visit(node.value)
            self.tokens.append(f".{node.attr}")
            return
        if isinstance(node, ast.Constant):
            self.tokens.append(repr(node.value) if not isinstance(node.value, str) else "str")
            return
        if isinstance(node, ast.arg | ast.Import | ast.ImportFrom):
            return
        self.tokens.append(type(node).__name__)
        for field, value in ast.iter_fields(node):
            if field in ("annotation", "returns", "type_comment", "ctx"):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    self.visit(child)


# Names that are not the code's own choice: modules and builtins keep their name in the shape.
_LIBRARY_NAMES = frozenset({"torch", "F", "nn", "np", "numpy", "math", "scipy", "len", "range", "sum", "min", "max",
                            "abs", "float", "int", "zip", "enumerate", "super", "tuple", "list", "dict", "sorted"})


def shape(node: ast.AST) -> list[str]:
    """The shape tokens of one definition."""
    visitor = _Shape()
    visitor.visit(node)
    return visitor.tokens


def _definitions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]


@cache
def reference_shape(dotted: str) -> tuple[str, ...]:
    """The shape of a reference implementation, read from its source file (nothing is imported)."""
    module, _, name = dotted.rpartition(".")
    path = REPO_ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name)
    return tuple(shape(node))


def similarity(a: list[str] | tuple[str, ...], b: list[str] | tuple[str, ...]) -> float:
    return difflib.SequenceMatcher(None, list(a), list(b), autojunk=False).ratio()


def pasted_references(exercise: str, source: str) -> list[Flag]:
    """A flag per definition of the cell whose shape is a near copy of a reference implementation of ``exercise``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    flags = []
    for definition in _definitions(tree):
        own = shape(definition)
        if len(own) < MIN_TOKENS:
            continue
        for dotted in REFERENCE_IMPLEMENTATIONS.get(exercise, ()):
            score = similarity(own, reference_shape(dotted))
            if score >= COPY_SIMILARITY:
                flags.append(Flag(exercise, definition.lineno,
                                  f"{definition.name} is a near copy of the course's {dotted} "
                                  f"(structural similarity {score:.2f}): read it"))
    return flags


def flag_pasted_copies(result: NotebookResult, notebook: nbformat.NotebookNode, built: BuiltLesson) -> None:
    """Add to ``result.flags`` every exercise cell of ``notebook`` that is a near copy of a reference."""
    stubs = {cell.metadata[CELL_METADATA_KEY]["exercise"]: cell.source for cell in built.exercise.cells
             if cell.metadata.get(CELL_METADATA_KEY, {}).get("role") == "exercise"}
    for number, stub in stubs.items():
        source = find_student_cell(notebook, number, stub)
        if source is not None:
            result.flags += [flag for flag in pasted_references(number, source) if flag not in result.flags]
