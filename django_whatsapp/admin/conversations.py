"""Conversations in the operator's console, and the inbound reports behind them.

*Conversations* lists every contact with the latest message exchanged (either direction), newest
first; a conversation is every message with one number, both directions, in order, as a chat
thread, with the contact's 24-hour window and a reply box that sends through
:func:`django_whatsapp.services.send_text`. Replying needs the ``add_message`` and
``send_message`` permissions; reading needs ``view_message``. With the sandbox in use, *Simulate a
customer reply* has the sandbox deliver a customer's message to the inbound endpoint over HTTP.

*Inbound reports* is the read-only log of every request that reached the inbound endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import inbound, optout, sandbox, services, window
from ..conf import DEFAULT_ACCOUNT, account_for_sender, get_settings
from ..forms import ReplyForm, template_compose_url, window_closed_message
from ..models import Contact, Conversation, InboundReport, Message
from ..numbers import search_digits
from ..sandbox.gateway import gateway
from . import display
from .actions import report_send
from .dates import when_column
from .display import CSS
from .guard import GuardedAdmin, guard_urls

if TYPE_CHECKING:
    ConversationAdminBase = admin.ModelAdmin[Conversation]
    InboundReportAdminBase = admin.ModelAdmin[InboundReport]
else:
    ConversationAdminBase = InboundReportAdminBase = admin.ModelAdmin

Status = Message.Status
Kind = Message.MessageType
Direction = Message.Direction
#: Conversations per page of the list.
PAGE_SIZE = 50
#: The latest messages a thread shows (``?all=1`` shows every one).
THREAD_SIZE = 100
#: What a simulated customer writes when the operator does not say.
SIMULATED_REPLY = gettext_lazy("Thank you! This is a reply simulated by the sandbox.")
OUTCOME_TONES: dict[str, str] = {
    InboundReport.Outcome.RECEIVED: "warn",
    InboundReport.Outcome.UNDERSTOOD: "good",
    InboundReport.Outcome.PARTIAL: "warn",
    InboundReport.Outcome.DUPLICATE: "quiet",
    InboundReport.Outcome.NOT_UNDERSTOOD: "bad",
    InboundReport.Outcome.REFUSED: "bad",
}


def _url(name: str, *args: Any) -> str:
    return reverse(f"admin:django_whatsapp_{name}", args=args)


def thread_url(number: str) -> str:
    return _url("conversation_thread", number)


def can_reply(request: HttpRequest) -> bool:
    user = request.user
    return user.has_perm("django_whatsapp.add_message") and user.has_perm(
        "django_whatsapp.send_message"
    )


def can_simulate(request: HttpRequest) -> bool:
    return request.user.has_perm("django_whatsapp.send_message") and sandbox.in_use()


def message_tools(request: HttpRequest, message: Message) -> dict[str, Any]:
    """What a message's change view links to: its conversation and, with the sandbox in use,
    a simulated customer reply."""
    number = message.destination_addr or ""
    if not (number.isascii() and number.isdigit()):
        return {}
    return {
        "conversation_url": thread_url(number),
        "simulate_url": _url("conversation_simulate", number) if can_simulate(request) else None,
        "simulated_reply": SIMULATED_REPLY,
    }


def warn_sent_anyway(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, message: Message
) -> None:
    """Under ``SERVICE_WINDOW_POLICY`` "warn": a message went out into a closed window."""
    if message.status != Status.NOT_SENT:
        modeladmin.message_user(
            request,
            _(
                "The customer's 24-hour window is closed, and the message was sent anyway: "
                "WhatsApp may refuse it. Only a template message is sure to go out."
            ),
            messages.WARNING,
        )


def can_change_opt_out(request: HttpRequest) -> bool:
    return request.user.has_perm("django_whatsapp.change_contact")


def opt_out_context(request: HttpRequest, number: str) -> dict[str, Any]:
    """What a conversation page shows of the contact's opt-out, and where its button posts
    (``next``: where the button comes back to, the conversation when not given)."""
    contact = Contact.objects.filter(number=number).only("opted_out_at", "opt_out_reason").first()
    return {
        "opted_out_at": contact.opted_out_at if contact else None,
        "reason": contact.opt_out_reason if contact else "",
        "can_change": can_change_opt_out(request),
        "url": _url("conversation_opt_out", number),
        "next": "",
    }


def reply_account(number: str) -> str:
    """The account a reply goes out through: that of the latest message with ``number`` (for
    a received one, the account whose sender the customer wrote to)."""
    latest = (
        Message.objects.filter(destination_addr=number)
        .order_by("-created_at", "-pk")
        .only("direction", "account", "source_addr")
        .first()
    )
    if latest is None:
        return DEFAULT_ACCOUNT
    if latest.direction == Direction.INBOUND:
        return account_for_sender(latest.source_addr)
    return latest.account if latest.account in get_settings().accounts else DEFAULT_ACCOUNT


def window_badge(state: window.WindowState, *, opted_out: bool = False) -> SafeString:
    """The contact's window as a badge: open (and for how long), or closed; for a contact who
    opted out, that (nothing is sent to them, whatever the window)."""
    remaining = state.remaining
    if opted_out:
        label, tone = _("Opted out: nothing is sent"), "bad"
        return format_html(
            '<span class="wa-badge wa-tone-{}" data-window="opted-out">{}</span>', tone, label
        )
    if remaining is not None:
        hours, rest = divmod(int(remaining.total_seconds()), 3600)
        label = _("Window open: %(hours)d h %(minutes)02d min left") % {
            "hours": hours,
            "minutes": rest // 60,
        }
        tone = "good"
    elif state.last_inbound_at is None:
        label, tone = _("No message from this contact"), "quiet"
    else:
        label, tone = _("Window closed"), "bad"
    return format_html(
        '<span class="wa-badge wa-tone-{}" data-window="{}">{}</span>', tone, tone, label
    )


def bubble_context(message: Message) -> dict[str, Any]:
    """What a thread's bubble shows of a message."""
    template = message.template if message.message_type == Kind.TEMPLATE else None
    return {
        "message": message,
        "inbound": message.direction == Direction.INBOUND,
        "text": template.render(message.template_body_params) if template else message.text,
        "image": message.file_url if message.message_type == Kind.MEDIA else "",
        "template": template,
        "header": message.template_header if template else None,
        "header_is_image": template is not None and template.header_type == "image",
        "url": _url("message_change", message.pk),
        "badge": None
        if message.direction == Direction.INBOUND
        else display.status_badge(message.status),
        "error": display.explain_error(message) if message.status == Status.NOT_SENT else None,
    }


@dataclass(frozen=True)
class ConversationRow:
    number: str
    name: str
    last: Message | None
    last_at: Any
    total: int
    window: window.WindowState
    opted_out: bool = False

    @property
    def url(self) -> str:
        return thread_url(self.number)

    @property
    def preview(self) -> str:
        return display.short_preview(self.last) if self.last is not None else ""

    @property
    def direction_label(self) -> str:
        """Who wrote the latest message: "Outgoing" or "Incoming"."""
        if self.last is None:
            return ""
        return str(display.DIRECTION_LABELS.get(self.last.direction, self.last.direction))

    @property
    def waiting(self) -> bool:
        """The customer wrote last: the conversation waits for a reply."""
        return self.last is not None and self.last.direction == Direction.INBOUND

    @property
    def window_badge(self) -> SafeString:
        return window_badge(self.window, opted_out=self.opted_out)


def conversations(search: str = "", *, waiting: bool = False) -> QuerySet[Any]:
    """One row per contact (``destination_addr``): ``last_at``, ``total`` and the latest
    message's ``last_pk`` and ``last_direction``, newest first. A number that only ever got
    campaign messages (and never wrote) is no conversation: it is left out."""
    selected = Message.objects.all()
    term = search.strip()
    if term:
        query = Q(text__icontains=term)
        digits = search_digits(term) or "".join(term.split()).replace("-", "").removeprefix("+")
        if digits.isascii() and digits.isdigit():
            query |= Q(destination_addr__contains=digits)
        selected = selected.filter(query)
    latest = Message.objects.filter(destination_addr=OuterRef("destination_addr")).order_by(
        "-created_at", "-pk"
    )
    rows = (
        selected.order_by()
        .values("destination_addr")
        .annotate(
            last_at=Max("created_at"),
            total=Count("pk"),
            own=Count("pk", filter=Q(campaign__isnull=True)),
            last_pk=Subquery(latest.values("pk")[:1]),
            last_direction=Subquery(latest.values("direction")[:1]),
        )
        .filter(own__gt=0)
        .order_by("-last_at", "destination_addr")
    )
    if waiting:
        rows = rows.filter(last_direction=Direction.INBOUND)
    return rows


class ConversationAdmin(ConversationAdminBase):
    """The conversations: a list of contacts and a thread per contact; nothing to add or edit."""

    class Media:
        css = CSS

    #: What the list reads besides ``q`` and ``p`` (tests walk every list's parameters).
    list_params = ("waiting",)

    # -- permissions: those of messages -------------------------------------------------------

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = request.user
        return user.has_perm("django_whatsapp.view_message") or user.has_perm(
            "django_whatsapp.change_message"
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    # -- URLs ---------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return guard_urls(
            [
                path("", wrap(self.changelist_view), name=f"{prefix}_changelist"),
                path("<str:number>/", wrap(self.thread_view), name=f"{prefix}_thread"),
                path(
                    "<str:number>/reply/",
                    transaction.non_atomic_requests(wrap(self.reply_view)),
                    name=f"{prefix}_reply",
                ),
                path(
                    "<str:number>/opt-out/",
                    wrap(self.opt_out_view),
                    name=f"{prefix}_opt_out",
                ),
                path(
                    "<str:number>/simulate/",
                    transaction.non_atomic_requests(wrap(self.simulate_view)),
                    name=f"{prefix}_simulate",
                ),
            ]
        )

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "message_opts": Message._meta,
            **extra,
        }

    # -- the list -----------------------------------------------------------------------------

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._require_view(request)
        search = request.GET.get("q", "")
        waiting = request.GET.get("waiting") == "1"
        paginator = Paginator(conversations(search, waiting=waiting), PAGE_SIZE)
        page = paginator.get_page(request.GET.get("p"))
        groups = list(page.object_list)
        numbers = [group["destination_addr"] for group in groups]
        latest = Message.objects.select_related("template").in_bulk(
            [group["last_pk"] for group in groups]
        )
        windows = window.states(numbers)
        names = dict(Contact.objects.filter(number__in=numbers).values_list("number", "name"))
        opted_out = optout.opted_out_numbers(numbers)
        rows = [
            ConversationRow(
                number=group["destination_addr"],
                name=names.get(group["destination_addr"], ""),
                last=latest.get(group["last_pk"]),
                last_at=group["last_at"],
                total=group["total"],
                window=windows[group["destination_addr"]],
                opted_out=group["destination_addr"] in opted_out,
            )
            for group in groups
        ]
        context = self._context(
            request,
            _("Conversations"),
            rows=rows,
            page=page,
            search=search,
            waiting=waiting,
            **(extra_context or {}),
        )
        return TemplateResponse(request, "django_whatsapp/admin/conversation_list.html", context)

    # -- one conversation ---------------------------------------------------------------------

    @staticmethod
    def _number(number: str) -> str:
        if not (number.isascii() and number.isdigit() and len(number) <= 20):
            raise Http404(_("There is no such conversation."))
        return number

    def thread_view(
        self, request: HttpRequest, number: str, form: ReplyForm | None = None
    ) -> HttpResponse:
        self._require_view(request)
        number = self._number(number)
        thread = Message.objects.filter(destination_addr=number).select_related("template")
        total = thread.count()
        show_all = request.GET.get("all") == "1"
        newest = thread.order_by("-created_at", "-pk")
        shown = list(newest if show_all else newest[:THREAD_SIZE])
        shown.reverse()
        state = window.state(number)
        policy = window.policy()
        contact_name = Contact.objects.filter(number=number).values_list("name", flat=True).first()
        reply_allowed = can_reply(request)
        closed = not state.is_open
        # Under "enforce" a closed window takes only templates: no reply box then. A refused
        # reply is shown with its errors whatever the window, so that its text is not lost.
        blocked = closed and policy == window.ENFORCE
        opt_out = opt_out_context(request, number)
        if opt_out["opted_out_at"] is not None and form is None:
            reply_allowed = False  # nothing can be sent to them: no reply box
        if form is None and reply_allowed and not blocked:
            form = ReplyForm()
        context = self._context(
            request,
            _("Conversation with %(number)s") % {"number": f"+{number}"},
            number=number,
            contact_name=contact_name or "",
            bubbles=[bubble_context(message) for message in shown],
            total=total,
            hidden=total - len(shown),
            all_url=f"{thread_url(number)}?all=1",
            window_state=state,
            window_badge=window_badge(state, opted_out=opt_out["opted_out_at"] is not None),
            policy=policy,
            reply_form=form,
            reply_blocked=reply_allowed and blocked,
            warn_closed=closed and policy == window.WARN,
            closed=closed,
            reply_url=_url("conversation_reply", number),
            template_url=template_compose_url(number) if reply_allowed else None,
            simulate_url=_url("conversation_simulate", number) if can_simulate(request) else None,
            simulated_reply=SIMULATED_REPLY,
            list_url=_url("conversation_changelist"),
            opt_out=opt_out,
        )
        return TemplateResponse(request, "django_whatsapp/admin/conversation.html", context)

    def opt_out_view(self, request: HttpRequest, number: str) -> HttpResponse:
        """An operator opts the contact out (``opt=out``, with an optional ``reason``) or back in
        (``opt=in``); needs ``change_contact``; logged as an admin change of the contact."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._require_view(request)
        if not can_change_opt_out(request):
            raise PermissionDenied
        number = self._number(number)
        choice = request.POST.get("opt")
        if choice == "out":
            given = (request.POST.get("reason") or "").strip()[:200]
            # Stored as it is, not translated: read later in any language.
            reason = f"operator {request.user}" + (f": {given}" if given else "")
            contact, changed = optout.opt_out(number, reason=reason, user=request.user)
            done = _("%(number)s is opted out: nothing will be sent to them.")
            entry = "Opted out" + (f": {given}" if given else "")
        elif choice == "in":
            found, changed = optout.opt_in(number, user=request.user)
            if found is None:
                raise Http404(_("There is no such contact."))
            contact = found
            done = _("%(number)s is opted in again.")
            entry = "Opted in"
        else:
            return HttpResponseBadRequest(_("Say opt=out or opt=in."))
        if changed:
            self.log_change(request, contact, entry)  # type: ignore[arg-type]
            self.message_user(request, done % {"number": f"+{number}"}, messages.SUCCESS)
        else:
            self.message_user(request, _("Nothing changed."), messages.INFO)
        back = request.POST.get("next") or ""
        if not url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            back = thread_url(number)
        return HttpResponseRedirect(back)

    def reply_view(self, request: HttpRequest, number: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._require_view(request)
        if not can_reply(request):
            raise PermissionDenied
        number = self._number(number)
        form = ReplyForm(request.POST)
        if not form.is_valid():
            return self.thread_view(request, number, form)
        closed = window.closed_for(Message(message_type=Kind.TEXT, destination_addr=number))
        if closed is not None and window.policy() == window.ENFORCE:
            form.add_error("text", ValidationError(window_closed_message(number)))
            return self.thread_view(request, number, form)
        try:
            message = services.send_text(
                number,
                form.cleaned_data["text"],
                created_by=request.user,
                account=reply_account(number),
            )
        except ValidationError as error:
            form.add_error("text", error.messages)
            return self.thread_view(request, number, form)
        except ImproperlyConfigured as error:
            self.message_user(
                request,
                _("Nothing was sent: the gateway is not configured. %(error)s") % {"error": error},
                messages.ERROR,
            )
            return self.thread_view(request, number, form)
        report_send(self, request, message)
        if closed is not None:
            warn_sent_anyway(self, request, message)
        return HttpResponseRedirect(f"{thread_url(number)}#wa-latest")

    def simulate_view(self, request: HttpRequest, number: str) -> HttpResponse:
        """The sandbox delivers a customer's message from ``number`` to the inbound endpoint."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._require_view(request)
        if not request.user.has_perm("django_whatsapp.send_message"):
            raise PermissionDenied
        number = self._number(number)
        back = HttpResponseRedirect(f"{thread_url(number)}#wa-latest")
        if not sandbox.in_use():
            self.message_user(
                request, _("Only the sandbox gateway can simulate a customer."), messages.ERROR
            )
            return back
        text = (request.POST.get("text") or "").strip() or str(SIMULATED_REPLY)
        ours = (
            Message.objects.filter(destination_addr=number, direction=Direction.OUTBOUND)
            .order_by("-created_at", "-pk")
            .values_list("source_addr", flat=True)
            .first()
        )
        try:
            # The public origin when set, else the one this request came to.
            url = inbound.inbound_url() or request.build_absolute_uri(inbound.inbound_path())
            delivery = gateway.deliver_inbound(
                url, number, text=text[:4096], to=ours or "", origin=request.build_absolute_uri("/")
            )
        except ImproperlyConfigured as error:
            self.message_user(request, str(error), messages.ERROR)
            return back
        except ValueError as error:
            self.message_user(
                request,
                _("The sandbox could not simulate it: invalid %(param)s.") % {"param": error},
                messages.ERROR,
            )
            return back
        if delivery.ok:
            self.message_user(
                request,
                _("The sandbox delivered a customer reply from %(number)s.")
                % {"number": f"+{number}"},
                messages.SUCCESS,
            )
        else:
            answer = delivery.error or f"HTTP {delivery.http_status}"
            self.message_user(
                request,
                _("The sandbox's customer reply was not taken: %(answer)s.") % {"answer": answer},
                messages.ERROR,
            )
        return back


class InboundReportAdmin(GuardedAdmin, InboundReportAdminBase):
    """Every request that reached the inbound endpoint, as it came: read-only."""

    class Media:
        css = CSS

    list_display = (
        "received_at_when",
        "method",
        "outcome_badge",
        "sender",
        "content_type",
        "body_size",
    )
    list_filter = ("outcome", "method")
    date_hierarchy = "received_at"
    search_fields = ("sender", "body", "query_string")
    received_at_when = when_column(InboundReport, "received_at")
    fields = (
        "received_at_when",
        "outcome_badge",
        "detail",
        "message_links",
        "sender",
        "method",
        "content_type",
        "query_string",
        "body_size",
        "raw_body",
    )
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[InboundReport], search_term: str
    ) -> tuple[QuerySet[InboundReport], bool]:
        # A sender's number written any way is searched as its digits.
        term = search_digits(search_term) or search_term
        return super().get_search_results(request, queryset, term)

    @admin.display(description=gettext_lazy("outcome"), ordering="outcome")
    def outcome_badge(self, obj: InboundReport) -> SafeString:
        return format_html(
            '<span class="wa-badge wa-tone-{}" data-outcome="{}">{}</span>',
            OUTCOME_TONES.get(obj.outcome, "quiet"),
            obj.outcome,
            obj.get_outcome_display(),
        )

    @admin.display(description=gettext_lazy("messages"))
    def message_links(self, obj: InboundReport) -> SafeString | str:
        linked = list(obj.messages.order_by("pk"))
        if not linked:
            return "-"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((_url("message_change", m.pk), display.short_preview(m, 40) or m.pk) for m in linked),
        )

    @admin.display(description=gettext_lazy("body"))
    def raw_body(self, obj: InboundReport) -> SafeString:
        return format_html('<pre class="wa-raw-body">{}</pre>', obj.body or "")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.register(Conversation, ConversationAdmin)
admin.site.register(InboundReport, InboundReportAdmin)
