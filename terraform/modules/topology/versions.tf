terraform {
  # No providers: this module only reads files, so it evaluates offline (the tests apply it).
  required_version = ">= 1.6, < 2.0"
}
