# The app's version: a test changes it (and assets/lazy.js) to make a new release.
VERSION = 'v1'
