"""Request handlers behind functions/<name>/main.py: each takes the push body, returns (text, status)."""
