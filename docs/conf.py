"""Sphinx configuration: ``make docs`` builds docs/_build/html, warnings are errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import django
from sphinx.util import logging as sphinx_logging

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# autodoc imports the models and services: any settings that load the app will do.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

import django_whatsapp  # noqa: E402 - after django.setup()

project = "django-whatsapp"
author = "django-whatsapp developers"
copyright = "django-whatsapp developers"
release = django_whatsapp.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build"]
nitpicky = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}
# No network at build time: intersphinx inventories are not fetched, so links stay plain.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

html_theme = "alabaster"
html_theme_options = {
    "description": "WhatsApp through DecisionTelecom, from Django",
    "fixed_sidebar": True,
    # Room for 90-column code blocks (the settings report, the rank ladder).
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_static_path: list[str] = []


# -- the docs cover what the code has -------------------------------------------------------------
# Each page below must name every item of its kind on a line of its own (a definition term or a
# section title), so a new setting, signal, command or error cannot ship undocumented.


def _documented_terms(page: Path) -> set[str]:
    return {
        line.strip().strip("`")
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("``") and line.rstrip().endswith("``")
    }


def _what_the_code_has() -> dict[str, set[str]]:
    from django.dispatch import Signal

    from django_whatsapp import exceptions, signals
    from django_whatsapp.conf import DEFAULTS

    commands = ROOT / "django_whatsapp" / "management" / "commands"
    return {
        "configuration.rst": set(DEFAULTS),
        "signals.rst": {n for n, v in vars(signals).items() if isinstance(v, Signal)},
        "commands.rst": {p.stem for p in commands.glob("*.py") if not p.stem.startswith("_")},
        "troubleshooting.rst": {
            n
            for n, v in vars(exceptions).items()
            if isinstance(v, type) and issubclass(v, exceptions.WhatsAppError)
        },
    }


def _check_coverage(app: Any, env: Any) -> None:
    logger = sphinx_logging.getLogger("django_whatsapp.docs")
    for page, names in _what_the_code_has().items():
        missing = sorted(names - _documented_terms(Path(app.srcdir) / page))
        for name in missing:
            logger.warning(
                "%s does not document %s", page, name, location=page.removesuffix(".rst")
            )


def setup(app: Any) -> dict[str, Any]:
    app.connect("env-check-consistency", _check_coverage)
    return {"parallel_read_safe": True}
