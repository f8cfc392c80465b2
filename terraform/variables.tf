variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6-30 lowercase letters, digits or hyphens."
  }
}

variable "region" {
  description = "Region of the functions, the bundle bucket and Cloud Scheduler (e.g. europe-west1)."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "name" {
  description = "Prefix of the names of functions, service accounts and the bundle bucket (one deployment per project: topic names come unprefixed from topology.json)."
  type        = string
  default     = "sysevents"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.name))
    error_message = "name must be 2-12 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Labels put on every resource that takes labels."
  type        = map(string)
  default     = { app = "sysevents" }

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "Label keys and values must be lowercase letters, digits, '_' or '-' (keys start with a letter, at most 63 characters)."
  }
}

variable "python_runtime" {
  description = "Cloud Functions runtime of every function."
  type        = string
  default     = "python311"

  validation {
    condition     = can(regex("^python3(11|12|13)$", var.python_runtime))
    error_message = "python_runtime must be python311, python312 or python313 (sysevents needs Python 3.11 or later)."
  }
}

variable "function_defaults" {
  description = "Settings of functions whose topology.json entry does not set them: memory, cpu, timeout_seconds, min/max instances, concurrency, project_roles."
  type = object({
    memory          = optional(string, "512Mi")
    cpu             = optional(string, "1")
    timeout_seconds = optional(number, 60)
    min_instances   = optional(number, 0)
    max_instances   = optional(number, 20)
    concurrency     = optional(number, 8)
    project_roles   = optional(list(string), ["roles/datastore.viewer"])
  })
  default = {}

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi|M|G)$", var.function_defaults.memory))
    error_message = "function_defaults.memory must be like 256Mi, 512Mi or 1Gi."
  }
  validation {
    condition     = var.function_defaults.timeout_seconds >= 1 && var.function_defaults.timeout_seconds <= 600
    error_message = "function_defaults.timeout_seconds must be between 1 and 600 (push requests time out with the ack deadline)."
  }
  validation {
    condition     = var.function_defaults.min_instances >= 0 && var.function_defaults.max_instances >= max(1, var.function_defaults.min_instances)
    error_message = "function_defaults needs 0 <= min_instances <= max_instances and max_instances >= 1."
  }
  validation {
    condition     = var.function_defaults.concurrency >= 1 && var.function_defaults.concurrency <= 1000
    error_message = "function_defaults.concurrency must be between 1 and 1000."
  }
  validation {
    condition     = length(setintersection(var.function_defaults.project_roles, ["roles/owner", "roles/editor", "roles/viewer"])) == 0
    error_message = "Primitive roles (owner, editor, viewer) are not allowed."
  }
}

variable "function_env" {
  description = "Extra environment variables of every function (plain values only: secrets go to Secret Manager), e.g. SYSEVENTS_WEBHOOK_READ_TIMEOUT."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.function_env) : can(regex("^[A-Z_][A-Z0-9_]*$", k))])
    error_message = "function_env keys must be environment variable names (upper case, digits, underscores)."
  }
}

variable "function_env_by_name" {
  description = "Extra environment variables of single functions, by function name, e.g. { email = { SYSEVENTS_SMTP_HOST = \"smtp.example.com\" } }."
  type        = map(map(string))
  default     = {}

  validation {
    condition     = alltrue(flatten([for env in values(var.function_env_by_name) : [for k in keys(env) : can(regex("^[A-Z_][A-Z0-9_]*$", k))]]))
    error_message = "function_env_by_name keys must be environment variable names (upper case, digits, underscores)."
  }
}

variable "api_invokers" {
  description = "IAM members allowed to call the functions that topology.json marks invoked_by = \"users\" (the admin API), e.g. group:ops@example.com or serviceAccount:ci@p.iam.gserviceaccount.com."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.api_invokers : can(regex("^(user|group|serviceAccount|domain):.+", m))])
    error_message = "api_invokers entries must be IAM members: user:, group:, serviceAccount: or domain: (never public)."
  }
}

variable "firestore_location" {
  description = "Location of the Firestore database (a region such as europe-west1 or a multi-region: eur3, nam5). Fixed once created."
  type        = string
  default     = "eur3"

  validation {
    condition     = can(regex("^([a-z]+-[a-z]+[0-9]|eur3|nam5|nam7)$", var.firestore_location))
    error_message = "firestore_location must be a region (europe-west1) or eur3, nam5, nam7."
  }
}

variable "create_firestore_database" {
  description = "Create the (default) Firestore database. Set false when the project already has one (then import it or leave it alone)."
  type        = bool
  default     = true
}

variable "bigquery_location" {
  description = "Location of the sysevents BigQuery dataset (EU, US or a region)."
  type        = string
  default     = "EU"

  validation {
    condition     = can(regex("^(EU|US|[a-z]+-[a-z]+[0-9])$", var.bigquery_location))
    error_message = "bigquery_location must be EU, US or a region such as europe-west1."
  }
}

variable "bigquery_dataset" {
  description = "BigQuery dataset of the audit table (SYSEVENTS_AUDIT_DATASET)."
  type        = string
  default     = "sysevents"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]*$", var.bigquery_dataset)) && length(var.bigquery_dataset) <= 1024
    error_message = "bigquery_dataset must be letters, digits and underscores (at most 1024)."
  }
}

variable "audit_table" {
  description = "BigQuery audit table (SYSEVENTS_AUDIT_TABLE)."
  type        = string
  default     = "audit_log"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]*$", var.audit_table)) && length(var.audit_table) <= 1024
    error_message = "audit_table must be letters, digits and underscores (at most 1024)."
  }
}

variable "bigquery_export_datasets" {
  description = "Existing BigQuery datasets that export jobs write into: \"dataset\" (this project) or \"project.dataset\". The bigquery function gets roles/bigquery.dataEditor on each (datasets it creates itself it owns already)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for d in var.bigquery_export_datasets : can(regex("^([a-z][a-z0-9:-]*[a-z0-9]\\.)?[A-Za-z_][A-Za-z0-9_]*$", d)) && length(element(split(".", d), length(split(".", d)) - 1)) <= 1024])
    error_message = "bigquery_export_datasets entries must be dataset ids or project.dataset."
  }
  validation {
    condition     = length(distinct(var.bigquery_export_datasets)) == length(var.bigquery_export_datasets)
    error_message = "bigquery_export_datasets lists a dataset twice."
  }
}

variable "audit_retention_days" {
  description = "Days an audit-log partition is kept (null: for ever)."
  type        = number
  default     = null

  validation {
    condition     = var.audit_retention_days == null || try(var.audit_retention_days >= 1, false)
    error_message = "audit_retention_days must be null or at least 1."
  }
}

variable "deletion_protection" {
  description = "Protect the Firestore database and the audit table from `terraform destroy`."
  type        = bool
  default     = true
}

variable "secret_values" {
  description = "Optional initial values of the topology's secrets (name => value). They end up in the Terraform state: prefer `gcloud secrets versions add` (docs/deploy-reference.md, The first apply)."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "alert_emails" {
  description = "Email addresses notified by every alert policy (dead-letter backlog, delivery success rate, quarantine spike, function errors, oldest unacked messages)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alert_emails must be email addresses."
  }
}

variable "alert_notification_channels" {
  description = "Existing Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) to notify as well."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "alert_notification_channels entries must be notification channel ids: projects/<project>/notificationChannels/<id>."
  }
}

variable "dead_letter_alert_threshold" {
  description = "Alert when a dead-letter hold subscription has more than this many undelivered messages."
  type        = number
  default     = 0

  validation {
    condition     = var.dead_letter_alert_threshold >= 0
    error_message = "dead_letter_alert_threshold must be 0 or more."
  }
}

variable "dead_letter_alert_duration_seconds" {
  description = "How long the backlog must stay above the threshold before the alert fires."
  type        = number
  default     = 300

  validation {
    condition     = var.dead_letter_alert_duration_seconds >= 60 && var.dead_letter_alert_duration_seconds % 60 == 0
    error_message = "dead_letter_alert_duration_seconds must be a whole number of minutes (60, 120, ...)."
  }
}

variable "metrics_per_job_labels" {
  description = "Label the delivery log-based metrics (deliveries, retries, dead_lettered) with the job (aid, job_id), so charts and the success-rate alert are per job. Each active job then adds a few time series (one per outcome seen): turn it off with many thousands of jobs (docs/monitoring.md); the success-rate alert is then per sink."
  type        = bool
  default     = true
}

variable "delivery_success_rate_threshold" {
  description = "Alert when a job's delivery success rate, delivered / (delivered + dead_lettered) over the window, falls below this fraction (0.95: more than 5% of its deliveries dead-lettered)."
  type        = number
  default     = 0.95

  validation {
    condition     = var.delivery_success_rate_threshold > 0 && var.delivery_success_rate_threshold <= 1
    error_message = "delivery_success_rate_threshold must be a fraction in (0, 1], e.g. 0.95 (1: alert on any dead letter)."
  }
}

variable "delivery_success_rate_window_seconds" {
  description = "Window over which the delivery success rate is computed (a rolling window, in seconds)."
  type        = number
  default     = 3600

  validation {
    condition     = var.delivery_success_rate_window_seconds >= 300 && var.delivery_success_rate_window_seconds <= 86400 && var.delivery_success_rate_window_seconds % 60 == 0
    error_message = "delivery_success_rate_window_seconds must be whole minutes between 300 (5 minutes) and 86400 (1 day)."
  }
}

variable "quarantine_alert_threshold" {
  description = "Alert when more than this many events are quarantined (invalid events: a producer sends malformed ones) within the window."
  type        = number
  default     = 10

  validation {
    condition     = var.quarantine_alert_threshold >= 0 && floor(var.quarantine_alert_threshold) == var.quarantine_alert_threshold
    error_message = "quarantine_alert_threshold must be a whole number of events, 0 or more."
  }
}

variable "quarantine_alert_window_seconds" {
  description = "Window over which quarantined events are counted for the quarantine spike alert (seconds)."
  type        = number
  default     = 300

  validation {
    condition     = var.quarantine_alert_window_seconds >= 60 && var.quarantine_alert_window_seconds <= 86400 && var.quarantine_alert_window_seconds % 60 == 0
    error_message = "quarantine_alert_window_seconds must be whole minutes between 60 and 86400."
  }
}

variable "function_error_rate_threshold" {
  description = "Alert when more than this fraction of a function's requests answer 5xx (Cloud Run request_count) over the window, leaving out function_error_ignored_response_codes."
  type        = number
  default     = 0.05

  validation {
    condition     = var.function_error_rate_threshold > 0 && var.function_error_rate_threshold < 1
    error_message = "function_error_rate_threshold must be a fraction in (0, 1), e.g. 0.05."
  }
}

variable "function_error_rate_window_seconds" {
  description = "Window over which a function's 5xx ratio is computed (seconds)."
  type        = number
  default     = 300

  validation {
    condition     = var.function_error_rate_window_seconds >= 60 && var.function_error_rate_window_seconds <= 86400 && var.function_error_rate_window_seconds % 60 == 0
    error_message = "function_error_rate_window_seconds must be whole minutes between 60 and 86400."
  }
}

variable "function_error_ignored_response_codes" {
  description = "5xx response codes the function error-rate alert leaves out. sysevents answers 503 on purpose to have Pub/Sub redeliver while something it needs is briefly unavailable (Pub/Sub for ingest's deliveries, the delay queue for a sink's retries and waits, busy template workers in the admin API); retries themselves are counted by the delivery metrics, not as function errors. [] counts every 5xx."
  type        = list(string)
  default     = ["503"]

  validation {
    condition     = alltrue([for c in var.function_error_ignored_response_codes : can(regex("^5[0-9]{2}$", c))])
    error_message = "function_error_ignored_response_codes must be 5xx HTTP status codes such as \"503\"."
  }
}

variable "oldest_unacked_alert_seconds" {
  description = "Alert when the oldest unacknowledged message of a push subscription (one that feeds a function) is older than this (seconds). Retries back off up to the topology's maximum_backoff_seconds, so leave room for a few."
  type        = number
  default     = 3600

  validation {
    condition     = var.oldest_unacked_alert_seconds >= 60 && var.oldest_unacked_alert_seconds <= 604800
    error_message = "oldest_unacked_alert_seconds must be between 60 and 604800 (7 days, the longest Pub/Sub keeps a message by default)."
  }
}

variable "oldest_unacked_hold_alert_seconds" {
  description = "Alert when the oldest message on a hold subscription (dead letters, quarantine) is older than this (seconds): before its message_retention_seconds runs out and Pub/Sub drops it. Default 6 days, for the topology's 7-day retention."
  type        = number
  default     = 518400

  validation {
    condition     = var.oldest_unacked_hold_alert_seconds >= 60 && var.oldest_unacked_hold_alert_seconds <= 2678400
    error_message = "oldest_unacked_hold_alert_seconds must be between 60 and 2678400 (31 days, Pub/Sub's longest retention)."
  }
}

variable "oldest_unacked_alert_seconds_by_subscription" {
  description = "Oldest-unacked thresholds (seconds) of single subscriptions, by topology.json subscription name, e.g. { \"deliveries-email-push\" = 7200 }."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for s in values(var.oldest_unacked_alert_seconds_by_subscription) : s >= 60 && s <= 2678400])
    error_message = "oldest_unacked_alert_seconds_by_subscription values must be between 60 and 2678400 seconds."
  }
}

variable "schedule_paused" {
  description = "Create the Cloud Scheduler jobs paused (e.g. in a staging project)."
  type        = bool
  default     = false
}

variable "enable_apis" {
  description = "Enable the Google APIs sysevents uses. Set false when the project's APIs are managed elsewhere."
  type        = bool
  default     = true
}

variable "delay_queue_max_dispatches_per_second" {
  description = "Most released waits per second the delay queue publishes (Cloud Tasks allows up to 500 per queue)."
  type        = number
  default     = 500
  validation {
    condition     = var.delay_queue_max_dispatches_per_second > 0 && var.delay_queue_max_dispatches_per_second <= 500
    error_message = "delay_queue_max_dispatches_per_second must be in (0, 500]."
  }
}

variable "delay_queue_max_concurrent_dispatches" {
  description = "Most releases of the delay queue in flight at once."
  type        = number
  default     = 1000
  validation {
    condition     = var.delay_queue_max_concurrent_dispatches >= 1 && var.delay_queue_max_concurrent_dispatches <= 5000
    error_message = "delay_queue_max_concurrent_dispatches must be between 1 and 5000."
  }
}

variable "delay_queue_log_sampling_ratio" {
  description = "Fraction of delay-queue task operations Cloud Tasks logs (0 to 1)."
  type        = number
  default     = 0.0
  validation {
    condition     = var.delay_queue_log_sampling_ratio >= 0 && var.delay_queue_log_sampling_ratio <= 1
    error_message = "delay_queue_log_sampling_ratio must be between 0 and 1."
  }
}

variable "time_scale" {
  description = "SYSEVENTS_TIME_SCALE of the functions: 1 in production (a staging deployment may shorten retry schedules and windows, e.g. 0.01)."
  type        = number
  default     = 1
  validation {
    condition     = var.time_scale > 0 && var.time_scale <= 1
    error_message = "time_scale must be in (0, 1]."
  }
}
