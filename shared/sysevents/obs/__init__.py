"""Observing a deployment: `logs` (structured JSON lines, trace context, the delivery outcome lines the
metrics count), `metering` (counting calls for the benchmarks), `status` (`sysevents status`)."""
