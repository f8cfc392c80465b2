output "topics" {
  description = "Topics by name, with their description."
  value       = local.topics
}

output "push_subscriptions" {
  description = "Push subscriptions by name, each feeding one function, with retry and dead-letter policy."
  value       = local.push_subscriptions

  precondition {
    condition = alltrue([
      for s in local.push_subscriptions : s.dead_letter_topic != null && s.max_delivery_attempts != null && s.minimum_backoff_seconds != null && s.maximum_backoff_seconds != null
    ])
    error_message = "Every push subscription in topology.json needs retry_policy, dead_letter_topic and max_delivery_attempts."
  }
  precondition {
    condition     = alltrue([for s in local.push_subscriptions : contains(keys(local.functions), s.push_function)])
    error_message = "A push subscription in topology.json names a function that is not in its functions list."
  }
}

output "hold_subscriptions" {
  description = "Pull subscriptions that keep messages (dead letters, quarantine) until someone reads them."
  value       = local.hold_subscriptions
}

output "dead_letter_topics" {
  description = "Topics where messages that failed for good end up."
  value       = local.dead_letter_topics
}

output "dead_letter_holds" {
  description = "Hold subscriptions on dead-letter topics: their backlog is what the alert policy watches."
  value       = local.dead_letter_holds
}

output "functions" {
  description = "Functions by name with every setting resolved (topology.json values, else the defaults)."
  value       = local.functions

  precondition {
    condition     = length(local.unknown_published) == 0
    error_message = "Functions publish to undeclared topics: ${join(", ", local.unknown_published)}."
  }
  precondition {
    condition     = length(local.undeclared_secrets) == 0
    error_message = "Functions read secrets not declared in topology.json's secrets: ${join(", ", local.undeclared_secrets)}."
  }
  precondition {
    condition     = length(local.primitive_grants) == 0
    error_message = "Primitive roles are not allowed: ${join(", ", local.primitive_grants)}."
  }
  precondition {
    condition     = length(local.bad_invokers) == 0
    error_message = "invoked_by must be \"pubsub\" or \"users\"; wrong in: ${join(", ", local.bad_invokers)}."
  }
  precondition {
    condition     = length(local.missing_main) == 0
    error_message = "Functions without functions/<name>/main.py: ${join(", ", local.missing_main)}."
  }
}

output "schedules" {
  description = "Cloud Scheduler jobs by \"<function>-<name>\": function, cron, time_zone, path and JSON body to POST."
  value       = local.schedules

  precondition {
    condition     = alltrue([for s in local.schedules : startswith(s.path, "/")])
    error_message = "A schedule's path must start with \"/\"."
  }
}

output "secrets" {
  description = "Secret Manager secrets to create: name => description."
  value       = local.secrets
}

output "bundles" {
  description = "Per function, the bundle's files: path inside the zip => source file."
  value       = local.bundles
}

output "sink_functions" {
  description = "The function each sink's push subscription feeds, by sink name (e.g. bigquery => the export writer)."
  value       = { for k, s in local.sinks : k => local.subscriptions[s.subscription].push_function }
}

output "ingest_topic" {
  description = "The topic producers publish system events to."
  value       = local.doc.ingest_topic
}

output "quarantine_topic" {
  description = "The topic invalid events are quarantined on."
  value       = local.doc.quarantine_topic
}

output "delay_queue" {
  description = "Name of the Cloud Tasks queue every wait goes through (sysevents.transport.delays)."
  value       = local.doc.delay_queue
}

output "release_topics" {
  description = "Topics the delay queue publishes released waits to: those feeding the functions that wait."
  value       = local.release_topics
}
