"""The page, the health check, and the collected static files (served by Django itself: no web server in front here)."""
from django.urls import path, re_path
from django.views.static import serve

from mysite import settings
from pages import views

urlpatterns = [
    path('', views.index),
    path('health', views.health),
    path('whoami', views.whoami),
    re_path(r'^static/(?P<path>.+)$', serve, {'document_root': settings.STATIC_ROOT}),
]
