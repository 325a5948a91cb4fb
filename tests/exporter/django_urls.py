"""URLconf of the Django app used by test_routes (included app + a plain route)."""

from django.http import HttpResponse, JsonResponse
from django.urls import include, path


def item(request, item_id):  # type: ignore[no-untyped-def]
    return JsonResponse({"id": item_id})


def review(request, item_id, review_id):  # type: ignore[no-untyped-def]
    return HttpResponse(f"{item_id}/{review_id}")


def boom(request):  # type: ignore[no-untyped-def]
    raise RuntimeError("boom")


reviews = [path("<int:item_id>/reviews/<slug:review_id>", review)]

urlpatterns = [
    path("api/items/<int:item_id>", item),
    path("api/items/", include(reviews)),
    path("boom", boom),
]
