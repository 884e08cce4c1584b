"""Settings of the Django example: users in SQLite under data/ (a shared directory), hashed static files collected into staticfiles/."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get('SECRET_KEY', 'example-only-not-a-secret')
DEBUG = False
ALLOWED_HOSTS = ['127.0.0.1', 'localhost']
INSTALLED_APPS = ['django.contrib.contenttypes', 'django.contrib.auth', 'django.contrib.staticfiles', 'pages']
MIDDLEWARE = ['django.middleware.common.CommonMiddleware']
ROOT_URLCONF = 'mysite.urls'
TEMPLATES = [{'BACKEND': 'django.template.backends.django.DjangoTemplates', 'APP_DIRS': True}]
WSGI_APPLICATION = 'mysite.wsgi.application'
# data/ is a shared directory (the manifest's `shared: [data/]`): every release opens the same database,
# which the manifest's migrate step brings up to date before a release goes live.
DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': BASE_DIR / 'data' / 'db.sqlite3'}}
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'
USE_TZ = True

STATIC_URL = '/static/'
STATICFILES_DIRS = [BASE_DIR / 'static']
STATIC_ROOT = BASE_DIR / 'staticfiles'  # `manage.py collectstatic` writes main.<hash>.js etc. here
# Django 3.2 (Debian bookworm) reads STATICFILES_STORAGE; 4.2+ reads STORAGES.
STATICFILES_STORAGE = 'django.contrib.staticfiles.storage.ManifestStaticFilesStorage'
STORAGES = {'staticfiles': {'BACKEND': STATICFILES_STORAGE}}
