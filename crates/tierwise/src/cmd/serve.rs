use crate::cli::ServeArgs;
use crate::output::Status;

pub fn run(_args: ServeArgs) -> anyhow::Result<Status> {
    anyhow::bail!("`tierwise serve` is not built yet (issue 2)")
}
