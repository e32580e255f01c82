//! `jobqueue-operator crd`: print (or write) the CustomResourceDefinitions.

use std::path::PathBuf;

use anyhow::Context;

/// Arguments of `crd`.
#[derive(Debug, clap::Args)]
pub struct CrdArgs {
    /// Write `jobqueue.yaml` and `schedule.yaml` into this directory instead of printing both.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

/// Prints both CRDs as one multi-document YAML stream, or writes one file per CRD.
pub fn run(args: CrdArgs) -> anyhow::Result<()> {
    use crate::api::{crd_yaml_jobqueue, crd_yaml_schedule, crds_yaml};
    match args.output_dir {
        None => print!("{}", crds_yaml().context("rendering the CRDs")?),
        Some(dir) => {
            for (file, yaml) in [
                ("jobqueue.yaml", crd_yaml_jobqueue()),
                ("schedule.yaml", crd_yaml_schedule()),
            ] {
                let path = dir.join(file);
                let yaml = yaml.context("rendering the CRDs")?;
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}
