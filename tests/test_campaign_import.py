"""Creating a campaign is all or nothing (SPEC 13): a CSV file that cannot be read to its end
raises ``ValidationError`` (the command: ``CommandError``) and leaves no campaign, message or
rejected row behind, even when earlier batches were already written; a bad row is a rejected
row, never an exception; the reasons are stored in English and read in the reader's language;
a CSV row's other cells go with its message (the export lists them); a campaign can be
duplicated, or sent again to the recipients that failed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import translation

from django_whatsapp import optout, services
from django_whatsapp.campaigns import audience, csvfile, rows
from django_whatsapp.campaigns.control import campaign_export
from django_whatsapp.campaigns.rows import REPEATED_REASON, reason_in_words
from django_whatsapp.models import Campaign, CampaignRejection, Message, Template

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = "".join(f"+3805000{n:05d},Name {n}\n" for n in range(1, 8))


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of two rows: a file that breaks on its last lines has had batches written."""
    monkeypatch.setattr(rows, "BATCH_SIZE", 2)
    monkeypatch.setattr(audience, "BATCH_SIZE", 2)


def nothing_stored() -> bool:
    return not (
        Campaign.objects.exists() or Message.objects.exists() or CampaignRejection.objects.exists()
    )


def from_text(text: str, **kwargs: Any) -> Campaign:
    return services.campaign_from_csv("Import", io.StringIO(text, newline=""), text="Hi", **kwargs)


@pytest.mark.parametrize(
    ("tail", "says"),
    [
        ('+380500000099,"never closed\n', "never closed"),
        ('+380500000099,"closed"then text\n', "Line 9 of the CSV file is not valid CSV"),
        (f"+380500000099,{'x' * 140_000}\n", "Line 9 of the CSV file has a field longer than"),
        (f'+380500000099,"{"x" * 300_000}"\n', "Line 9 of the CSV file is longer than"),
    ],
    ids=["unclosed quote", "text after a quote", "oversized field", "line too long"],
)
def test_a_file_that_cannot_be_read_to_its_end_leaves_nothing(tail: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        from_text("number,name\n" + GOOD + tail)
    assert nothing_stored()


def test_bytes_that_are_not_utf8_leave_nothing_and_the_command_says_so(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(("number,name\n" + GOOD).encode() + "+380500000099,Zoë\n".encode("latin-1"))
    with (
        csvfile.Utf8Lines(path.open("rb")) as file,
        pytest.raises(ValidationError, match="not UTF-8 text from line 9 on"),
    ):
        services.campaign_from_csv("Import", file, text="Hi")
    assert nothing_stored()
    # A text file decodes ahead of the lines read: the error names a line at or before.
    with (
        path.open(newline="", encoding="utf-8-sig") as text,
        pytest.raises(ValidationError, match=r"not UTF-8 text from line [1-9] on"),
    ):
        services.campaign_from_csv("Import", text, text="Hi")
    assert nothing_stored()

    with pytest.raises(CommandError, match=r"not UTF-8 text from line 9 on.* Nothing was stored"):
        call_command("whatsapp_campaign", "create", "--name", "N", "--text", "Hi", "--csv", path)
    assert nothing_stored()


def test_the_command_refuses_bad_quoting_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "quotes.csv"
    path.write_text("number,name\n" + GOOD + '+380500000099,"oops\n', encoding="utf-8")
    with pytest.raises(CommandError, match="never closed"):
        call_command("whatsapp_campaign", "create", "--name", "N", "--text", "Hi", "--csv", path)
    assert nothing_stored()


def test_an_error_half_way_through_an_iterable_leaves_nothing() -> None:
    def recipients() -> Iterator[str]:
        yield from [f"+3805000000{n:02d}" for n in range(10)]
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        services.create_campaign("Broken", recipients(), text="Hi")
    assert nothing_stored()


def test_a_header_with_too_many_columns_is_refused() -> None:
    header = ",".join(["number", *(f"c{n}" for n in range(csvfile.MAX_COLUMNS))])
    with pytest.raises(ValidationError, match=r"101 columns; at most 100 are read"):
        from_text(header + "\n+380500000001\n")
    assert nothing_stored()


def test_bad_rows_are_rejected_rows_not_errors(template: Template) -> None:
    wide = "+380500000009," + ",".join(["x"] * csvfile.MAX_COLUMNS)
    text = (
        "phone,name,order\n"
        "+380500000001,Ann,A-1\n"
        "+3805000\x0000002,Bob,B-2\n"  # a NUL in the number
        "+380500000003,Cy\x00,C-3\n"  # a NUL in a parameter
        "+380500000004,,D-4\n"  # an empty parameter
        f"{wide}\n"  # more columns than any file may have
        "+380500000006,Eve,E-6\n"
    )
    campaign = services.campaign_from_csv(
        "Rows",
        io.StringIO(text, newline=""),
        number_column="phone",
        param_columns=["name", "order"],
        template=template,
        header="https://cdn.example.com/h.png",
    )
    assert (campaign.rows_read, campaign.recipients_count, campaign.rejected_count) == (6, 2, 4)
    reasons = dict(campaign.rejections.values_list("line", "reason"))
    assert reasons[3] == reasons[4] == csvfile.UNSTORABLE
    assert reasons[5] == (
        "The column “name” is empty: the template's placeholder {{1}} needs a value."
    )
    assert reasons[6] == f"The row has {csvfile.MAX_COLUMNS + 1} columns; at most 100 are read."
    # The bad value is kept, its NUL written as an escape.
    assert campaign.rejections.get(line=3).value == "+3805000\\x0000002,Bob,B-2"


def test_a_lone_surrogate_from_an_iterable_is_a_rejected_row(template: Template) -> None:
    campaign = services.create_campaign(
        "Surrogates",
        [("+380500000001", ["Ann", "A-1"]), ("+380500000002", ["B\ud800b", "B-2"])],
        template=template,
        header="https://cdn.example.com/h.png",
    )
    assert (campaign.recipients_count, campaign.rejected_count) == (1, 1)
    assert campaign.rejections.get().reason == csvfile.UNSTORABLE


def test_reasons_are_stored_in_english_and_read_in_the_readers_language() -> None:
    with translation.override("ru"):
        campaign = services.create_campaign(
            "Languages", ["+380500000001", "+380500000001", "x", "+" + "1" * 25], text="Hi"
        )
    stored = dict(campaign.rejections.values_list("line", "reason"))
    assert stored[2] == REPEATED_REASON
    assert stored[4] == "The recipient has 25 digits; at most 20 are allowed."
    with translation.override("ru"):
        shown = {line: reason_in_words(reason) for line, reason in stored.items()}
    assert shown[2] == "Этот номер указан несколько раз: он получит одно сообщение."
    assert shown[3] != stored[3]  # "not a phone number", translated by the catalogue
    assert shown[4] == "Номер получателя слишком длинный: цифр — 25, допустимо не больше 20."
    with translation.override("uk"):
        assert reason_in_words(stored[2]) == (
            "Цей номер указано кілька разів: він отримає одне повідомлення."
        )
    # Text it does not know is shown as it is.
    assert reason_in_words("Something else") == "Something else"


def test_a_csv_rows_other_cells_go_with_its_message_and_the_export_lists_them() -> None:
    text = "name,phone,status\nAnn,+380500000001,gold\nBob,+380500000002,silver\n"
    campaign = services.campaign_from_csv(
        "Cells", io.StringIO(text, newline=""), number_column="phone", text="Hi"
    )
    stored = Message.objects.get(campaign=campaign, destination_addr="380500000001")
    assert stored.metadata == {"csv": {"name": "Ann", "status": "gold"}}
    exported = list(csv.reader(io.StringIO("".join(_lines(campaign)))))
    assert exported[0][-2:] == ["name", "status (csv)"]
    assert [row[-2:] for row in exported[1:]] == [["Ann", "gold"], ["Bob", "silver"]]


def _lines(campaign: Campaign) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in campaign_export(campaign):
        writer.writerow(row)
    yield buffer.getvalue()


def test_duplicate_and_send_again_to_the_failed(template: Template) -> None:
    text = "phone,name,order\n+380500000001,Ann,A-1\n+380500000002,Bob,B-2\n+380500000003,Cy,C-3\n"
    first = services.campaign_from_csv(
        "Orders",
        io.StringIO(text, newline=""),
        number_column="phone",
        param_columns=["name", "order"],
        template=template,
        header="https://cdn.example.com/h.png",
    )
    Message.objects.filter(campaign=first, destination_addr="380500000002").update(
        status=Message.Status.FAILED
    )
    Message.objects.filter(campaign=first, destination_addr="380500000003").update(
        status=Message.Status.NOT_SENT, error_name="Campaign cancelled"
    )
    optout.opt_out("380500000001", reason="asked")

    again = services.copy_campaign(first, "Orders again", only_failed=True)
    assert (again.status, again.template_id, again.recipients_count) == ("draft", template.pk, 1)
    copy = Message.objects.get(campaign=again)
    assert copy.destination_addr == "380500000002"
    assert copy.template_params == {
        "body": ["Bob", "B-2"],
        "header": "https://cdn.example.com/h.png",
    }
    assert copy.metadata == {"csv": {"name": "Bob", "order": "B-2"}}

    twin = services.copy_campaign(first, "Orders twin")
    # Everyone again, but the recipient who opted out since is a rejected row.
    assert (twin.rows_read, twin.recipients_count, twin.rejected_count) == (3, 2, 1)


@pytest.fixture
def template(db: Any) -> Template:
    return Template.objects.create(
        name="order_ready",
        namespace="ns",
        body="Hello {{1}}, your order {{2}} is ready.",
        header_type=Template.HeaderType.IMAGE,
    )
