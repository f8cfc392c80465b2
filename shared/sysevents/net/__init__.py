"""The network guard: destinations must be public addresses, checked at save time and pinned at send time,
and every request has a total deadline (`destinations`)."""
