"""The API's shapes. Output comes from the selectors' dicts (the admin shows the same)."""

from rest_framework import serializers

from ..models import Interview


class SessionCreateSerializer(serializers.Serializer):
    interview = serializers.PrimaryKeyRelatedField(queryset=Interview.objects.all(),
                                                   help_text="The interview's id.")
    candidate = serializers.UUIDField(help_text="The candidate's Supabase user id.")


class SessionEndSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=150, default="",
                                   help_text="Told to the candidate and stored as the end reason.")


class SessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    interview = serializers.IntegerField()
    candidate = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["scheduled", "live", "paused", "disconnected", "completed"])
    stage = serializers.CharField()
    questionIndex = serializers.IntegerField()
    questionCount = serializers.IntegerField()
    progress = serializers.CharField()
    durationSeconds = serializers.IntegerField(allow_null=True)
    createdAt = serializers.DateTimeField()
    startedAt = serializers.DateTimeField(allow_null=True)
    lastActiveAt = serializers.DateTimeField(allow_null=True)
    endedAt = serializers.DateTimeField(allow_null=True)
    endReason = serializers.CharField()
    heldBy = serializers.CharField(help_text="The worker holding a live session (host:pid).")

    def to_representation(self, instance):
        return dict(instance)  # already in its final shape (interviews.selectors.session_summary)


class SessionCreatedSerializer(SessionSerializer):
    pageUrl = serializers.URLField(help_text="The interview page for this session.")
    candidateUrl = serializers.URLField(
        help_text="The link to send the candidate: with demo tokens, the page with a token in its fragment.")


class SessionEndedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=["ended-live", "ended"],
        help_text="ended-live: the connection holding it (on any worker) ended it and told the candidate.")


class TurnSerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    speaker = serializers.ChoiceField(choices=["interviewer", "candidate"])
    text = serializers.CharField(help_text="What was said (for the interviewer: what the candidate heard).")
    plannedText = serializers.CharField(help_text="What the interviewer meant to say.")
    interrupted = serializers.BooleanField()
    questionIndex = serializers.IntegerField(allow_null=True)
    source = serializers.CharField()
    turnId = serializers.CharField()
    startedAt = serializers.DateTimeField(allow_null=True)
    endedAt = serializers.DateTimeField(allow_null=True)
    metrics = serializers.DictField(help_text="Latencies in ms, e.g. turn_to_first_audio_ms.")


class TranscriptSerializer(serializers.Serializer):
    sessionId = serializers.UUIDField()
    interview = serializers.CharField()
    candidate = serializers.UUIDField()
    status = serializers.CharField()
    questions = serializers.ListField(child=serializers.DictField())
    turns = TurnSerializer(many=True)

    def to_representation(self, instance):
        return dict(instance)


class ResultSerializer(serializers.Serializer):
    summary = serializers.CharField()
    answeredQuestions = serializers.IntegerField()
    details = serializers.DictField()
    analysisStatus = serializers.ChoiceField(choices=["not_requested", "pending", "done", "failed"])
    analysis = serializers.DictField(help_text="The language model's analysis once done.")
    analysisError = serializers.CharField()
    analysedAt = serializers.DateTimeField(allow_null=True)
    createdAt = serializers.DateTimeField()

    def to_representation(self, instance):
        return dict(instance)


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()
