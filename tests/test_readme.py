"""README.rst is the front door: it must render (PyPI refuses a README with errors)."""

from __future__ import annotations

from pathlib import Path

import docutils.core
import docutils.utils
import pytest

README = Path(__file__).resolve().parents[1] / "README.rst"


def test_readme_renders_without_warnings() -> None:
    try:
        docutils.core.publish_doctree(
            README.read_text(encoding="utf-8"),
            settings_overrides={"report_level": 2, "halt_level": 2},
        )
    except docutils.utils.SystemMessage as error:
        pytest.fail(f"README.rst does not render cleanly: {error}")


def test_readme_starts_with_the_two_commands() -> None:
    first_screen = README.read_text(encoding="utf-8")[:800]
    assert "make demo" in first_screen
    assert "make test" in first_screen


def test_readme_is_a_front_door_and_its_pictures_exist() -> None:
    """The reference lives in docs/; the README stays short, and shows pictures that exist."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 350
    images = [line for line in text.splitlines() if line.startswith(".. image::")]
    pictures = [line.split("::", 1)[1].strip() for line in images]
    assert "docs/img/campaign.png" in pictures
    for picture in pictures:
        assert (README.parent / picture).is_file(), picture
