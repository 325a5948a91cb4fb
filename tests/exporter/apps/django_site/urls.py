from django.urls import include, path

urlpatterns = [path("activité/", include("actstream.urls"))]
