"""Events: the system event model (`model`: subject types, verbs, validation, the CloudEvents envelope,
ordering keys), strict JSON reading (`strictjson`: UTF-8, nesting, finite numbers, plain errors) and producer
identity (`producers`: signed attributes, producers bound to the accounts they may publish for)."""
