"""Events: the system event model (`model`: subject types, verbs, validation, the CloudEvents envelope,
ordering keys) and strict JSON reading (`strictjson`: UTF-8, nesting, finite numbers, plain errors)."""
