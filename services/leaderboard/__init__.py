"""Leaderboard service: REST queries over the result store and a web page with charts."""
