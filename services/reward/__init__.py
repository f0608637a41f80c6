"""Reward service: exact perception rewards over REST.

``scoring/`` holds the pure scoring library (no web imports); ``api.py`` the thin routes;
``app.py`` the uvicorn factory ``create_app``.
"""
