"""A minimal Flask app that cutover deploys in its tests: a page that loads content-hashed assets, one lazily.

Run it under gunicorn (`gunicorn app:app`); `python3 build_assets.py` must have written static/dist/ first.
"""
import json
import os

from flask import Flask, render_template

from health import HEALTHY
from version import VERSION

HERE = os.path.dirname(os.path.abspath(__file__))
app = Flask(__name__)

with open(os.path.join(HERE, 'static', 'dist', 'manifest.json'), encoding='utf-8') as f:
    ASSETS = json.load(f)  # {"main.js": "main.3f2a9c1b.js", ...}: written by build_assets.py


def asset(name):
    return '/static/dist/' + ASSETS[name]


@app.get('/')
def index():
    return render_template('index.html', version=VERSION, asset=asset)


@app.get('/health')
def health():
    return ('ok\n', 200) if HEALTHY else ('sick\n', 500)
