use crate::cli::AuditArgs;
use crate::output::Status;

pub fn run(_args: AuditArgs) -> anyhow::Result<Status> {
    anyhow::bail!("`tierwise audit` is not built yet (issue 3)")
}
