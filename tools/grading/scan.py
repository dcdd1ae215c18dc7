"""A static look at students' exercise cells (their AST): lines that reach for introspection or the operating
system, and uses of the course's reference implementations. Nothing here runs student code."""
from __future__ import annotations

import ast

from tools.grading.results import Flag

# Modules whose import in an exercise cell is worth the instructor's eye: introspection, the interpreter's
# machinery, processes, signals, threads and the network.
FLAGGED_MODULES = frozenset({"inspect", "gc", "ctypes", "importlib", "subprocess", "socket", "signal", "threading",
                             "_thread", "multiprocessing", "builtins", "pty", "sysconfig", "site", "resource"})
# Attributes that read or rewrite frames, code and hooks, or act on processes.
FLAGGED_ATTRIBUTES = frozenset({
    "_getframe", "settrace", "setprofile", "f_back", "f_locals", "f_globals", "tb_frame", "gi_frame", "cr_frame",
    "__globals__", "__closure__", "__code__", "__subclasses__", "__builtins__", "__dict__", "modules",
    "kill", "killpg", "fork", "forkpty", "system", "popen", "execv", "execve", "execvp", "spawnv", "_exit",
    "setrlimit", "chdir", "REPO_ROOT", "showtraceback", "input_transformers_cleanup", "input_transformers_post",
    "reload"})
FLAGGED_NAMES = frozenset({"get_ipython", "__import__", "exec", "eval", "compile", "globals", "breakpoint"})
FLAGGED_TEXT = ("/proc", "/dev/fd", "/sys/")


def _imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module]
    return []


def flag_lines(exercise: str, source: str) -> list[Flag]:
    """Every line of an exercise cell using one of the flagged modules, attributes, names or paths (a cell
    that does not parse is not flagged: it is graded as an error)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    flags = set()
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        for module in _imported_modules(node):
            if module.split(".")[0] in FLAGGED_MODULES:
                flags.add(Flag(exercise, line, f"import {module}"))
        if isinstance(node, ast.Attribute) and node.attr in FLAGGED_ATTRIBUTES:
            flags.add(Flag(exercise, line, f".{node.attr}"))
        elif isinstance(node, ast.Name) and node.id in FLAGGED_NAMES:
            flags.add(Flag(exercise, line, node.id))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            flags |= {Flag(exercise, line, f"the path {text!r}") for text in FLAGGED_TEXT if text in node.value}
    return sorted(flags, key=lambda flag: (flag.line, flag.what))


def reference_uses(source: str, references: list[str]) -> list[str]:
    """The reference implementations (dotted names) an exercise cell imports or reaches as an attribute
    (``from utils.vae import vae_loss``, ``utils.vae.vae_loss``); the student's own names do not count."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    used = set()
    for reference in references:
        module, _, name = reference.rpartition(".")
        for node in ast.walk(tree):
            imported = isinstance(node, ast.ImportFrom) and node.module == module \
                and any(alias.name in (name, "*") for alias in node.names)
            if imported or (isinstance(node, ast.Attribute) and node.attr == name):
                used.add(reference)
    return sorted(used)
