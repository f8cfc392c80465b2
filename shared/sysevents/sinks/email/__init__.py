"""The email sink: email alert jobs through the alert engine (`sink`, `channel`), their config and recipients
(`config`, `addresses`), rendering (`render`) and SMTP (`mailer`)."""
