"""``X-Django-Queries``: the number of queries Django itself saw the request run."""

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext


def query_count(get_response: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def middleware(request: Any) -> Any:
        with CaptureQueriesContext(connection) as queries:
            response = get_response(request)
        response["X-Django-Queries"] = str(len(queries.captured_queries))
        return response

    return middleware
