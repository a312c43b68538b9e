use crate::cli::EvalArgs;
use crate::output::Status;

pub fn run(_args: EvalArgs) -> anyhow::Result<Status> {
    anyhow::bail!("`tierwise eval` is not built yet (issue 4)")
}
