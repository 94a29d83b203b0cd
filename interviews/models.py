"""Interview state that must outlive a worker: written as the session goes."""

import uuid

from django.db import models


class Interview(models.Model):
    title = models.CharField(max_length=200)
    role = models.CharField(max_length=200, blank=True, help_text="The position being interviewed for.")
    description = models.TextField(blank=True)
    skills = models.TextField(
        blank=True,
        help_text="Skills to assess, one per line or separated by commas. With skills and no questions, "
                  "the interviewer drafts the questions when a session starts.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The interview's id in Supabase when it was mirrored from there (interviews/supabase_source.py).
    external_id = models.UUIDField(null=True, blank=True, unique=True, editable=False,
                                   help_text="The interview's id in Supabase, when it comes from there.")

    def __str__(self) -> str:
        return self.title

    @property
    def skill_list(self) -> tuple[str, ...]:
        return tuple(skill.strip() for skill in self.skills.replace(",", "\n").splitlines() if skill.strip())


class Question(models.Model):
    interview = models.ForeignKey(Interview, related_name="questions", on_delete=models.CASCADE)
    position = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=100, blank=True, help_text="For example: introduction, technical, closing.")
    text = models.TextField()

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.text[:80]


class SessionStatus(models.TextChoices):
    SCHEDULED = "scheduled"
    LIVE = "live"
    PAUSED = "paused"
    DISCONNECTED = "disconnected"
    COMPLETED = "completed"


FINISHED_STATUSES = frozenset({SessionStatus.COMPLETED})


class InterviewSession(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    interview = models.ForeignKey(Interview, related_name="sessions", on_delete=models.PROTECT)
    owner_id = models.UUIDField(db_index=True, help_text="The candidate's Supabase user id.")
    status = models.CharField(max_length=20, choices=SessionStatus.choices, default=SessionStatus.SCHEDULED)
    stage = models.CharField(max_length=100, blank=True)
    # Index of the question being asked now; equals the question count once all are answered.
    current_question = models.PositiveIntegerField(default=0)
    # The questions as they were when the session started, so editing the interview later
    # does not change a session in progress or its transcript.
    questions = models.JSONField(default=list, blank=True)
    end_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_active_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    connection_count = models.PositiveIntegerField(default=0, help_text="Connections accepted over the session's life.")
    # The worker holding the live session renews its lease every few seconds
    # (realtime/leases.py); a live session whose lease ran out lost its worker.
    held_by = models.CharField(max_length=100, blank=True, help_text="The worker (host:pid) that holds or last held it.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # The lease sweep reads live sessions only: a small index whatever the history.
        indexes = [models.Index(fields=["lease_expires_at"], condition=models.Q(status="live"),
                                name="session_live_lease")]

    def __str__(self) -> str:
        return f"{self.interview} / {self.id}"

    @property
    def question_count(self) -> int:
        return len(self.questions)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class Speaker(models.TextChoices):
    INTERVIEWER = "interviewer"
    CANDIDATE = "candidate"


class Turn(models.Model):
    session = models.ForeignKey(InterviewSession, related_name="turns", on_delete=models.CASCADE)
    sequence = models.PositiveIntegerField()
    speaker = models.CharField(max_length=20, choices=Speaker.choices)
    text = models.TextField(blank=True)
    # For the interviewer: what it meant to say; `text` holds what the candidate heard.
    planned_text = models.TextField(blank=True)
    question_index = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=20, blank=True, help_text="speech, text or fallback.")
    interrupted = models.BooleanField(default=False)
    # The id the wire protocol uses: turnId for a candidate turn, responseId for the interviewer.
    public_id = models.CharField(max_length=64, blank=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Per-turn latency figures in milliseconds, e.g. {"turn_to_first_audio_ms": 180}.
    metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["session", "sequence"]
        constraints = [models.UniqueConstraint(fields=["session", "sequence"], name="unique_turn_sequence")]

    def __str__(self) -> str:
        return f"{self.speaker}: {self.text[:60]}"


class AnalysisStatus(models.TextChoices):
    NOT_REQUESTED = "not_requested"  # no language model configured: the deterministic result only
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class SessionResult(models.Model):
    """The evaluation written when a session ends, and the language model's analysis
    written later in the background (scores, strengths, concerns, evidence)."""

    session = models.OneToOneField(InterviewSession, related_name="result", on_delete=models.CASCADE)
    summary = models.TextField()
    answered_questions = models.PositiveIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    analysis_status = models.CharField(max_length=20, choices=AnalysisStatus.choices,
                                       default=AnalysisStatus.NOT_REQUESTED)
    # {"questions": [{"index", "score", "strengths", "concerns", "evidence"}], "summary", "recommendation"}
    analysis = models.JSONField(default=dict, blank=True)
    analysis_attempts = models.PositiveIntegerField(default=0)
    analysis_error = models.CharField(max_length=200, blank=True)
    analysed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Result of {self.session_id}"


class SpentRefreshToken(models.Model):
    """A demo refresh token already exchanged for a new one (realtime/token_refresh.py),
    kept until it would have expired: the database is what every worker of a cluster
    shares, so a reuse is refused whichever worker it reaches."""

    token_id = models.CharField(max_length=64, primary_key=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"Spent refresh token {self.token_id}"
