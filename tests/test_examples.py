"""The matrix's fewer Hypothesis examples (tests/examples.py): the counts ``make test`` draws are
the full ones, a fraction scales every count with a floor, and a wrong fraction is refused."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from tests import examples as examples_module

Load = Callable[[str | None], ModuleType]


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Iterator[Load]:
    """Load tests/examples.py again under a given ``WHATSAPP_TEST_EXAMPLES``; put it back after."""

    def loaded(value: str | None) -> ModuleType:
        if value is None:
            monkeypatch.delenv("WHATSAPP_TEST_EXAMPLES", raising=False)
        else:
            monkeypatch.setenv("WHATSAPP_TEST_EXAMPLES", value)
        return importlib.reload(examples_module)

    yield loaded
    monkeypatch.undo()
    importlib.reload(examples_module)


def test_without_the_setting_every_count_is_drawn_in_full(load: Load) -> None:
    module = load(None)
    assert module.SCALE == 1
    assert [module.examples(n) for n in (1, 40, 300, 2000)] == [1, 40, 300, 2000]


def test_a_fraction_scales_each_count_never_under_the_floor_nor_over_the_count(load: Load) -> None:
    module = load("0.2")
    assert module.examples(2000) == 400
    assert module.examples(300) == 60
    assert module.examples(101) == 21  # rounded up
    assert module.examples(40) == module.MINIMUM == 20
    assert module.examples(10) == 10


@pytest.mark.parametrize("value", ["0", "-0.5", "1.5", "all"])
def test_a_wrong_fraction_is_refused_with_the_setting_named(load: Load, value: str) -> None:
    with pytest.raises(ValueError, match="WHATSAPP_TEST_EXAMPLES"):
        load(value)
