//! The plan from manifests: YAML in, plan or field errors out.
