use crate::cli::TrainArgs;
use crate::output::Status;

pub fn run(_args: TrainArgs) -> anyhow::Result<Status> {
    anyhow::bail!("`tierwise train` is not built yet (issue 4)")
}
