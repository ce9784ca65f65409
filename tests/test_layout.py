"""The layout's promises (docs/architecture.md), checked on the code itself."""

import ast
from pathlib import Path

from portal.payments import PROVIDERS

PORTAL = Path(__file__).resolve().parents[1] / "portal"
ADAPTERS = ("payments", "routeros", "wireguard")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return modules


def test_the_product_never_imports_the_sandbox():
    offenders = [str(path.relative_to(PORTAL)) for path in PORTAL.rglob("*.py")
                 if any(m == "sandbox" or m.startswith("sandbox.") for m in imported_modules(path))]
    assert offenders == []


def test_adapters_touch_neither_flask_nor_the_database_nor_the_app():
    forbidden = ("flask", "flask_", "sqlalchemy", "portal.models", "portal.extensions", "portal.services",
                 "portal.blueprints")
    offenders = {str(path.relative_to(PORTAL)): sorted(m for m in imported_modules(path) if m.startswith(forbidden))
                 for adapter in ADAPTERS for path in (PORTAL / adapter).rglob("*.py")}
    assert {path: modules for path, modules in offenders.items() if modules} == {}


def test_no_provider_is_named_outside_its_adapter():
    """Pages, services and views ask the adapter; a provider's name lives in portal/payments/ only."""
    names = [name.lower() for name in PROVIDERS]
    skipped = (PORTAL / "payments", PORTAL / "translations", PORTAL / "static" / "vendor")
    offenders = []
    for path in PORTAL.rglob("*"):
        if path.suffix not in (".py", ".html", ".js", ".css", ".txt") or any(map(path.is_relative_to, skipped)):
            continue
        text = path.read_text(encoding="utf-8").lower()
        offenders += [f"{path.relative_to(PORTAL)}: {name}" for name in names if name in text]
    assert offenders == []
