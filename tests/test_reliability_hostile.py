"""Hostile callbacks: whatever a sender puts in a request, the endpoint never answers 5xx, and
each answer is the right one for its input.

More than 10,000 generated requests (Hypothesis, ``max_examples`` split over the strategies
below) go through the whole stack with Django's test client, which re-raises any exception
the view lets through. Each must be answered with one of the documented statuses and a JSON
body, and the answer must agree with what was written: a refusal (4xx) writes no event and leaves
the message as it was; a 200 writes exactly the events it says it applied and reports the
message's status. Where the input class decides the answer (out-of-range ids, top-level arrays,
other methods), the exact status is asserted. Then, by example, one request of each input class on
the callback and on the inbound endpoint, with its exact answer and what it wrote;

- a body over ``CALLBACK_MAX_BYTES`` is refused before it is parsed: not one byte of it is read
  (a counting ``wsgi.input``), so an over-limit body that is also malformed is 413, not 400; a
  ``Content-Length`` smaller than the body means only that many bytes are ever read;
- a report can only touch the message its URL was signed for;
- signatures are checked against every configured secret (rotation), in any order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_from_bytes, urlencode, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_whatsapp import inbound
from django_whatsapp.models import InboundReport, Message, StatusEvent
from django_whatsapp.signing import callback_url, sign, verify
from tests.conftest import CALLBACK_SECRET
from tests.examples import examples

pytestmark = pytest.mark.django_db

Status = Message.Status
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
#: What the endpoint may answer (SPEC section 8, README): never a 5xx.
DOCUMENTED = {200, 400, 403, 404, 405, 413, 415}
SMALL_LIMIT = 1024


#: How many generated requests each fuzz test makes; together at least 10,000.
PLAN = {
    "wrong_types_and_shapes": 2000,
    "huge_numbers": 1200,
    "deep_nesting": 800,
    "invalid_utf8_bytes": 1500,
    "top_level_arrays_and_scalars": 800,
    "control_characters": 1500,
    "oversized_bodies": 500,
    "random_content_types": 1500,
    "query_strings": 800,
    "meta_shaped_junk": 800,
    "other_methods": 300,
}


def fuzz(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> None:
    """Run ``check`` on ``PLAN[name]`` generated values and prove that many really ran."""
    ran = 0

    @hypothesis_settings(
        max_examples=examples(PLAN[name]),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(strategy)
    def generated(value: Any) -> None:
        nonlocal ran
        ran += 1
        check(value)

    generated()
    assert ran >= examples(PLAN[name])


def test_the_plan_makes_over_ten_thousand_requests() -> None:
    assert sum(PLAN.values()) >= 10_000


class Target:
    """A message with its signed callback path, and a client that posts anything to it."""

    def __init__(self) -> None:
        self.message = Message.objects.create(
            source_addr="TestCo",
            destination_addr="380631234567",
            text="hi",
            status=Status.ACCEPTED,
            provider_message_id=554,
        )
        url = callback_url(self.message.uuid)
        assert url is not None
        self.path = urlsplit(url).path
        self.client = Client()

    def send(
        self,
        body: bytes = b"",
        content_type: str = JSON,
        *,
        method: str = "POST",
        query: str = "",
        **environ: Any,
    ) -> Any:
        events = StatusEvent.objects.filter(message=self.message)
        before = (events.count(), self.current_status())
        response = self.client.generic(
            method, self.path, body, content_type, QUERY_STRING=query, **environ
        )
        assert response.status_code in DOCUMENTED, (response.status_code, response.content[:300])
        if method == "HEAD":
            assert response.status_code == 405
        else:
            assert response["Content-Type"] == JSON
            answer = json.loads(response.content)
            assert isinstance(answer["ok"], bool)
            assert answer["ok"] is (response.status_code == 200)
        after = (events.count(), self.current_status())
        if response.status_code == 200 and method != "OPTIONS":
            # A report was applied: exactly the events it says, and the status it answers.
            assert after[0] == before[0] + answer["applied"], (answer, before, after)
            assert answer["status"] == after[1]
        else:
            # A refusal writes nothing.
            assert after == before, (response.status_code, response.content[:300])
        return response

    def current_status(self) -> str:
        return str(Message.objects.values_list("status", flat=True).get(pk=self.message.pk))


@pytest.fixture
def target(settings: Any) -> Target:
    return Target()


def as_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


# -- strategies --------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)
#: Something that could pass for a status or an id, or nearly.
near_misses = st.sampled_from(
    [0, 1, 7, 8, -1, "1", "01", " 1 ", "delivered", "DELIVERED", "read", "seen ", "draft",
     "accepted", "not_sent", "", " ", True, False, None, 1.0, "1e0", "0x1", "\u0661", "\u00b2",
     [], {}]
)  # fmt: skip
fields = st.one_of(json_values, near_misses)
reports = st.fixed_dictionaries(
    {},
    optional={"message_id": fields, "status": fields, "statuses": fields, "entry": fields},
).flatmap(
    lambda known: st.dictionaries(st.text(max_size=10), json_values, max_size=3).map(
        lambda extra: {**extra, **known}
    )
)
CONTENT_TYPES = [
    JSON,
    FORM,
    "multipart/form-data; boundary=BoUnDaRy",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "text/plain",
    "application/xml",
    "application/json; charset=utf-16",
    "application/json; charset=bogus-charset",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=nope",
    "application/octet-stream",
    "",
    "*/*",
    "application/json, text/html",
]
content_types = st.sampled_from(CONTENT_TYPES) | st.text(
    st.characters(min_codepoint=32, max_codepoint=126), max_size=40
)


# -- 10,000+ generated requests ----------------------------------------------------------------


def test_wrong_types_and_shapes(target: Target) -> None:
    def check(case: tuple[dict[str, Any], str]) -> None:
        report, encoding = case
        if encoding == "json":
            target.send(as_json(report))
            return
        flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in report.items()}
        encoded = urlencode(flat, errors="surrogatepass")
        if encoding == "form":
            target.send(encoded.encode(), FORM)
        elif encoding == "query":
            target.send(query=encoded)
        else:
            target.send(method="GET", query=encoded)

    encodings = st.sampled_from(["json", "form", "query", "get"])
    fuzz("wrong_types_and_shapes", st.tuples(reports, encodings), check)


huge_numbers = st.one_of(
    st.integers(min_value=2**63 - 5, max_value=2**64 + 5).map(str),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),  # past int's 4300 digits
    st.floats().map(repr).map(lambda r: NON_FINITE.get(r, r)),
    st.sampled_from(["1e999999", "-1e999999", "1e-999999", "-0", "0.0", "1E400", "1.5", "7.0"]),
)
NON_FINITE = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def test_huge_numbers(target: Target) -> None:
    def check(case: tuple[str, str, bool]) -> None:
        message_id, status, in_query = case
        if in_query:
            response = target.send(
                method="GET", query=urlencode({"message_id": message_id, "status": status})
            )
        else:
            response = target.send(f'{{"message_id": {message_id}, "status": {status}}}'.encode())
        # Only the message's own id with a real status is applied; any other number (out of
        # range, negative, fractional, past int's digits) is a 400 that writes nothing.
        valid = message_id == "554" and status == '"sent"' and not in_query
        assert response.status_code == (200 if valid else 400), response.content[:300]

    statuses = huge_numbers | st.just('"sent"')
    fuzz("huge_numbers", st.tuples(huge_numbers, statuses, st.booleans()), check)


def test_deep_nesting(target: Target, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_MAX_BYTES": 400_000}

    def check(case: tuple[int, str]) -> None:
        depth, shape = case
        nested = "[" * depth + "]" * depth
        if shape == "list":
            body = nested
        elif shape == "dict":
            body = '{"a":' * depth + "1" + "}" * depth
        elif shape == "status":
            body = f'{{"message_id": 554, "status": {nested}}}'
        elif shape == "statuses":
            body = '{"statuses": [' + '{"status": ' * depth + '"sent"' + "}" * depth + "]}"
        else:
            body = '{"status": ' + "[" * depth
        target.send(body.encode())

    # Around the parser's recursion limit, and far past it.
    depths = st.integers(min_value=1, max_value=2500) | st.sampled_from([10_000, 40_000])
    shapes = st.sampled_from(["list", "dict", "status", "statuses", "unbalanced"])
    fuzz("deep_nesting", st.tuples(depths, shapes), check)


def test_invalid_utf8_bytes(target: Target) -> None:
    def check(case: tuple[bytes, str]) -> None:
        body, content_type = case
        if content_type == "query":
            target.send(method="GET", query=quote_from_bytes(body, safe="=&"))
        else:
            target.send(body, content_type)

    bodies = st.binary(max_size=400) | st.tuples(st.binary(max_size=20), st.binary(max_size=8)).map(
        lambda parts: b'{"message_id": 554, "status": "' + parts[0] + b"\xff" + parts[1] + b'"}'
    )
    places = st.sampled_from([*CONTENT_TYPES, "query"])
    fuzz("invalid_utf8_bytes", st.tuples(bodies, places), check)


def test_top_level_arrays_and_scalars(target: Target) -> None:
    def check(value: Any) -> None:
        assert target.send(as_json(value)).status_code == 400

    values = (
        st.lists(reports, max_size=3)
        | scalars
        | st.lists(st.just({"message_id": 554, "status": 1}), min_size=1, max_size=30)
    )
    fuzz("top_level_arrays_and_scalars", values, check)


control_text = st.text(
    st.characters(codec=None, categories=["Cc", "Cs", "Cf", "Zl", "Zp", "Co"])
    | st.sampled_from("sent"),
    max_size=20,
)


def test_control_characters_nul_and_lone_surrogates(target: Target) -> None:
    def check(case: tuple[str, str, str]) -> None:
        status, key, encoding = case
        report = {"message_id": 554, "status": status, key or "k": status}
        if encoding == "json":
            target.send(as_json(report))
        elif encoding == "json-ascii":
            target.send(json.dumps(report).encode())  # lone surrogates as \udXXX escapes
        else:
            encoded = urlencode(report, errors="surrogatepass")
            if encoding == "form":
                target.send(encoded.encode(), FORM)
            else:
                target.send(method="GET", query=encoded)

    encodings = st.sampled_from(["json", "json-ascii", "form", "get"])
    fuzz("control_characters", st.tuples(control_text, control_text, encodings), check)


def test_oversized_bodies(target: Target, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_MAX_BYTES": SMALL_LIMIT}

    def check(case: tuple[int, bytes, str]) -> None:
        size, filler, content_type = case
        body = (filler * (size // len(filler) + 1))[:size]
        response = target.send(body, content_type)
        if size > SMALL_LIMIT:
            assert response.status_code == 413

    sizes = st.integers(min_value=SMALL_LIMIT - 8, max_value=SMALL_LIMIT * 4)
    fuzz(
        "oversized_bodies",
        st.tuples(sizes, st.binary(min_size=1, max_size=16), content_types),
        check,
    )


MULTIPART_REPORT = (
    b'--BoUnDaRy\r\nContent-Disposition: form-data; name="status"\r\n\r\nsent\r\n--BoUnDaRy--\r\n'
)


def test_random_content_types(target: Target) -> None:
    def check(case: tuple[str, dict[str, Any], str]) -> None:
        content_type, report, encoding = case
        if encoding == "json":
            body = as_json(report)
        elif encoding == "form":
            body = urlencode(report).encode()
        else:
            body = MULTIPART_REPORT
        target.send(body, content_type)

    valid = st.sampled_from(
        [{"message_id": 554, "status": 1}, {"status": "sent"}, {"statuses": [{"status": "read"}]}]
    )
    encodings = st.sampled_from(["json", "form", "multipart"])
    fuzz("random_content_types", st.tuples(content_types, valid, encodings), check)


def test_query_strings(target: Target) -> None:
    def check(case: tuple[str, str]) -> None:
        query, method = case
        target.send(method=method, query=query)

    printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200)
    many_fields = st.integers(min_value=0, max_value=1100).map(  # past Django's 1,000 fields
        lambda n: "&".join(f"f{i}={i}" for i in range(n))
    )
    pairs = st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=20).map(
        urlencode
    )
    methods = st.sampled_from(["GET", "POST", "HEAD"])
    fuzz("query_strings", st.tuples(printable | many_fields | pairs, methods), check)


def test_meta_shaped_junk(target: Target) -> None:
    def check(case: tuple[Any, str]) -> None:
        junk, shape = case
        if shape == "statuses":
            body: Any = {"statuses": junk}
        elif shape == "entry":
            body = {"entry": junk}
        elif shape == "changes":
            body = {"entry": [{"changes": junk}]}
        else:
            body = {"entry": [{"changes": [{"value": {"statuses": junk}}]}]}
        target.send(as_json(body))

    shapes = st.sampled_from(["statuses", "entry", "changes", "value"])
    fuzz("meta_shaped_junk", st.tuples(json_values, shapes), check)


def test_other_methods(target: Target) -> None:
    def check(case: tuple[str, bytes]) -> None:
        method, body = case
        assert target.send(body, method=method).status_code == (200 if method == "OPTIONS" else 405)

    methods = st.sampled_from(["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO", "HEAD"])
    fuzz("other_methods", st.tuples(methods, st.binary(max_size=100)), check)


# -- refused before parsed ---------------------------------------------------------------------


class CountingInput:
    """A ``wsgi.input`` that serves ``prefix`` then an endless stream of junk, counting what is
    read from it."""

    def __init__(self, prefix: bytes = b"") -> None:
        self.prefix = prefix
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 10 * 1024 * 1024  # "all of it": a lot, as a flood would be
        start = self.read_bytes
        data = self.prefix[start : start + size]
        data += b"\xff{[" * ((size - len(data)) // 3 + 1)
        data = data[:size]
        self.read_bytes += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        return self.read(size if size and size > 0 else 1024)


@pytest.fixture
def small_limit(settings: Any) -> int:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_MAX_BYTES": SMALL_LIMIT}
    return SMALL_LIMIT


@pytest.mark.parametrize("content_type", [JSON, FORM, "multipart/form-data; boundary=x", "text/x"])
def test_an_over_limit_malformed_body_is_413_not_400(
    target: Target, small_limit: int, content_type: str
) -> None:
    body = b"{" * (small_limit + 1)
    response = target.send(body, content_type)
    assert response.status_code == 413
    # One byte less is parsed, and refused as malformed.
    if content_type == JSON:
        assert target.send(body[:small_limit], content_type).status_code == 400


def test_an_over_limit_body_is_refused_without_reading_one_byte(
    target: Target, small_limit: int
) -> None:
    stream = CountingInput()
    response = target.send(
        CONTENT_LENGTH=str(small_limit + 1), CONTENT_TYPE=JSON, **{"wsgi.input": stream}
    )
    assert response.status_code == 413
    assert stream.read_bytes == 0
    huge = CountingInput()
    response = target.send(CONTENT_LENGTH=str(10**12), CONTENT_TYPE=JSON, **{"wsgi.input": huge})
    assert response.status_code == 413
    assert huge.read_bytes == 0


@pytest.mark.parametrize("declared", ["-1", "ten", "1e3", " "])
def test_a_bad_content_length_is_refused_without_reading(target: Target, declared: str) -> None:
    stream = CountingInput(b'{"status": "sent"}')
    response = target.send(CONTENT_LENGTH=declared, CONTENT_TYPE=JSON, **{"wsgi.input": stream})
    assert response.status_code in (400, 413) if declared.strip() else (400,)
    assert stream.read_bytes == 0


def test_a_content_length_lie_reads_only_what_was_declared(
    target: Target, small_limit: int
) -> None:
    """The body goes on forever; the declared length covers a valid report: only that is read
    (and applied), the flood behind it never is."""
    report = b'{"message_id": 554, "status": "delivered"}'
    stream = CountingInput(report)
    response = target.send(
        CONTENT_LENGTH=str(len(report)), CONTENT_TYPE=JSON, **{"wsgi.input": stream}
    )
    assert response.status_code == 200, response.content
    assert stream.read_bytes == len(report)
    assert Message.objects.get(pk=target.message.pk).status == Status.DELIVERED
    # Declared within the limit but cut into the junk: read up to the declared length, refused.
    stream = CountingInput(report[:20])
    response = target.send(CONTENT_LENGTH="500", CONTENT_TYPE=JSON, **{"wsgi.input": stream})
    assert response.status_code == 400
    assert stream.read_bytes == 500


# -- one URL, one message ----------------------------------------------------------------------


def untouched(message: Message) -> None:
    fresh = Message.objects.get(pk=message.pk)
    assert (fresh.status, fresh.provider_message_id) == (
        message.status,
        message.provider_message_id,
    )
    assert not StatusEvent.objects.filter(message=message).exists()


@pytest.fixture
def two() -> tuple[Message, Message]:
    make = Message.objects.create
    a = make(source_addr="S", destination_addr="1", status=Status.ACCEPTED, provider_message_id=1)
    b = make(source_addr="S", destination_addr="2", status=Status.ACCEPTED, provider_message_id=2)
    return a, b


def path_for(message_uuid: Any, signature: str) -> str:
    return reverse(
        "django_whatsapp:callback", kwargs={"message_uuid": message_uuid, "signature": signature}
    )


def test_the_signature_of_one_message_does_not_open_another(two: tuple[Message, Message]) -> None:
    a, b = two
    stolen = sign(a.uuid, CALLBACK_SECRET)
    for body in ({"status": "failed"}, {"message_id": 2, "status": "failed"}):
        response = Client().post(path_for(b.uuid, stolen), body, content_type=JSON)
        assert response.status_code == 403
    untouched(a)
    untouched(b)


def test_another_messages_id_in_a_signed_url_is_refused(two: tuple[Message, Message]) -> None:
    a, b = two
    path = path_for(a.uuid, sign(a.uuid, CALLBACK_SECRET))
    for send in (
        lambda: Client().post(path, {"message_id": 2, "status": "failed"}, content_type=JSON),
        lambda: Client().post(path, urlencode({"message_id": 2, "status": 4}), content_type=FORM),
        lambda: Client().get(path, {"message_id": "2", "status": "failed"}),
    ):
        assert send().status_code == 400
    untouched(a)
    untouched(b)


def test_a_meta_body_naming_another_message_touches_only_its_own(
    two: tuple[Message, Message],
) -> None:
    """Meta's ids are ignored: the signed URL names the message."""
    a, b = two
    path = path_for(a.uuid, sign(a.uuid, CALLBACK_SECRET))
    body = {"statuses": [{"id": "2", "status": "read", "recipient_id": "2"}]}
    assert Client().post(path, body, content_type=JSON).status_code == 200
    assert Message.objects.get(pk=a.pk).status == Status.SEEN
    untouched(b)


@pytest.mark.parametrize(
    "signature",
    # The last: a true signature of another message's uuid (a fixed one, so that every xdist
    # worker collects the same test ids).
    [
        "0" * 64,
        "z" * 64,
        "a" * 10_000,
        "é" * 64,
        "%00",
        sign(uuid.UUID("9b2f5c1e-4d3a-4e8b-9c7d-1a2b3c4d5e6f"), CALLBACK_SECRET),
    ],
)
def test_forged_signatures_are_refused(two: tuple[Message, Message], signature: str) -> None:
    a, _b = two
    response = Client().post(path_for(a.uuid, signature), {"status": 1}, content_type=JSON)
    assert response.status_code == 403
    assert response.json()["ok"] is False
    untouched(a)


def test_a_well_signed_url_for_no_message_is_404() -> None:
    ghost = uuid.uuid4()
    path = path_for(ghost, sign(ghost, CALLBACK_SECRET))
    assert Client().post(path, {"status": 1}, content_type=JSON).status_code == 404


def test_a_uuid_in_another_spelling_still_names_only_its_message(
    two: tuple[Message, Message],
) -> None:
    a, b = two
    signature = sign(a.uuid, CALLBACK_SECRET)
    for spelling in (str(a.uuid).upper(), a.uuid.hex, "{" + str(a.uuid) + "}"):
        response = Client().post(path_for(spelling, signature), {"status": 0}, content_type=JSON)
        assert response.status_code == 200
    assert Message.objects.get(pk=a.pk).status == Status.SENT
    untouched(b)


# -- rotation ----------------------------------------------------------------------------------

NEW, OLD, GONE = "new-secret-7f3a9c51d2", "old-secret-0b8e4d6a1f", "retired-secret-55c2e9"


@pytest.mark.parametrize("order", [[NEW, OLD], [OLD, NEW]], ids=["new-first", "old-first"])
def test_every_configured_secret_verifies_in_any_order(
    two: tuple[Message, Message], settings: Any, order: list[str]
) -> None:
    a, _b = two
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": order}
    for secret, status in ((NEW, "sent"), (OLD, "delivered")):
        assert verify(a.uuid, sign(a.uuid, secret))
        path = path_for(a.uuid, sign(a.uuid, secret))
        assert Client().post(path, {"status": status}, content_type=JSON).status_code == 200
    assert not verify(a.uuid, sign(a.uuid, GONE))
    gone = path_for(a.uuid, sign(a.uuid, GONE))
    assert Client().post(gone, {"status": "seen"}, content_type=JSON).status_code == 403
    # The first secret signs new URLs.
    url = callback_url(a.uuid)
    assert url is not None
    assert url.endswith(f"/{sign(a.uuid, order[0])}/")
    assert Message.objects.get(pk=a.pk).status == Status.DELIVERED


def test_a_dropped_secret_stops_verifying(two: tuple[Message, Message], settings: Any) -> None:
    a, _b = two
    old_url = path_for(a.uuid, sign(a.uuid, OLD))
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": [NEW, OLD]}
    assert Client().post(old_url, {"status": 0}, content_type=JSON).status_code == 200
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": [NEW]}
    assert Client().post(old_url, {"status": 1}, content_type=JSON).status_code == 403
    assert Message.objects.get(pk=a.pk).status == Status.SENT


def test_a_signature_made_with_an_empty_or_no_secret_never_verifies(
    two: tuple[Message, Message], settings: Any
) -> None:
    a, _b = two
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": None}
    for forged in (sign(a.uuid, ""), sign(a.uuid, CALLBACK_SECRET), ""):
        assert not verify(a.uuid, forged)
        response = Client().post(path_for(a.uuid, forged or "x"), {"status": 0}, content_type=JSON)
        assert response.status_code == 403
    untouched(a)


# -- one request of each input class, and its exact answer -------------------------------------


def _callback_cases() -> list[Any]:
    report = {"message_id": 554, "status": "delivered"}
    return [
        pytest.param("POST", "good", as_json(report), JSON, 200, 1, Status.DELIVERED, id="valid"),
        pytest.param(
            "GET", "good", urlencode(report), None, 200, 1, Status.DELIVERED, id="valid-get"
        ),
        pytest.param(
            "POST", "good", as_json({"status": "bogus"}), JSON, 400, 0, None, id="unknown-status"
        ),
        pytest.param(
            "POST", "good", as_json({"status": "draft"}), JSON, 400, 0, None, id="not-reported"
        ),
        pytest.param(
            "POST", "good", as_json({"message_id": 555, "status": 1}), JSON, 400, 0, None,
            id="another-message-id",
        ),
        pytest.param(
            "POST", "good", as_json({"message_id": 10**20, "status": 1}), JSON, 400, 0, None,
            id="id-out-of-range",
        ),
        pytest.param(
            "POST", "good", as_json({"status": "sent", "x": "\ud800"}), JSON, 400, 0, None,
            id="lone-surrogate",
        ),
        pytest.param("POST", "good", b"{", JSON, 400, 0, None, id="malformed-json"),
        pytest.param("POST", "good", as_json([report]), JSON, 400, 0, None, id="top-level-array"),
        pytest.param("POST", "good", b"status=1", "text/plain", 415, 0, None, id="media-type"),
        pytest.param("POST", "good", b"x" * 2000, JSON, 413, 0, None, id="over-limit"),
        pytest.param("POST", "forged", as_json(report), JSON, 403, 0, None, id="bad-signature"),
        pytest.param("POST", "unsigned", as_json(report), JSON, 403, 0, None, id="no-signature"),
        pytest.param("POST", "ghost", as_json(report), JSON, 404, 0, None, id="no-such-message"),
        pytest.param("HEAD", "good", urlencode(report), None, 405, 0, None, id="head"),
        pytest.param("PUT", "good", as_json(report), JSON, 405, 0, None, id="put"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "url", "body", "content_type", "status", "events", "new_status"), _callback_cases()
)
def test_each_callback_input_class_gets_its_answer(
    target: Target,
    small_limit: int,
    method: str,
    url: str,
    body: Any,
    content_type: str | None,
    status: int,
    events: int,
    new_status: str | None,
) -> None:
    message = target.message
    ghost = uuid.uuid4()
    path = {
        "good": target.path,
        "forged": path_for(message.uuid, sign(message.uuid, "not-the-secret")),
        "unsigned": reverse("django_whatsapp:callback-unsigned", args=[message.uuid]),
        "ghost": path_for(ghost, sign(ghost, CALLBACK_SECRET)),
    }[url]
    client = Client()
    if content_type is None:
        response = client.generic(method, f"{path}?{body}")
    else:
        response = client.generic(method, path, body, content_type)
    assert response.status_code == status, response.content[:300]
    assert StatusEvent.objects.filter(message=message).count() == events
    fresh = Message.objects.get(pk=message.pk)
    assert fresh.status == (new_status or Status.ACCEPTED)
    assert fresh.provider_message_id == 554
    if method != "HEAD":
        answer = response.json()
        assert answer["ok"] is (status == 200)
        if status != 200:
            assert answer["error"]
            assert "%(" not in response.content.decode()  # every reason filled in


def test_a_repeated_report_is_answered_as_a_duplicate_and_writes_nothing(target: Target) -> None:
    body = as_json({"message_id": 554, "status": "delivered"})
    first = target.send(body).json()
    again = target.send(body).json()
    assert (first["applied"], first["duplicates"]) == (1, 0)
    assert (again["applied"], again["duplicates"]) == (0, 1)
    assert StatusEvent.objects.filter(message=target.message).count() == 1


INBOUND_MESSAGE = {"from": "380501110003", "text": "hi", "message_id": "c1"}


def _inbound_cases() -> list[Any]:
    Outcome = InboundReport.Outcome
    message = as_json(INBOUND_MESSAGE)
    statuses = as_json({"statuses": [{"id": "w", "status": "read"}]})
    return [
        pytest.param("POST", "good", message, 200, 1, 1, Outcome.UNDERSTOOD, id="valid"),
        pytest.param(
            "POST", "good", as_json({**INBOUND_MESSAGE, "text": "a\ud800b"}), 200, 1, 1,
            Outcome.UNDERSTOOD, id="lone-surrogate",
        ),
        pytest.param(
            "POST", "good", as_json({"text": "no sender"}), 202, 1, 0, Outcome.NOT_UNDERSTOOD,
            id="no-sender",
        ),
        pytest.param("POST", "good", statuses, 202, 1, 0, Outcome.NOT_UNDERSTOOD, id="statuses"),
        pytest.param("POST", "good", b"{", 202, 1, 0, Outcome.NOT_UNDERSTOOD, id="malformed"),
        pytest.param("POST", "good", b"x" * 2000, 413, 1, 0, Outcome.REFUSED, id="over-limit"),
        pytest.param("POST", "forged", message, 403, 0, 0, None, id="bad-signature"),
        pytest.param("POST", "unsigned", message, 403, 0, 0, None, id="no-signature"),
        pytest.param("HEAD", "good", message, 200, 0, 0, None, id="head"),
        pytest.param("PUT", "good", message, 405, 0, 0, None, id="put"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "reports", "messages", "outcome"), _inbound_cases()
)
def test_each_inbound_input_class_gets_its_answer(
    small_limit: int,
    method: str,
    url: str,
    body: bytes,
    status: int,
    reports: int,
    messages: int,
    outcome: str | None,
) -> None:
    path = {
        "good": reverse("django_whatsapp:inbound", kwargs={"signature": inbound_sign()}),
        "forged": reverse("django_whatsapp:inbound", kwargs={"signature": "0" * 64}),
        "unsigned": reverse("django_whatsapp:inbound-unsigned"),
    }[url]
    response = Client().generic(method, path, body, JSON)
    assert response.status_code == status, response.content[:300]
    assert InboundReport.objects.count() == reports
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == messages
    if outcome is not None:
        assert InboundReport.objects.get().outcome == outcome
    if method != "HEAD":
        assert response.json()["ok"] is (status in (200, 202))


def test_a_repeated_inbound_message_is_stored_once() -> None:
    path = reverse("django_whatsapp:inbound", kwargs={"signature": inbound_sign()})
    for _ in range(2):
        assert Client().post(path, INBOUND_MESSAGE, content_type=JSON).status_code == 200
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert list(InboundReport.objects.order_by("pk").values_list("outcome", flat=True)) == [
        InboundReport.Outcome.UNDERSTOOD,
        InboundReport.Outcome.DUPLICATE,
    ]


def inbound_sign() -> str:
    return inbound.sign(CALLBACK_SECRET)
