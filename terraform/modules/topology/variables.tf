variable "topology_file" {
  description = "Path of topology.json, the one definition of topics, subscriptions, sinks and functions."
  type        = string

  validation {
    condition     = fileexists(var.topology_file)
    error_message = "topology_file must name an existing file (shared/sysevents/topology.json)."
  }
}

variable "library_dir" {
  description = "Directory of the shared library (shared/sysevents); it goes into every function bundle as sysevents/."
  type        = string

  validation {
    condition     = fileexists("${var.library_dir}/__init__.py")
    error_message = "library_dir must be the sysevents package directory (it has an __init__.py)."
  }
}

variable "functions_dir" {
  description = "Directory holding functions/<name>/main.py and functions/requirements.txt."
  type        = string

  validation {
    condition     = fileexists("${var.functions_dir}/requirements.txt")
    error_message = "functions_dir must hold requirements.txt (the runtime requirements of every bundle)."
  }
}

variable "function_defaults" {
  description = "Settings for function entries that do not set them in topology.json."
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
}
