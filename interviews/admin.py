from django.contrib import admin

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
    list_display = ["session", "answered_questions", "created_at"]
    readonly_fields = ["session", "summary", "answered_questions", "details", "created_at"]
