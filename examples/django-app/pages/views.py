"""The example's two views."""
from django.http import HttpResponse
from django.shortcuts import render

from pages.health import HEALTHY
from pages.version import VERSION


def index(request):
    return render(request, 'index.html', {'version': VERSION})


def health(request):
    return HttpResponse('ok\n' if HEALTHY else 'sick\n', status=200 if HEALTHY else 500)
