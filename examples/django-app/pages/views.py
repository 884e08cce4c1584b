"""The example's views: the page, the health check, and who a request's HTTP Basic credentials belong to."""
import base64
import binascii

from django.contrib.auth import authenticate
from django.http import HttpResponse
from django.shortcuts import render

from pages.health import HEALTHY
from pages.version import VERSION


def index(request):
    return render(request, 'index.html', {'version': VERSION})


def health(request):
    response = HttpResponse('ok\n' if HEALTHY else 'sick\n', status=200 if HEALTHY else 500)
    response['X-Version'] = VERSION  # which release answered (the tests line requests up with the handover's steps)
    return response


def whoami(request):
    """200 and the user's name when the Basic credentials match a user in the database, else 401."""
    scheme, _, encoded = request.META.get('HTTP_AUTHORIZATION', '').partition(' ')
    try:
        username, _, password = base64.b64decode(encoded).decode().partition(':')
    except (binascii.Error, UnicodeDecodeError):
        username = password = ''
    user = authenticate(request, username=username, password=password) if scheme == 'Basic' and username else None
    if user is None:
        response = HttpResponse('who are you?\n', status=401)
        response['WWW-Authenticate'] = 'Basic realm="example"'
        return response
    return HttpResponse(f'{user.get_username()}{" (superuser)" if user.is_superuser else ""}\n')
