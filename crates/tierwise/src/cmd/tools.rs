use crate::cli::ToolsEvalArgs;
use crate::output::Status;

pub fn run_eval(_args: ToolsEvalArgs) -> anyhow::Result<Status> {
    anyhow::bail!("`tierwise tools eval` is not built yet (issue 5)")
}
