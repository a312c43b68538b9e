use crate::cli::CalibrateArgs;
use crate::output::Status;

pub fn run(_args: CalibrateArgs) -> anyhow::Result<Status> {
    anyhow::bail!("`tierwise calibrate` is not built yet (issue 4)")
}
