"""The recruiters' admin: interviews with their questions inline, sessions (live rows that
refresh themselves, the whole conversation, a live view, end and export), results.

Pages read through interviews.selectors and write through interviews.services; ending a
live session reaches the connection that holds it on any worker (interviews.control).
The live view's socket is realtime/live.py; the rows refresh from `live-rows.json`.
"""

from __future__ import annotations

import json
import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from . import control, selectors, services
from .models import Interview, InterviewSession, Question, SessionResult, SessionStatus


class QuestionInline(admin.TabularInline):
    model = Question
    extra = 1
    fields = ["position", "stage", "text"]
    ordering = ["position", "id"]


@admin.register(Interview)
class InterviewAdmin(admin.ModelAdmin):
    list_display = ["title", "role", "question_total", "created_at"]
    search_fields = ["title", "role"]
    inlines = [QuestionInline]

    @admin.display(description="Questions")
    def question_total(self, interview: Interview) -> int:
        return interview.questions.count()


class SessionCreateForm(forms.Form):
    interview = forms.ModelChoiceField(queryset=Interview.objects.order_by("title"))
    candidate = forms.UUIDField(label="Candidate's user id", help_text="Their Supabase user id (a UUID).")


MAX_ENDED_AT_ONCE = 20


def _live_cell(session: InterviewSession, field: str, value) -> str:
    """A cell the sessions list refreshes in place (static/admin-live/live-rows.js)."""
    return format_html('<span class="live-cell" data-session="{}" data-field="{}">{}</span>', session.pk, field, value)


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"


def _ago(value) -> str:
    if value is None:
        return "-"
    seconds = max(0, int((timezone.now() - value).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


def _latency(metrics: dict) -> str:
    return ", ".join(f"{key.removesuffix('_ms').replace('_', ' ')}: {value} ms"
                     for key, value in sorted(metrics.items()) if isinstance(value, (int, float))) or "-"


@admin.register(InterviewSession)
class InterviewSessionAdmin(admin.ModelAdmin):
    list_display = ["session", "candidate", "interview", "status_cell", "progress_cell", "duration_cell",
                    "activity_cell", "worker_cell"]
    list_filter = ["status", "interview", ("held_by", admin.AllValuesFieldListFilter)]
    search_fields = ["id", "owner_id", "interview__title"]
    list_select_related = ["interview"]
    readonly_fields = ["id", "interview", "owner_id", "status", "stage", "current_question", "end_reason",
                       "created_at", "started_at", "last_active_at", "ended_at", "connection_count", "held_by",
                       "lease_expires_at"]
    fieldsets = [("Details", {"classes": ["collapse"], "fields": readonly_fields})]
    actions = ["end_sessions"]
    # Sessions are not edited by hand: every field is read-only, and "change" is the
    # permission to end one.
    change_form_template = "admin/interviews/interviewsession/change_form.html"
    change_list_template = "admin/interviews/interviewsession/change_list.html"

    # --- the list -----------------------------------------------------------------------

    @admin.display(description="Session", ordering="created_at")
    def session(self, session: InterviewSession) -> str:
        return str(session.pk)[:8]

    @admin.display(description="Candidate", ordering="owner_id")
    def candidate(self, session: InterviewSession) -> str:
        return str(session.owner_id)

    @admin.display(description="Status", ordering="status")
    def status_cell(self, session: InterviewSession) -> str:
        return _live_cell(session, "status", session.status)

    @admin.display(description="Progress")
    def progress_cell(self, session: InterviewSession) -> str:
        return _live_cell(session, "progress", selectors.session_progress(session))

    @admin.display(description="Duration")
    def duration_cell(self, session: InterviewSession) -> str:
        return _live_cell(session, "duration",
                          _duration(selectors.session_duration_seconds(session, now=timezone.now())))

    @admin.display(description="Last activity", ordering="last_active_at")
    def activity_cell(self, session: InterviewSession) -> str:
        return _live_cell(session, "activity", _ago(session.last_active_at))

    @admin.display(description="Worker", ordering="held_by")
    def worker_cell(self, session: InterviewSession) -> str:
        return _live_cell(session, "worker", session.held_by if session.status == SessionStatus.LIVE else "-")

    # --- pages of its own ---------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("live-rows.json", wrap(self.live_rows_view), name="interviews_interviewsession_live_rows"),
            path("<uuid:session_id>/transcript.json", wrap(self.transcript_json_view),
                 name="interviews_interviewsession_transcript_json"),
            path("<uuid:session_id>/transcript.txt", wrap(self.transcript_text_view),
                 name="interviews_interviewsession_transcript_text"),
            path("<uuid:session_id>/end/", wrap(require_POST(self.end_view)), name="interviews_interviewsession_end"),
            *super().get_urls(),
        ]

    def live_rows_view(self, request):
        """The state of the sessions shown in the list, for its poller (staff with view permission)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        ids = [part for part in request.GET.get("ids", "").split(",") if part][:200]
        now = timezone.now()
        rows = [{
            "id": str(session.pk),
            "status": session.status,
            "progress": selectors.session_progress(session),
            "duration": _duration(selectors.session_duration_seconds(session, now=now)),
            "activity": _ago(session.last_active_at),
            "worker": session.held_by if session.status == SessionStatus.LIVE else "-",
        } for session in selectors.sessions_by_ids(session_ids=ids)]
        response = JsonResponse({"rows": rows})
        response["Cache-Control"] = "no-store"
        return response

    def _transcript_or_404(self, request, session_id) -> dict:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            return selectors.session_transcript(session_id=session_id)
        except InterviewSession.DoesNotExist:
            raise Http404("No such session.") from None

    def transcript_json_view(self, request, session_id):
        transcript = self._transcript_or_404(request, session_id)
        response = HttpResponse(json.dumps(transcript, indent=2, ensure_ascii=False),
                                content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="transcript-{session_id}.json"'
        return response

    def transcript_text_view(self, request, session_id):
        transcript = self._transcript_or_404(request, session_id)
        response = HttpResponse(selectors.transcript_as_text(transcript), content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="transcript-{session_id}.txt"'
        return response

    def end_view(self, request, session_id):
        """End a session; a live one on whatever worker holds it (its candidate is told why)."""
        session = InterviewSession.objects.filter(pk=session_id).first()
        if session is None:
            raise Http404("No such session.")
        if not self.has_change_permission(request, session):
            raise PermissionDenied
        outcome = services.session_end_by_staff(session_id=session.pk, reason=request.POST.get("reason", "")[:150])
        messages.add_message(request, messages.SUCCESS if outcome != "already-ended" else messages.WARNING, {
            "ended-live": "The session was ended; the candidate was told.",
            "ended": "The session was ended (no connection held it).",
            "already-ended": "The session had already ended.",
        }[outcome])
        return redirect(reverse("admin:interviews_interviewsession_change", args=[session.pk]))

    @admin.action(description="End the selected sessions", permissions=["change"])
    def end_sessions(self, request, queryset):
        # Bounded: a live one whose holder does not answer costs its 5 s wait (realtime/control.py).
        pending = list(queryset.exclude(status=SessionStatus.COMPLETED).values_list("pk", flat=True)[:MAX_ENDED_AT_ONCE + 1])
        ended = sum(services.session_end_by_staff(session_id=pk) != "already-ended" for pk in pending[:MAX_ENDED_AT_ONCE])
        self.message_user(request, f"{ended} session(s) ended." + (
            f" At most {MAX_ENDED_AT_ONCE} at a time: run it again for the rest." if len(pending) > MAX_ENDED_AT_ONCE else ""))

    def add_view(self, request, form_url="", extra_context=None):
        """Create a session for a candidate: its questions are snapshotted now."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = SessionCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                session = services.session_create(interview=form.cleaned_data["interview"],
                                                  owner_id=str(form.cleaned_data["candidate"]))
            except ValueError as error:
                form.add_error("interview", str(error))
            else:
                messages.success(request, "Session created: send the candidate the link below.")
                return redirect(reverse("admin:interviews_interviewsession_change", args=[session.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Create a session",
            "opts": self.model._meta,
            "form": form,
            "has_view_permission": self.has_view_permission(request),
        }
        return TemplateResponse(request, "admin/interviews/interviewsession/create.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        session = InterviewSession.objects.select_related("interview").filter(pk=object_id).first() \
            if _is_uuid(object_id) else None
        extra = dict(extra_context or {})
        if session is not None and self.has_view_permission(request, session):
            turns = selectors.session_turns(session_id=session.pk)
            extra.update({
                "session_obj": session,
                "progress": selectors.session_progress(session),
                "duration": _duration(selectors.session_duration_seconds(session, now=timezone.now())),
                "turns": [(turn, _latency(turn.metrics)) for turn in turns],
                "result": selectors.session_result(session_id=session.pk),
                "is_finished": session.is_finished,
                "may_end": not session.is_finished and self.has_change_permission(request, session),
                "candidate_link": None if session.is_finished else control.candidate_link(
                    base_url=request.build_absolute_uri("/"), session_id=str(session.pk),
                    owner_id=str(session.owner_id)),
                "live_socket_path": f"/api/live/{session.pk}/",
                # Nothing here is edited by hand: no Save buttons.
                "show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False,
            })
        return super().change_view(request, object_id, form_url, extra_context=extra)


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@admin.register(SessionResult)
class SessionResultAdmin(admin.ModelAdmin):
    list_display = ["session", "answered_questions", "analysis_status", "recommendation", "created_at"]
    list_filter = ["analysis_status"]
    readonly_fields = ["session", "summary", "answered_questions", "analysis_status", "recommendation",
                       "analysis_summary", "analysis_by_question", "analysis_attempts", "analysis_error",
                       "analysed_at", "details", "created_at"]
    exclude = ["analysis"]

    @admin.display(description="Recommendation")
    def recommendation(self, result: SessionResult) -> str:
        return result.analysis.get("recommendation", "").replace("_", " ")

    @admin.display(description="Analysis")
    def analysis_summary(self, result: SessionResult) -> str:
        return result.analysis.get("summary", "")

    @admin.display(description="By question")
    def analysis_by_question(self, result: SessionResult) -> str:
        questions = result.session.questions
        rows = []
        for item in result.analysis.get("questions", []):
            index = item.get("index", 0)
            question = questions[index]["text"] if 0 <= index < len(questions) else ""
            rows.append((index + 1, question, item.get("score"), "; ".join(item.get("strengths", [])),
                         "; ".join(item.get("concerns", [])), " / ".join(f"“{q}”" for q in item.get("evidence", []))))
        if not rows:
            return "-"
        return format_html(
            "<table><tr><th>#</th><th>Question</th><th>Score (1-5)</th><th>Strengths</th><th>Concerns</th>"
            "<th>Evidence</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )
