"""Pages of sessions: ?page=N&pageSize=M (at most 200), with count, next and previous."""

from rest_framework.pagination import PageNumberPagination


class SessionPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "pageSize"
    max_page_size = 200
