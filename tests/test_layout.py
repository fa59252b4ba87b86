"""The package's rooms: data flows one way, so no module imports one that imports it back.

Every import between the package's own modules counts, including those inside functions (an
import made "on use" is still a dependency)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import django_whatsapp

PACKAGE = Path(django_whatsapp.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(name: str) -> bool:
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                for alias in node.names:
                    child = f"{target}.{alias.name}"
                    edges.add(child if _exists(child) else target)
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                edges.update(n for n in names if n and n.startswith("django_whatsapp."))
        edges.discard(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_lazy_imports() -> None:
    graph = import_graph()
    # services imports the task module only on use (it needs a task framework): still an edge.
    assert "django_whatsapp.tasks" in graph["django_whatsapp.services"]
    assert "django_whatsapp.sending" in graph["django_whatsapp.bulk"]
    assert "django_whatsapp.admin.display" in graph["django_whatsapp.admin.messages"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            "django_whatsapp.services",
            [
                "send_message",
                "send_text",
                "send_media",
                "send_template",
                "refresh_status",
                "apply_status",
                "send_bulk",
                "ReportMismatch",
            ],
        ),
        ("django_whatsapp.models", ["Template", "Message", "StatusEvent"]),
        ("django_whatsapp.signals", ["message_sending", "message_sent", "status_changed"]),
        ("django_whatsapp.exceptions", ["WhatsAppError", "RateLimited", "TransportError"]),
    ],
)
def test_documented_names_stay_importable(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(module)
    assert [n for n in names if not hasattr(loaded, n)] == []


def test_admin_is_a_package_of_screens() -> None:
    screens = {p.stem for p in (PACKAGE / "admin").glob("*.py")}
    assert {"messages", "templates", "conversations", "bulk", "actions", "display"} <= screens
    assert not list(PACKAGE.glob("admin_*.py"))
