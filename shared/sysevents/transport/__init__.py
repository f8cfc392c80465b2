"""Moving messages: `pubsub` (push requests in, publishing out, dead letters), `delays` (the durable delay
queue on Cloud Tasks that every wait goes through), `redrive` (what ingest dead-lettered, published
again), `quarantine` (the index of events ingest refused), `coalesce` (group commit of concurrent calls)."""
