from django.contrib import admin
from django.utils.html import format_html, format_html_join

from .models import Interview, InterviewSession, Question, SessionResult, Turn


class QuestionInline(admin.TabularInline):
    model = Question
    extra = 1


@admin.register(Interview)
class InterviewAdmin(admin.ModelAdmin):
    list_display = ["title", "role", "created_at"]
    search_fields = ["title", "role"]
    inlines = [QuestionInline]


class TurnInline(admin.TabularInline):
    model = Turn
    extra = 0
    can_delete = False
    fields = ["sequence", "speaker", "text", "interrupted", "source", "question_index", "ended_at", "metrics"]
    readonly_fields = fields


@admin.register(InterviewSession)
class InterviewSessionAdmin(admin.ModelAdmin):
    list_display = ["id", "interview", "owner_id", "status", "current_question", "created_at", "ended_at"]
    list_filter = ["status", "interview"]
    search_fields = ["id", "owner_id"]
    readonly_fields = ["id", "created_at", "started_at", "last_active_at", "ended_at", "connection_count"]
    inlines = [TurnInline]


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
