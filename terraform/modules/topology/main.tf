# Everything Terraform deploys is derived here from topology.json, so that a function, topic or
# subscription added there is deployed without editing any .tf file.

locals {
  doc = jsondecode(file(var.topology_file))

  topics = { for t in local.doc.topics : t.name => { name = t.name, description = try(t.description, "") } }

  subscriptions = {
    for s in local.doc.subscriptions : s.name => {
      name                      = s.name
      topic                     = s.topic
      push_function             = try(s.push_function, null)
      ack_deadline_seconds      = s.ack_deadline_seconds
      message_retention_seconds = s.message_retention_seconds
      minimum_backoff_seconds   = try(s.retry_policy.minimum_backoff_seconds, null)
      maximum_backoff_seconds   = try(s.retry_policy.maximum_backoff_seconds, null)
      dead_letter_topic         = try(s.dead_letter_topic, null)
      max_delivery_attempts     = try(s.max_delivery_attempts, null)
      enable_message_ordering   = try(s.enable_message_ordering, false)
      push_path                 = try(s.push_path, "")
    }
  }
  push_subscriptions = { for k, s in local.subscriptions : k => s if s.push_function != null }
  hold_subscriptions = { for k, s in local.subscriptions : k => s if s.push_function == null }

  sinks = { for s in local.doc.sinks : s.name => s }

  # Topics where messages end up for good when they fail: each push subscription's dead-letter
  # topic and each sink's (a sink function dead-letters permanent failures itself, with a reason).
  dead_letter_topics = toset(concat(
    [for s in local.push_subscriptions : s.dead_letter_topic],
    [for s in local.sinks : s.dead_letter_topic],
  ))
  dead_letter_holds = { for k, s in local.hold_subscriptions : k => s if contains(local.dead_letter_topics, s.topic) }

  # Which function each push subscription feeds, and the topics it is fed from.
  fed_from = {
    for f in local.doc.functions : f.name => [for s in local.push_subscriptions : s.topic if s.push_function == f.name]
  }

  # Topics each function publishes to. Derived from the topology's meaning, plus `publishes`:
  # the function fed by the ingest topic quarantines and fans out to every sink topic; the function
  # fed by a sink's subscription dead-letters to that sink's dead-letter topic.
  derived_publishes = {
    for f in local.doc.functions : f.name => concat(
      contains(local.fed_from[f.name], local.doc.ingest_topic)
      ? concat([local.doc.quarantine_topic], [for s in local.sinks : s.topic]) : [],
      [for s in local.sinks : s.dead_letter_topic if local.subscriptions[s.subscription].push_function == f.name],
    )
  }

  declared_secrets = { for s in try(local.doc.secrets, []) : s.name => try(s.description, "") }

  functions = {
    for f in local.doc.functions : f.name => {
      name            = f.name
      entry_point     = f.entry_point
      description     = try(f.description, "")
      invoked_by      = try(f.invoked_by, "pubsub")
      memory          = try(f.memory, var.function_defaults.memory)
      cpu             = tostring(try(f.cpu, var.function_defaults.cpu))
      timeout_seconds = try(f.timeout_seconds, var.function_defaults.timeout_seconds)
      min_instances   = try(f.min_instances, var.function_defaults.min_instances)
      max_instances   = try(f.max_instances, var.function_defaults.max_instances)
      concurrency     = try(f.concurrency, var.function_defaults.concurrency)
      project_roles   = sort(distinct([for r in try(f.project_roles, var.function_defaults.project_roles) : tostring(r)]))
      dataset_roles   = sort(distinct([for r in try(f.dataset_roles, []) : tostring(r)]))
      publishes       = sort(distinct(concat([for t in try(f.publishes, []) : tostring(t)], local.derived_publishes[f.name])))
      secrets         = { for env, secret in try(f.secrets, {}) : env => tostring(secret) }
      env             = { for k, v in try(f.env, {}) : k => tostring(v) }
      fed_by          = sort([for s in local.push_subscriptions : s.name if s.push_function == f.name])
      waits           = try(f.waits, false)
    }
  }

  # The delay queue releases waits of the functions that wait back to the topics that feed them, never
  # to the ingest topic (a released retry of the audit function goes to its own retry topic).
  release_topics = sort(distinct(flatten([
    for f in local.doc.functions : [
      for t in local.fed_from[f.name] : t if t != local.doc.ingest_topic && !contains(local.dead_letter_topics, t)
    ]
    if try(f.waits, false)
  ])))

  # Cloud Scheduler jobs: a function's `schedules` entries, each an authenticated HTTP POST to a path of
  # that function (e.g. the email digests' flush, continuous batch exports) on a cron.
  schedules = merge([
    for f in local.doc.functions : {
      for s in try(f.schedules, []) : "${f.name}-${s.name}" => {
        function  = f.name
        name      = s.name
        cron      = s.cron
        time_zone = try(s.time_zone, "Etc/UTC")
        path      = try(s.path, "/")
        body      = jsonencode(try(s.body, {}))
      }
    }
  ]...)

  # Every secret a function reads must be declared at the top level of topology.json.
  used_secrets = toset(flatten([for f in local.functions : values(f.secrets)]))
  secrets      = local.declared_secrets

  # Bundle contents per function: zip path => source file. Text files only (archive_file reads them
  # with file()); compiled caches are left out.
  library_files = sort([
    for p in fileset(var.library_dir, "**") : p
    if !strcontains(p, "__pycache__") && !endswith(p, ".pyc")
  ])
  bundles = {
    for name, f in local.functions : name => merge(
      { for p in local.library_files : "sysevents/${p}" => "${var.library_dir}/${p}" },
      { "requirements.txt" = "${var.functions_dir}/requirements.txt" },
      { for p in fileset("${var.functions_dir}/${name}", "**") : p => "${var.functions_dir}/${name}/${p}" if !strcontains(p, "__pycache__") },
    )
  }

  # Checks, reported as output preconditions.
  topic_names       = toset(keys(local.topics))
  primitive_roles   = ["roles/owner", "roles/editor", "roles/viewer"]
  unknown_published = flatten([for f in local.functions : [for t in f.publishes : "${f.name} -> ${t}" if !contains(local.topic_names, t)]])
  undeclared_secrets = [
    for s in local.used_secrets : s if !contains(keys(local.declared_secrets), s)
  ]
  primitive_grants = flatten([
    for f in local.functions : [for r in concat(f.project_roles, f.dataset_roles) : "${f.name}: ${r}" if contains(local.primitive_roles, r)]
  ])
  bad_invokers = [for f in local.functions : f.name if !contains(["pubsub", "users"], f.invoked_by)]
  missing_main = [for f in local.functions : f.name if !fileexists("${var.functions_dir}/${f.name}/main.py")]
}
