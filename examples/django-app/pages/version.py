# The app's version: a test changes it (and static/lazy.js) to make a new release.
VERSION = 'v1'
