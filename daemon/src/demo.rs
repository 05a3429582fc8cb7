//! `ferry demo`: the control plane end to end on the embedded defaults.

use std::path::Path;

pub async fn run(_data_dir: &Path) -> anyhow::Result<()> {
    anyhow::bail!("demo is not built yet")
}
