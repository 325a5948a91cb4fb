"""URLconf of the in-process Django tests: plain and included routes, re_path routes, a DRF
router, and views whose queries the exporter must count (N+1, select_related, a second
database alias, a thread, an async view)."""

import threading

from django.http import HttpResponse, JsonResponse
from django.urls import include, path, re_path
from rest_framework import routers, serializers, viewsets

from tests.exporter.django_app.models import Author, Book


def item(request, item_id):  # type: ignore[no-untyped-def]
    return JsonResponse({"id": item_id})


def review(request, item_id, review_id):  # type: ignore[no-untyped-def]
    return HttpResponse(f"{item_id}/{review_id}")


def boom(request):  # type: ignore[no-untyped-def]
    raise RuntimeError("boom")


def archive(request, year, month=None):  # type: ignore[no-untyped-def]
    return HttpResponse(f"{year}/{month}")


def books_n_plus_one(request):  # type: ignore[no-untyped-def]
    # One query for the books, then one per book for its author.
    return JsonResponse({"books": [[b.title, b.author.name] for b in Book.objects.all()]})


def books_joined(request):  # type: ignore[no-untyped-def]
    books = Book.objects.select_related("author")
    return JsonResponse({"books": [[b.title, b.author.name] for b in books]})


def two_databases(request):  # type: ignore[no-untyped-def]
    return JsonResponse(
        {"default": Author.objects.count(), "other": Author.objects.using("other").count()}
    )


def in_a_thread(request):  # type: ignore[no-untyped-def]
    # A thread of the view's own: its own connection (connected in that thread). Its query is
    # timed; it counts for no request, as the thread does not carry the request's context.
    counts: list[int] = []
    worker = threading.Thread(target=lambda: counts.append(Author.objects.count()))
    worker.start()
    worker.join()
    return JsonResponse({"authors": counts[0], "books": Book.objects.count()})


async def books_async(request):  # type: ignore[no-untyped-def]
    titles = [book.title async for book in Book.objects.order_by("id")]
    authors = await Author.objects.acount()
    return JsonResponse({"titles": titles, "authors": authors})


class BookSerializer(serializers.ModelSerializer):
    class Meta:
        model = Book
        fields = ["id", "title", "author"]


class BookViewSet(viewsets.ModelViewSet):
    queryset = Book.objects.order_by("id")
    serializer_class = BookSerializer


router = routers.DefaultRouter()
router.register("books", BookViewSet)

reviews = [path("<int:item_id>/reviews/<slug:review_id>", review)]

urlpatterns = [
    path("api/items/<int:item_id>", item),
    path("api/items/", include(reviews)),
    path("boom", boom),
    re_path(r"^archive/(?P<year>[0-9]{4})/(?:(?P<month>[0-9]{2})/)?$", archive),
    re_path(r"^légal/(\d+)/$", item),
    path("drf/", include(router.urls)),
    path("orm/n-plus-one", books_n_plus_one),
    path("orm/joined", books_joined),
    path("orm/two-databases", two_databases),
    path("orm/thread", in_a_thread),
    path("orm/async", books_async),
]
