"""The API's endpoints: thin, over interviews.services (writes) and selectors (reads)."""

from __future__ import annotations

import uuid

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import control, selectors, services
from ..models import InterviewSession, SessionStatus
from . import serializers as s
from .errors import ApiError
from .pagination import SessionPagination
from .permissions import is_candidate

ERRORS = {code: OpenApiResponse(s.ErrorSerializer, description=text) for code, text in {
    400: "Bad input (code `invalid`, fields in details).",
    401: "No or bad credentials.",
    403: "Authenticated, but not allowed.",
    404: "No such session (or not yours).",
}.items()}


def _sessions_for(request):
    if is_candidate(request.user):
        return selectors.sessions_for_candidate(user_id=request.user.user_id)
    return selectors.sessions_for_staff()


def _session_for(request, session_id) -> InterviewSession:
    return get_object_or_404(_sessions_for(request), pk=session_id)


class SessionListView(APIView):
    candidate_may_read = True
    write_action = "create"
    pagination_class = SessionPagination  # also tells the schema the list is paginated

    @extend_schema(
        summary="List sessions (a candidate: their own)",
        parameters=[OpenApiParameter("status", str, enum=list(SessionStatus.values)),
                    OpenApiParameter("interview", int), OpenApiParameter("candidate", str)],
        responses={200: s.SessionSerializer(many=True), **ERRORS},
    )
    def get(self, request, version):
        sessions = _sessions_for(request)
        status_filter = request.query_params.get("status")
        if status_filter:
            if status_filter not in SessionStatus.values:
                raise ApiError(code="invalid", message=f"status must be one of {', '.join(SessionStatus.values)}.")
            sessions = sessions.filter(status=status_filter)
        if request.query_params.get("interview"):
            try:
                sessions = sessions.filter(interview_id=int(request.query_params["interview"]))
            except ValueError:
                raise ApiError(code="invalid", message="interview must be an interview's id (a number).") from None
        if request.query_params.get("candidate"):
            try:
                sessions = sessions.filter(owner_id=uuid.UUID(request.query_params["candidate"]))
            except ValueError:
                raise ApiError(code="invalid", message="candidate must be a user id (a UUID).") from None
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(sessions, request, view=self)
        return paginator.get_paginated_response([selectors.session_summary(session) for session in page])

    @extend_schema(
        summary="Create a session for a candidate and an interview",
        description="Snapshots the interview's questions. Staff with the add permission only.",
        request=s.SessionCreateSerializer,
        responses={201: s.SessionCreatedSerializer, **ERRORS},
    )
    def post(self, request, version):
        data = s.SessionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            session = services.session_create(interview=data.validated_data["interview"],
                                              owner_id=str(data.validated_data["candidate"]))
        except ValueError as error:
            raise ApiError(code="interview_empty", message=str(error)) from None
        session = selectors.sessions_for_staff().get(pk=session.pk)
        base = request.build_absolute_uri("/")
        body = {
            **selectors.session_summary(session),
            "pageUrl": f"{base.rstrip('/')}/interview/{session.pk}/",
            "candidateUrl": control.candidate_link(base_url=base, session_id=str(session.pk),
                                                   owner_id=str(session.owner_id)),
        }
        return Response(body, status=status.HTTP_201_CREATED)


class SessionDetailView(APIView):
    candidate_may_read = True

    @extend_schema(summary="Read a session and its status", responses={200: s.SessionSerializer, **ERRORS})
    def get(self, request, version, session_id):
        return Response(selectors.session_summary(_session_for(request, session_id)))


class SessionTranscriptView(APIView):
    candidate_may_read = True

    @extend_schema(summary="Read a session's transcript (every turn, in order)",
                   responses={200: s.TranscriptSerializer, **ERRORS})
    def get(self, request, version, session_id):
        session = _session_for(request, session_id)
        return Response(selectors.session_transcript(session_id=session.pk))


class SessionResultView(APIView):
    candidate_may_read = True

    @extend_schema(
        summary="Read a finished session's result and its analysis status",
        responses={200: s.ResultSerializer, 409: OpenApiResponse(s.ErrorSerializer, description="Not ended yet."),
                   **ERRORS},
    )
    def get(self, request, version, session_id):
        session = _session_for(request, session_id)
        result = selectors.session_result(session_id=session.pk)
        if result is None:
            raise ApiError(code="result_not_ready", message="The session has no result until it ends.",
                           status_code=status.HTTP_409_CONFLICT)
        return Response(selectors.result_as_dict(result))


class SessionEndView(APIView):
    write_action = "end"

    @extend_schema(
        summary="End a session",
        description="A live session is ended by the connection holding it, on whatever worker: the candidate "
                    "gets server-session-ended with the reason. Staff with the change permission only.",
        request=s.SessionEndSerializer,
        responses={200: s.SessionEndedSerializer,
                   409: OpenApiResponse(s.ErrorSerializer, description="Already ended."), **ERRORS},
    )
    def post(self, request, version, session_id):
        session = _session_for(request, session_id)
        data = s.SessionEndSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = services.session_end_by_staff(session_id=session.pk, reason=data.validated_data["reason"])
        if outcome == "already-ended":
            raise ApiError(code="session_finished", message="This session has already ended.",
                           status_code=status.HTTP_409_CONFLICT)
        session.refresh_from_db()
        return Response({"id": str(session.pk), "status": session.status, "outcome": outcome})
