"""Consent of email recipients: signed links (`tokens`) and each account's recipients' state and email policy
(`store`). The email sink asks before it mails; the admin API serves the links and shows the state."""
